"""Crash injection for tests: ``LAIONFLOW_FAILPOINTS=embed.before_done`` makes the process
SIGKILL itself when it reaches that point — a real kill, at the most awkward moment, so crash
tests do not depend on timing. Unset (always, outside tests) it costs one dict lookup."""

from __future__ import annotations

import os
import signal


def hit(name: str) -> None:
    spec = os.environ.get("LAIONFLOW_FAILPOINTS")
    if spec and name in spec.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
