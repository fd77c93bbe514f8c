"""Progress lines for long stages: ``done/total (pct), rate, ETA`` at a steady cadence
(``$LAIONFLOW_PROGRESS_S`` seconds, default 10), so a task log shows a live stage at a glance
without drowning in per-item lines."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator


def cadence() -> float:
    return float(os.environ.get("LAIONFLOW_PROGRESS_S", "10"))


def line(label: str, unit: str, done: int, total: int | None, seconds: float) -> str:
    rate = done / seconds if seconds > 0 else 0.0
    if total:
        eta = (total - done) / rate if rate > 0 else float("inf")
        eta_s = "?" if eta == float("inf") else f"{max(eta, 0):.0f}s"
        return (
            f"{label}: {done}/{total} {unit} ({done / total:.1%}), {rate:.1f} {unit}/s, ETA {eta_s}"
        )
    return f"{label}: {done} {unit}, {rate:.1f} {unit}/s"


class Progress:
    """Call :meth:`update` as often as you like; it logs at most once per cadence."""

    def __init__(self, label: str, total: int | None, log: logging.Logger, unit: str = "samples"):
        self.label, self.total, self.log, self.unit = label, total, log, unit
        self.started = self.last = time.monotonic()
        self.every = cadence()

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            self.log.info("%s", line(self.label, self.unit, done, self.total, now - self.started))


@contextlib.contextmanager
def polling(
    label: str, total: int | None, count: Callable[[], int], log: logging.Logger, unit: str
) -> Iterator[Progress]:
    """Log ``count()`` every cadence from a thread while the block runs (for work done by
    other processes, e.g. img2dataset's download workers), and once more at the end."""
    progress = Progress(label, total, log, unit)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(progress.every):
            with contextlib.suppress(Exception):  # a progress probe never fails the stage
                progress.update(count(), force=True)

    thread = threading.Thread(target=loop, name="laionflow-progress", daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(Exception):
            progress.update(count(), force=True)


def compact(summary: dict, max_entries: int = 20) -> dict:
    """What a task returns as its XCom (shown in the grid view): the stage's counts, bytes,
    rates and timings — scalars and small count tables — not its per-shard lists, which stay
    in the stage's summary file."""
    out = {}
    for key, value in summary.items():
        if isinstance(value, bool | int | float) or value is None:
            out[key] = value
        elif isinstance(value, str) and len(value) <= 300:
            out[key] = value
        elif (
            isinstance(value, dict)
            and len(value) <= max_entries
            and all(isinstance(v, int | float) for v in value.values())
        ):
            out[key] = value
    return out


def combined(stage: str, summaries: list[dict]) -> dict:
    """One summary of a job that ran a per-part stage over several parts (a Spark job): the
    counts summed (seconds too: time in parts, as the report sums them), each part's summary
    kept under ``by_part`` (which :func:`compact` leaves out of the XCom)."""
    out: dict = {"stage": stage, "parts": len(summaries)}
    for summary in summaries:
        for key, value in summary.items():
            if key == "part" or "per_s" in key or isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                out[key] = out.get(key, 0) + value
    return {**out, "by_part": summaries}
