"""How ``laionflow demo`` shows a run: a live progress view on a terminal (``rich``), plain
lines otherwise (CI, pipes) — one per finished stage and per finished part of download and
embed, so a whole demo stays within a screenful. The task logs never come here; they go to
the log file whose path the demo prints.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from laionflow.demo_watch import FINAL, RunWatch, Task, part_summary

#: per-part stages whose parts get a line (plain) or a progress bar (terminal)
PART_STAGES = ("download", "embed")
#: above this many parts, the plain view reports per-part stages as one line each
PLAIN_PART_LINES = 8
MARK = {"success": "done", "skipped": "skipped", "failed": "FAILED"}


def seconds(task: Task) -> float | None:
    if not (task.started and task.ended):
        return None
    start, end = (datetime.fromisoformat(v) for v in (task.started, task.ended))
    return max((end - start).total_seconds(), 0.0)


def part_result(stage: str, root: Path, part: int) -> str:
    """One part's outcome in a few words, from the summary its stage wrote."""
    if stage == "download":
        s = part_summary(root, part)
        if s:
            failed = ", ".join(f"{k} {v}" for k, v in sorted(s.get("failed", {}).items()))
            return (
                f"{s['successes']}/{s['input_rows']} images"
                + (f" ({failed})" if failed else "")
                + f", {s.get('images_per_s') or 0:.1f} img/s"
            )
    if stage == "embed":
        import json

        path = root / "embeddings" / f"part_{part:05d}" / "_done.json"
        if path.exists():
            s = json.loads(path.read_text())
            return f"{s['rows']} embeddings, {s.get('inference_samples_per_s') or 0:.0f}/s"
    return ""


class PlainView:
    """Lines for a non-terminal: printed once, when something finishes."""

    def __init__(self, out: TextIO, dataset_root: Path):
        self.out, self.root = out, dataset_root
        self.said: set[tuple[str, int]] = set()

    def note(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self) -> None:
        pass

    def update(self, tasks: list[Task], watch: RunWatch) -> None:
        for task in tasks:
            if task.task_id in PART_STAGES and len(task.parts) <= PLAIN_PART_LINES:
                for part, state in sorted(task.parts.items()):
                    if state == "success" and (task.task_id, part) not in self.said:
                        self.said.add((task.task_id, part))
                        detail = part_result(task.task_id, self.root, part)
                        self.note(f"  {task.task_id} part_{part:05d}: {detail}")
            if task.state in FINAL and (task.task_id, -1) not in self.said:
                self.said.add((task.task_id, -1))
                took = seconds(task)
                parts = f", {task.parts_done()}/{len(task.parts)} parts" if task.mapped else ""
                time_s = f" in {took:.1f} s" if took is not None else ""
                self.note(f"  {task.task_id}: {MARK.get(task.state, task.state)}{parts}{time_s}")

    def stop(self) -> None:
        pass


class LiveView:
    """A live table on a terminal: every stage with its state and time; per-part bars with
    done/total, rate and ETA for download and embed."""

    def __init__(self, out: TextIO, dataset_root: Path):
        from rich.console import Console

        self.console = Console(file=out, highlight=False)
        self.root = dataset_root
        self.live = None
        self.header = "starting Airflow (dag.test() on SQLite)"

    def note(self, text: str) -> None:
        self.console.print(text, markup=False)

    def start(self) -> None:
        from rich.live import Live

        self.live = Live(self._table([], None), console=self.console, refresh_per_second=4)
        self.live.start()

    def update(self, tasks: list[Task], watch: RunWatch) -> None:
        if self.live is not None:
            self.live.update(self._table(tasks, watch))

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _table(self, tasks: list[Task], watch: RunWatch | None):
        from rich.progress_bar import ProgressBar
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        for _ in range(5):
            table.add_column()
        if not tasks:
            table.add_row(Spinner("dots"), self.header, "", "", "")
        for task in tasks:
            mark = {"success": "[green]✓", "failed": "[red]✗", "upstream_failed": "[red]-"}.get(
                task.state or "", "[dim]·"
            )
            icon = Spinner("dots") if task.state == "running" else mark
            took = seconds(task)
            detail = f"{task.parts_done()}/{len(task.parts)} parts" if task.mapped else ""
            table.add_row(icon, task.task_id, detail, f"{took:.1f}s" if took else "", "")
            if task.task_id in PART_STAGES and watch is not None:
                for part, state in sorted(task.parts.items()):
                    p = watch.progress.get((task.task_id, part))
                    if state == "success":
                        row = part_result(task.task_id, self.root, part)
                        table.add_row(
                            "",
                            f"  part_{part:05d}",
                            ProgressBar(1, 1, width=20, finished_style="green"),
                            row,
                            "",
                        )
                    elif p is not None and state == "running":
                        bar = ProgressBar(total=max(p.total, 1), completed=p.done, width=20)
                        text = f"{p.done}/{p.total} {p.unit}"
                        table.add_row(
                            "", f"  part_{part:05d}", bar, text, f"{p.rate:.1f}/s ETA {p.eta}"
                        )
        return table


def make(out: TextIO | None, dataset_root: Path) -> PlainView | LiveView:
    """The live view on a terminal, plain lines anywhere else."""
    out = out or sys.stdout
    return LiveView(out, dataset_root) if out.isatty() else PlainView(out, dataset_root)
