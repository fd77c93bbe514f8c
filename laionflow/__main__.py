"""``python -m laionflow``: the CLI, with its exit status.

A stage subprocess (``laionflow run STAGE``, what the operators start) ends with ``os._exit``
once its summary is written and its streams and logs are flushed: a finished stage must not
turn into an abort at interpreter shutdown because a native library's thread (torch, OpenCV,
Arrow) is torn down badly ("terminate called without an active exception", exit -6, seen once
after a successful ``annotate`` in the services test). An exception still exits the usual way.
"""

import logging
import os
import sys

from laionflow.cli import main

if __name__ == "__main__":
    code = main() or 0
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)
