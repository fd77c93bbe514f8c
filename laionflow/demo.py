"""``laionflow demo``: the whole laion400m recipe on the embedded default, offline.

Fits the tiny CLIP model on drawn (picture, caption) pairs (:mod:`laionflow.demo_fit`), builds
the fixture corpus with pictures that show their captions, serves it on 127.0.0.1, and runs
the real ``laion400m`` DAG through ``dag.test()`` in a child process (:mod:`laionflow.demo_run`)
whose output goes to ``<root>/demo.log``. Meanwhile it shows progress (:mod:`laionflow.demo_view`,
fed by :mod:`laionflow.demo_watch`); it ends with the ledger, a text query and the paths — or,
when a task fails, that task's last log lines and the log's path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

DEMO_MODEL = "laionflow-tiny"
DEMO_QUERY = "red circle"


def demo_conf(root: Path, metadata_urls: list[str], checkpoint: str, parts: int) -> dict:
    """Trigger conf of the demo run: the recipe's defaults, pointed at the fixture."""
    return {
        "root": str(root),
        "metadata_urls": metadata_urls,
        "num_parts": parts,
        "processes": 2,
        "threads": 16,
        "clip_model": DEMO_MODEL,
        "clip_pretrained": checkpoint,
        "device": "cpu",
        "overrides": {
            "download.number_sample_per_shard": 100,  # several shards a part: steady progress
            "clip.num_workers": 1,
            "clip.batch_size": 128,
            "metadata.backoff_s": 0.2,
            "index.max_index_memory_usage": "256M",
            "index.current_memory_available": "2G",
        },
    }


def _quiet_logging(log_path: Path) -> None:
    """This process's own logging and warnings (open_clip, torch) go to the log file too."""
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)


def _watch(proc: subprocess.Popen, watch, view, interval: float) -> None:
    view.start()
    try:
        while proc.poll() is None:
            watch.read_log()
            view.update(watch.tasks(), watch)
            time.sleep(interval)
        watch.read_log()
        view.update(watch.tasks(), watch)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=30)
        raise
    finally:
        view.stop()


