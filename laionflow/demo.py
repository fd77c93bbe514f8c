"""``laionflow demo``: the whole laion400m recipe on the embedded default, offline.

Builds the fixture corpus, serves it on 127.0.0.1, saves a small open_clip checkpoint, and runs
the real ``laion400m`` DAG through ``dag.test()``; prints the ledger and one query.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from laionflow import embedded

DEMO_MODEL = "laionflow-tiny"


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
            "download.number_sample_per_shard": 250,
            "clip.num_workers": 1,
            "clip.batch_size": 128,
            "metadata.backoff_s": 0.2,
            "index.max_index_memory_usage": "256M",
            "index.current_memory_available": "2G",
        },
    }


def run_demo(root: str, rows: int = 2000, parts: int = 4) -> int:
    root_path = Path(root).resolve()
    embedded.configure(root_path / "airflow")
    embedded.migrate(root_path / "airflow")
    from laionflow.clip_model import save_random_checkpoint
    from laionflow.query import query
    from laionflow.reporting.ledger import format_ledger
    from laionflow.testing.corpus import CorpusSpec, build_corpus
    from laionflow.testing.server import FixtureServer

    for stale in ("laion400m", "fixture"):
        shutil.rmtree(root_path / stale, ignore_errors=True)
    checkpoint = save_random_checkpoint(DEMO_MODEL, root_path / "models" / f"{DEMO_MODEL}.pt")
    with FixtureServer(root_path / "fixture") as server:
        # the fixture server is on loopback, which the fetch guard refuses unless allowlisted
        os.environ["LAIONFLOW_FETCH_ALLOW"] = server.allow_entry
        manifest = build_corpus(
            root_path / "fixture", server.base_url, CorpusSpec(rows=rows, parts=parts)
        )
        dag = embedded.load_dag("laion400m")
        run = dag.test(run_conf=demo_conf(root_path, manifest.metadata_urls, checkpoint, parts))
    import json

    summary_path = root_path / "laion400m" / "summary.json"
    if str(run.state) != "success" or not summary_path.exists():
        print(f"demo run ended in state {run.state}; see the task logs above")
        return 1
    summary = json.loads(summary_path.read_text())
    print()
    print(format_ledger(summary))
    index_dir = root_path / "laion400m" / "index"
    import logging

    logging.getLogger().setLevel(logging.WARNING)  # open_clip logs model loading at INFO
    print(f'\nquery "red cat" on {index_dir}:')
    for hit in query(str(index_dir), text="red cat", k=3):
        print(f"  {hit['id']:>6}  {hit['distance']:.4f}  {hit['caption']!r}")
    from laionflow.layout import Layout

    run_report = Path(Layout(str(root_path / "laion400m")).run_dir(run.run_id)) / "report"
    print(f"\nsummary: {summary_path}")
    print(f"dataset card: {run_report / 'README.md'}")
    print(f"report: {run_report / 'index.html'}")
    return 0
