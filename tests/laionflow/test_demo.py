"""``laionflow demo`` as a user meets it: a few plain lines through a pipe, a live progress
view on a terminal, the task logs in a file, a failing task's log tail on screen, and a text
query for a colour answered with a picture of that colour. Two small real runs (120 rows, 2
parts), each on its own root, at the same time: the piped one starts in the background while
the terminal one is driven, so the module takes little more than one run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pexpect
import pytest

BIN = str(Path(sys.executable).with_name("laionflow"))
ARGS = ["demo", "--rows", "120", "--parts", "2"]


class Piped:
    """``laionflow demo`` with its output through a pipe, drained by a thread as it runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc = subprocess.Popen(
            [BIN, *ARGS, "--root", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.chunks: list[str] = []
        self.reader = threading.Thread(target=lambda: self.chunks.extend(self.proc.stdout))
        self.reader.start()

    def wait(self, timeout: float) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=60)
        return code, "".join(self.chunks)


@pytest.fixture(scope="module")
def piped(tmp_path_factory):
    run = Piped(tmp_path_factory.mktemp("demo-pipe"))
    yield run
    if run.proc.poll() is None:  # a failed test left it running
        run.proc.kill()
        run.proc.wait()


def test_demo_on_a_terminal_shows_progress_and_a_failed_tasks_log(piped, tmp_path: Path):
    """Under a pseudo-terminal: the live view (stages, per-part bars); the embed stage is
    killed by a planted failpoint, so the demo ends with that task's log tail and the log path.
    (The piped demo runs meanwhile, on its own root.)"""
    demo_root = tmp_path / "demo"
    env = {**os.environ, "LAIONFLOW_FAILPOINTS": "embed.before_done", "LANG": "C.UTF-8"}
    child = pexpect.spawn(
        BIN,
        [*ARGS, "--root", str(demo_root)],
        env=env,
        encoding="utf-8",
        timeout=900,
        dimensions=(50, 140),
    )
    screen = []
    child.expect(r"download")  # a stage row of the live view
    screen.append(child.before + child.after)
    child.expect(r"part_0000[01].*(urls|images)")  # a per-part row under download
    screen.append(child.before + child.after)
    child.expect(r"task embed \(part_0000[01]\) failed; the last lines of its log:")
    tail = child.before
    child.expect(pexpect.EOF)
    rest = child.before
    child.close()
    assert child.exitstatus == 1
    shown = "".join(screen) + tail
    assert "\x1b[" in shown  # rich drew it: a terminal view, not plain lines
    assert "✓" in shown and "plan" in shown
    assert f"full log: {demo_root / 'demo.log'}" in rest
    assert "[DAG TEST]" not in shown  # task logs stay in the file
    assert "embed" in rest and rest.count("\n") >= 5  # the failed task's own log lines


def test_demo_through_a_pipe_prints_few_lines_and_finds_red(piped):
    demo_root = piped.root
    code, stdout = piped.wait(timeout=900)

    lines = stdout.splitlines()
    assert code == 0, stdout
    assert len(lines) <= 50, stdout  # + make's one set-up line on a fresh machine: <= 60
    assert not [line for line in lines if "[info" in line or "INFO" in line], stdout
    assert "BALANCED" in stdout
    assert re.search(r"^  download part_00001: \d+/\d+ images", stdout, re.M), stdout
    assert re.search(r"^  embed: done, 2/2 parts", stdout, re.M), stdout
    # the task logs went to the file the demo names, not to the screen
    log = demo_root / "demo.log"
    assert f"task logs: {log}" in stdout
    text = log.read_text()
    assert "[DAG TEST] starting task_id=download map_index=1" in text
    assert re.search(r"embed part_00000: \d+/\d+ samples", text)
    # the fitted model answers a colour with that colour, by its pixels, not only its caption
    from PIL import Image, ImageOps

    from laionflow.query import query
    from laionflow.testing.pictures import dominant_colour

    hits = query(str(demo_root / "laion400m" / "index"), text="red circle", k=3)
    assert hits[0]["caption"].startswith("red "), hits
    picture = demo_root / "fixture" / "images" / hits[0]["url"].rsplit("/", 1)[1]
    assert dominant_colour(ImageOps.exif_transpose(Image.open(picture))) == "red"
    assert f"  {hits[0]['id']:>6}  " in stdout  # the demo printed that same answer
    blue = query(str(demo_root / "laion400m" / "index"), text="blue square", k=1)
    assert blue[0]["caption"].startswith("blue "), blue


def test_the_view_reads_the_stages_own_progress_lines():
    """The live bars come from :func:`laionflow.progress.line`; if its wording changes, this
    fails instead of the bars silently disappearing."""
    from laionflow.demo_watch import PROGRESS
    from laionflow.progress import line

    m = PROGRESS.search(
        f"INFO laionflow.jobs.download: {line('download part_00003', 'urls', 40, 160, 8.0)}"
    )
    assert m and (m["stage"], m["part"], m["done"], m["total"], m["unit"]) == (
        "download",
        "00003",
        "40",
        "160",
        "urls",
    )
    assert (float(m["rate"]), m["eta"]) == (5.0, "24s")
