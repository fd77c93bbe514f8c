"""Fault injection for tests, off unless ``$LAIONFLOW_FAILPOINTS`` names a point.

* ``embed.before_done`` — the process SIGKILLs itself there: a real kill at the most awkward
  moment, so crash tests do not depend on timing.
* ``annotate.start.once`` — the stage fails there (an exception, exit code 1) the first time it
  reaches that point for a given key and succeeds afterwards: a transient failure for tests of
  the retry policy. Markers live in ``$LAIONFLOW_FAILPOINTS_DIR`` (default: the temp folder).

Unset (always, outside tests) a point costs one dict lookup.
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile


class InjectedFailure(RuntimeError):
    """A transient failure injected by ``<point>.once``."""


def hit(name: str, key: str = "") -> None:
    spec = os.environ.get("LAIONFLOW_FAILPOINTS")
    if not spec:
        return
    points = spec.split(",")
    if name in points:
        os.kill(os.getpid(), signal.SIGKILL)
    if f"{name}.once" in points:
        folder = os.environ.get("LAIONFLOW_FAILPOINTS_DIR") or tempfile.gettempdir()
        digest = hashlib.sha1(f"{name}|{key}".encode()).hexdigest()[:16]
        try:
            os.close(os.open(os.path.join(folder, f"failpoint-{digest}"), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return  # failed once already: this attempt goes through
        raise InjectedFailure(f"failpoint {name}.once: injected transient failure ({key})")
