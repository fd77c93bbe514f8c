"""What ``laionflow demo`` knows about a run while it goes, read from where the run already
records it — nothing is added to the pipeline for the demo's sake:

* task states from the Airflow metadata DB (SQLite in WAL mode, read-only here, so reading
  never blocks the run's writes);
* per-part ``done/total, rate, ETA`` from the stages' own progress lines
  (:mod:`laionflow.progress`, cadence ``$LAIONFLOW_PROGRESS_S``) in the run's log file;
* per-part results from the summaries the stages write (``images/part_N_summary.json``).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

#: a line of :func:`laionflow.progress.line`
PROGRESS = re.compile(
    r"(?P<stage>[a-z_]+) part_(?P<part>\d+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+) "
    r"\([\d.]+%\), (?P<rate>[\d.]+) \w+/s, ETA (?P<eta>\S+)"
)
#: dag.test()'s markers around a task: "[DAG TEST] starting task_id=X map_index=N", "end task"
DAG_TEST_TASK = re.compile(r"\[DAG TEST\] (?P<what>starting|end task) task_id=(?P<task>\w+)")


@dataclass
class Task:
    """One task of the run, its mapped instances folded in (``parts``: map index → state)."""

    task_id: str
    state: str | None = None
    parts: dict[int, str | None] = field(default_factory=dict)
    started: str | None = None
    ended: str | None = None

    @property
    def mapped(self) -> bool:
        return bool(self.parts)

    def parts_done(self) -> int:
        return sum(1 for s in self.parts.values() if s in ("success", "skipped"))


@dataclass
class PartProgress:
    done: int
    total: int
    unit: str
    rate: float
    eta: str


FINAL = {"success", "skipped", "failed", "upstream_failed", "removed"}


def fold(rows: list[tuple]) -> list[Task]:
    """Task rows ``(task_id, map_index, state, start, end)`` → one :class:`Task` per task id,
    in the order they ran (not yet started ones last, in the DB's order)."""
    tasks: dict[str, Task] = {}
    for task_id, map_index, state, start, end in rows:
        task = tasks.setdefault(task_id, Task(task_id))
        if map_index >= 0:
            task.parts[map_index] = state
        else:
            task.state = state
        if start and (task.started is None or start < task.started):
            task.started = start
        if end and (task.ended is None or end > task.ended):
            task.ended = end
    for task in tasks.values():
        if task.parts:  # a mapped task: its state is its instances' together
            states = set(task.parts.values())
            if states <= {"success", "skipped"}:
                task.state = "success"
            elif states & {"failed", "upstream_failed"} and states <= FINAL:
                task.state = "failed" if "failed" in states else "upstream_failed"
            elif states & {"running", "failed", "success", "up_for_retry"}:
                task.state = "running"
    order = list(tasks)
    return sorted(
        tasks.values(), key=lambda t: (t.started is None, t.started or "", order.index(t.task_id))
    )


class RunWatch:
    """Polls one DAG run of ``dag_id`` (the newest created after ``since``) and its log."""

    def __init__(self, db: Path, dag_id: str, log: Path, since: str):
        self.db, self.dag_id, self.log, self.since = db, dag_id, log, since
        self.run_id: str | None = None
        self.offset = 0
        self.progress: dict[tuple[str, int], PartProgress] = {}
        self.current: str | None = None  # the task dag.test() is in, from its log markers

    def tasks(self) -> list[Task]:
        if not self.db.exists():
            return []
        with (
            contextlib.suppress(sqlite3.Error),
            contextlib.closing(
                sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=2)
            ) as con,
        ):
            if self.run_id is None:
                row = con.execute(
                    "SELECT run_id FROM dag_run WHERE dag_id=? AND created_at>=? "
                    "ORDER BY id DESC LIMIT 1",
                    (self.dag_id, self.since),
                ).fetchone()
                self.run_id = row[0] if row else None
            if self.run_id is None:
                return []
            rows = con.execute(
                "SELECT task_id, map_index, state, start_date, end_date FROM task_instance "
                "WHERE dag_id=? AND run_id=? ORDER BY rowid",
                (self.dag_id, self.run_id),
            ).fetchall()
            return fold(rows)
        return []

    def read_log(self) -> None:
        """Take in what the log gained since the last call: progress lines, task markers."""
        if not self.log.exists():
            return
        with open(self.log, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a half-written last line waits for the next call
        self.offset += end
        for line in data[:end].decode("utf-8", "replace").splitlines():
            if m := PROGRESS.search(line):
                key = (m["stage"], int(m["part"]))
                self.progress[key] = PartProgress(
                    int(m["done"]), int(m["total"]), m["unit"], float(m["rate"]), m["eta"]
                )
            elif m := DAG_TEST_TASK.search(line):
                self.current = m["task"] if m["what"] == "starting" else None


def part_summary(root: Path, part: int) -> dict:
    """The download stage's summary of one part, or ``{}`` while there is none."""
    path = root / "images" / f"part_{part:05d}_summary.json"
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return {}


def task_log(log: Path, task_id: str, map_index: int = -1, lines: int = 15) -> list[str]:
    """The last ``lines`` lines the log holds for one task instance's last attempt (from its
    ``[DAG TEST] starting`` marker to the next one), or the log's tail if it has no marker."""
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    want = f"[DAG TEST] starting task_id={task_id} map_index={map_index} "
    starts = [i for i, line in enumerate(text) if want in line]
    if not starts:
        return text[-lines:]
    block = []
    for line in text[starts[-1] + 1 :]:
        if "[DAG TEST] starting task_id=" in line:
            break
        block.append(line)
    return block[-lines:]
