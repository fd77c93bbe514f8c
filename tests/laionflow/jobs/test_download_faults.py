"""The download stage against a seeded fault plan: every URL ends up downloaded or counted
as failed with the reason its fault implies."""

import glob

import pandas as pd
import pyarrow.parquet as pq

from laionflow.jobs import download
from laionflow.recipes import load_recipe
from laionflow.shards import reason_of
from laionflow.testing.corpus import CorpusSpec, build_corpus
from laionflow.testing.faults import KINDS, OUTCOME, FaultPlan
from laionflow.testing.server import FixtureServer

EXPECTED = {**OUTCOME, None: "success"}


def test_every_url_is_downloaded_or_failed_with_its_reason(tmp_path, monkeypatch):
    assert set(EXPECTED) - {None} == set(KINDS)
    with FixtureServer(tmp_path / "srv") as srv:
        monkeypatch.setenv("LAIONFLOW_FETCH_ALLOW", srv.allow_entry)
        corpus = build_corpus(
            tmp_path / "srv",
            srv.base_url,
            CorpusSpec(rows=220, parts=1, dead_fraction=0, duplicate_fraction=0, max_side=200),
        )
        srv.plan = FaultPlan({k: 0.3 / len(KINDS) for k in KINDS}, seed=2, transient_fraction=0)
        rows = pd.read_parquet(corpus.metadata_files[0]).rename(
            columns={"URL": "url", "TEXT": "caption"}
        )[["url", "caption"]]
        filtered = tmp_path / "ds" / "laion400m" / "metadata" / "filtered"
        filtered.mkdir(parents=True)
        rows.to_parquet(filtered / "part-00000.parquet")
        recipe = load_recipe(
            "laion400m",
            {
                "root": str(tmp_path / "ds"),
                "download.processes": 1,
                "download.threads": 16,
                "download.timeout_s": 2,
                # one fixture host: accounting here, politeness in test_web_download
                "download.per_domain_concurrency": 0,
            },
        )
        summary = download.run(recipe, 0)
        shards = pd.concat(
            pq.read_table(f).to_pandas()
            for f in glob.glob(f"{tmp_path}/ds/laion400m/images/part_00000/*.parquet")
        )
        got = {
            u: ("success" if s == "success" else reason_of(e))
            for u, s, e in zip(
                shards["url"], shards["status"], shards["error_message"], strict=True
            )
        }
        want = {
            u: EXPECTED[(srv.plan.assign(u.replace(srv.base_url, "")) or (None,))[0]]
            for u in rows["url"]
        }
    assert got == want
    faulted = sum(v != "success" for v in want.values())
    assert faulted / len(rows) >= 0.2
    assert summary["successes"] + summary["failed_total"] == len(rows)
