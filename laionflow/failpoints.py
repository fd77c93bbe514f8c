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


def _marker(folder: str | None, name: str, key: str) -> str:
    digest = hashlib.sha1(f"{name}|{key}".encode()).hexdigest()[:16]
    return os.path.join(folder or tempfile.gettempdir(), f"failpoint-{digest}")


def spend(folder: str, name: str, key: str) -> None:
    """Mark ``<name>.once`` as already failed for ``key``: a test plants the fault for some
    keys only (the others go through on their first try)."""
    os.close(os.open(_marker(folder, name, key), os.O_CREAT | os.O_WRONLY, 0o600))


def hit(name: str, key: str = "") -> None:
    spec = os.environ.get("LAIONFLOW_FAILPOINTS")
    if not spec:
        return
    points = spec.split(",")
    if name in points:
        os.kill(os.getpid(), signal.SIGKILL)
    if f"{name}.once" in points:
        marker = _marker(os.environ.get("LAIONFLOW_FAILPOINTS_DIR"), name, key)
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return  # failed once already: this attempt goes through
        raise InjectedFailure(f"failpoint {name}.once: injected transient failure ({key})")
