"""The demo's DAG run, in its own process so that every line Airflow and the tasks write
(stdout, stderr, logging) lands in the demo's log file and none on the user's terminal.

``python -m laionflow.demo_run CONF.json RESULT.json``: configures the embedded default under
``<root>/airflow``, migrates its DB once, runs ``laion400m`` through ``dag.test()`` with the
conf, and writes ``{"state", "run_id"}`` to RESULT.json for :mod:`laionflow.demo`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from laionflow import embedded


def main(argv: list[str]) -> int:
    conf_path, result_path = argv
    conf = json.loads(Path(conf_path).read_text())
    home = Path(conf["root"]) / "airflow"
    embedded.configure(home)
    embedded.migrate(home)
    run = embedded.load_dag("laion400m").test(run_conf=conf)
    state = getattr(run.state, "value", str(run.state))
    Path(result_path).write_text(json.dumps({"state": state, "run_id": run.run_id}))
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
