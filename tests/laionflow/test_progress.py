"""Progress lines while a part downloads and embeds (done/total, rate, ETA at a cadence), and
the compact summary a task returns as XCom."""

from __future__ import annotations

import logging
import re

import pandas as pd

from laionflow import progress
from laionflow.jobs import download, embed
from laionflow.testing.corpus import CorpusSpec, build_corpus
from laionflow.testing.faults import Fault
from laionflow.testing.server import FixtureServer
from tests.helpers import part_recipe

LINE = re.compile(r"(\d+)/(\d+) (urls|samples) \((\d+\.\d)%\), ([\d.]+) \w+/s, ETA (\S+)")


def test_progress_line_and_cadence(caplog):
    assert progress.line("x", "urls", 25, 100, 5.0) == "x: 25/100 urls (25.0%), 5.0 urls/s, ETA 15s"
    assert progress.line("x", "urls", 0, 100, 5.0).endswith("ETA ?")
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, "test.progress"):
        p = progress.Progress("x", 10, log)
        p.every = 3600
        for i in range(10):
            p.update(i)  # within one cadence: silent
        p.update(10, force=True)
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["x: 10/10 samples (100.0%)"]


def test_compact_keeps_counts_and_rates_not_lists():
    summary = {
        "stage": "download",
        "part": 3,
        "successes": 90,
        "failed": {"http_404": 10},
        "bytes": 12345,
        "images_per_s": 12.5,
        "shards": [{"shard": "00000", "count": 100}],
        "config": {"nested": {"deep": 1}},
    }
    assert progress.compact(summary) == {
        "stage": "download",
        "part": 3,
        "successes": 90,
        "failed": {"http_404": 10},
        "bytes": 12345,
        "images_per_s": 12.5,
    }


def test_download_and_embed_log_progress_per_part(tmp_path, monkeypatch, caplog, checkpoint):
    monkeypatch.setenv("LAIONFLOW_PROGRESS_S", "0.3")
    with FixtureServer(tmp_path / "srv") as srv:
        monkeypatch.setenv("LAIONFLOW_FETCH_ALLOW", srv.allow_entry)
        corpus = build_corpus(
            tmp_path / "srv",
            srv.base_url,
            CorpusSpec(rows=48, parts=1, dead_fraction=0, duplicate_fraction=0, max_side=96),
        )
        urls = list(pd.read_parquet(corpus.metadata_files[0])["URL"])
        for u in urls[:16]:  # a slow stretch, so the download spans several cadences
            srv.faults[u.replace(srv.base_url, "")] = Fault("slow", delay=0.6, times=-1)
        recipe = part_recipe(
            tmp_path / "ds",
            urls,
            **{
                "download.number_sample_per_shard": 8,
                "download.threads": 2,
                "clip.model": "laionflow-tiny",
                "clip.pretrained": checkpoint,
                "clip.device": "cpu",
                "clip.num_workers": 0,
                "clip.batch_size": 4,
            },
        )
        with caplog.at_level(logging.INFO, "laionflow"):
            summary = download.run(recipe, 0)
            embed.run(recipe, 0)
    lines = [r.getMessage() for r in caplog.records if LINE.search(r.getMessage())]
    down = [LINE.search(m) for m in lines if m.startswith("download part_00000")]
    assert len(down) >= 3, lines
    done = [int(m.group(1)) for m in down]
    assert done == sorted(done) and all(int(m.group(2)) == len(urls) for m in down)
    assert done[-1] == len(urls) and down[-1].group(4) == "100.0"
    emb = [LINE.search(m) for m in lines if m.startswith("embed part_00000")]
    assert emb and int(emb[-1].group(1)) == int(emb[-1].group(2)) == summary["successes"]
    assert summary["bytes"] > 0