def _run_dag(root: Path, conf: dict, log_path: Path, view, extra_env: dict) -> tuple[dict, object]:
    """Run the DAG in :mod:`laionflow.demo_run`, its output appended to the log; returns its
    result (``{"state", "run_id"}``, or ``{"state": "crashed"}``) and the watch."""
    from laionflow.demo_watch import RunWatch

    conf_path, result_path = root / "demo-conf.json", root / "demo-result.json"
    conf_path.write_text(json.dumps(conf, indent=2))
    result_path.unlink(missing_ok=True)
    since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    env = {**os.environ, "LAIONFLOW_PROGRESS_S": "1", "PYTHONUNBUFFERED": "1", **extra_env}
    watch = RunWatch(root / "airflow" / "airflow.db", "laion400m", log_path, since)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "laionflow.demo_run", str(conf_path), str(result_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        _watch(proc, watch, view, 0.25 if hasattr(view, "live") else 1.0)
    if result_path.exists():
        return json.loads(result_path.read_text()), watch
    return {"state": "crashed", "exit_code": proc.returncode}, watch


def _failure(result: dict, watch, log_path: Path, out: TextIO) -> int:
    from laionflow.demo_watch import task_log

    print(f"\ndemo run ended in state {result['state']}", file=out)
    failed = [
        (t.task_id, part)
        for t in watch.tasks()
        for part, state in ([(-1, t.state)] if not t.mapped else sorted(t.parts.items()))
        if state == "failed"
    ]
    for task_id, part in failed:
        where = f"{task_id}" + (f" (part_{part:05d})" if part >= 0 else "")
        print(f"task {where} failed; the last lines of its log:", file=out)
        for line in task_log(log_path, task_id, part):
            print(f"  {line[:300]}", file=out)
    if not failed:  # no task failed: the run itself did (Airflow could not start, a crash)
        print("the last lines of the log:", file=out)
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        for line in text.splitlines()[-15:]:
            print(f"  {line[:300]}", file=out)
    print(f"full log: {log_path}", file=out)
    return 1


def _results(root: Path, run_id: str, fitted, log_path: Path, out: TextIO) -> int:
    from laionflow.layout import Layout
    from laionflow.query import query
    from laionflow.reporting.ledger import format_ledger

    dataset = root / "laion400m"
    summary = json.loads((dataset / "summary.json").read_text())
    print("\n" + format_ledger(summary), file=out)
    index_dir = dataset / "index"
    print(f'\nquery "{DEMO_QUERY}" (text → image) on {index_dir}:', file=out)
    for hit in query(str(index_dir), text=DEMO_QUERY, k=3):
        print(f"  {hit['id']:>6}  {hit['distance']:.4f}  {hit['caption']!r}", file=out)
    print(
        f"  ({DEMO_MODEL} was fitted for {fitted.steps} steps on drawn shapes: it tells 4 colours"
        " apart, shapes only roughly, and knows nothing else; for real data set"
        " clip_model/clip_pretrained, e.g. ViT-B-32 / laion400m_e32)",
        file=out,
    )
    report = Path(Layout(str(dataset)).run_dir(run_id)) / "report"
    print(f"\nsummary: {dataset / 'summary.json'}", file=out)
    print(f"dataset card: {report / 'README.md'}", file=out)
    print(f"report: {report / 'index.html'}", file=out)
    print(f"task logs: {log_path}", file=out)
    return 0


def run_demo(
    root: str,
    rows: int = 2000,
    parts: int = 4,
    out: TextIO | None = None,
    extra_env: dict | None = None,
) -> int:
    """The demo, start to end; ``extra_env`` reaches the DAG run (the tests plant failures)."""
    from laionflow import demo_fit, demo_view
    from laionflow.testing.corpus import CorpusSpec, build_corpus
    from laionflow.testing.server import FixtureServer

    out = out or sys.stdout
    root_path = Path(root).resolve()
    root_path.mkdir(parents=True, exist_ok=True)
    for stale in ("laion400m", "fixture"):
        shutil.rmtree(root_path / stale, ignore_errors=True)
    log_path = root_path / "demo.log"
    log_path.write_text("")
    _quiet_logging(log_path)
    view = demo_view.make(out, root_path / "laion400m")
    view.note(f"laionflow demo in {root_path} (task logs: {log_path})")
    model_path = root_path / "models" / f"{DEMO_MODEL}.pt"
    fitted, reused = demo_fit.fit_once(DEMO_MODEL, model_path)
    view.note(
        f"model: {DEMO_MODEL} fitted on {fitted.pairs} drawn (picture, caption) pairs, "
        f"{fitted.steps} steps, loss {fitted.first_loss:.2f} → {fitted.last_loss:.2f}, "
        + (f"reused from {model_path}" if reused else f"{fitted.seconds:.0f} s")
    )
    with FixtureServer(root_path / "fixture") as server:
        spec = CorpusSpec(rows=rows, parts=parts, semantic=True)
        manifest = build_corpus(root_path / "fixture", server.base_url, spec)
        view.note(
            f"fixture: {manifest.rows} metadata rows in {parts} parts, {manifest.images} "
            f"pictures, served at {server.base_url}; running laion400m through dag.test()"
        )
        conf = demo_conf(root_path, manifest.metadata_urls, str(model_path), parts)
        # the fixture server is on loopback, which the fetch guard refuses unless allowlisted
        env = {"LAIONFLOW_FETCH_ALLOW": server.allow_entry, **(extra_env or {})}
        try:
            result, watch = _run_dag(root_path, conf, log_path, view, env)
        except KeyboardInterrupt:
            print(f"\ninterrupted; task logs: {log_path}", file=out)
            return 130
    if result["state"] != "success":
        return _failure(result, watch, log_path, out)
    return _results(root_path, result["run_id"], fitted, log_path, out)
