"""Acceptance of issue 4: the ``laion400m`` DAG against the fault server (≥ 20 % faults), then
one repair run after the transient faults clear, then the refresh of embeddings and index.

Every servable image ends up in the dataset exactly once, every other URL is counted with the
reason its fault implies, the ledger balances, and no complete shard was rewritten."""

from __future__ import annotations

import collections
import glob
import hashlib
import json
import os
import tarfile

import pandas as pd
import pytest

from laionflow import fs
from laionflow.testing.corpus import CorpusSpec, build_corpus
from laionflow.testing.faults import BEFORE_FILE, KINDS, OUTCOME, FaultPlan
from laionflow.testing.server import FixtureServer
from tests.helpers import run_dag, small_run_conf

BENIGN = {k for k, v in OUTCOME.items() if v == "success"}  # misbehave, yet servable


def _files(root) -> dict[str, str]:
    return {
        p: hashlib.sha256(open(p, "rb").read()).hexdigest()
        for p in glob.glob(f"{root}/images/part_*/*")
    }


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, airflow_db, checkpoint, fixture_server):
    work = tmp_path_factory.mktemp("faulty")
    with FixtureServer(work / "srv") as srv:
        corpus = build_corpus(work / "srv", srv.base_url, CorpusSpec(rows=200, parts=2, seed=5))
        srv.plan = FaultPlan({k: 0.3 / len(KINDS) for k in KINDS}, seed=3, transient_fraction=0.5)
        saved = os.environ["LAIONFLOW_FETCH_ALLOW"]
        os.environ["LAIONFLOW_FETCH_ALLOW"] = f"{saved},{srv.allow_entry}"
        try:
            conf = small_run_conf(work, corpus.metadata_urls, checkpoint)
            # fault accounting on one fixture host: no per-host limit (politeness has its own
            # acceptance test on the simulated web of many hosts)
            conf["overrides"].update(
                {
                    "download.timeout_s": 2,
                    "repair.backoff_s": 0,
                    "download.per_domain_concurrency": 0,
                }
            )
            first, first_states = run_dag("laion400m", conf)
            root = work / "laion400m"
            before = _files(root)
            first_summary = fs.read_json(f"{root}/summary.json")
            repair, repair_states = run_dag(
                "laionflow_repair", {"recipes": ["laion400m"], "root": str(work)}
            )
            config = fs.newest_in_runs(str(root), "config.json")
            refresh, refresh_states = run_dag(
                "laion400m_refresh", {"config_path": config, "parts": [0, 1]}
            )
        finally:
            os.environ["LAIONFLOW_FETCH_ALLOW"] = saved
        yield {
            "srv": srv,
            "root": root,
            "runs": (first, repair, refresh),
            "states": (first_states, repair_states, refresh_states),
            "before": before,
            "first_summary": first_summary,
        }


def _expected(faulty) -> tuple[set[str], collections.Counter, int]:
    """From the fault plan: the URLs that must be downloaded, the reasons of the others."""
    srv, root = faulty["srv"], faulty["root"]
    urls = pd.concat(pd.read_parquet(p) for p in glob.glob(f"{root}/metadata/filtered/*.parquet"))
    servable, reasons, faulted = set(), collections.Counter(), 0
    for url in urls["url"]:
        path = url.replace(srv.base_url, "")
        assigned = srv.plan.assign(path)
        faulted += assigned is not None
        permanent = assigned is not None and not assigned[1] and assigned[0] not in BENIGN
        if permanent and assigned[0] in BEFORE_FILE:
            reasons[OUTCOME[assigned[0]]] += 1
        elif not (srv.root / path.lstrip("/")).is_file():
            reasons["http_404"] += 1  # the corpus's dead URLs
        elif not permanent:
            servable.add(url)
        else:
            reasons[OUTCOME[assigned[0]]] += 1
    return servable, reasons, faulted / len(urls)


def test_every_run_succeeds(faulty):
    for run, states in zip(faulty["runs"], faulty["states"], strict=True):
        assert str(run.state) == "success", states
    assert ("repair", 0) in faulty["states"][1] and ("repair", 1) in faulty["states"][1]
    refreshed = faulty["states"][2]  # every stage after the download, on the repaired parts
    assert {("annotate", 0), ("annotate", 1), ("embed", 0), ("embed", 1)} <= set(refreshed)


def test_the_refresh_brings_the_annotations_up_to_date(faulty):
    import csv

    led = fs.read_json(f"{faulty['root']}/summary.json")["ledger"]
    listed = 0
    for part in (0, 1):
        with open(f"{faulty['root']}/images/part_{part:05d}_stats.csv") as fh:
            listed += sum(int(row["samples"]) for row in csv.DictReader(fh))
    assert listed == led["downloaded"]  # the patch shards' samples included


def test_fault_rate_is_at_least_20_percent_and_transients_failed_first(faulty):
    servable, _, rate = _expected(faulty)
    assert rate >= 0.2
    first = faulty["first_summary"]["ledger"]
    assert first["downloaded"] < len(servable)  # transient faults did fail the first pass


def test_every_servable_image_is_present_exactly_once(faulty):
    servable, _, _ = _expected(faulty)
    urls = []
    for tar in glob.glob(f"{faulty['root']}/images/part_*/*.tar"):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if m.name.endswith(".json"):
                    urls.append(json.load(t.extractfile(m))["url"])
    counts = collections.Counter(urls)
    assert set(counts) == servable
    assert max(counts.values()) == 1


def test_every_other_url_is_counted_with_its_reason_and_the_ledger_balances(faulty):
    servable, reasons, _ = _expected(faulty)
    led = fs.read_json(f"{faulty['root']}/summary.json")["ledger"]
    assert led["balanced"]
    assert led["downloaded"] == len(servable)
    assert led["failed"] == dict(reasons)
    assert led["embedding_rows"] == led["downloaded"] == led["index_size"]


def test_no_complete_shard_was_rewritten_and_only_new_samples_were_embedded(faulty):
    before, after = faulty["before"], _files(faulty["root"])
    assert {p: after[p] for p in before} == before
    new = set(after) - set(before)
    assert new and all(int(os.path.basename(p)[:5]) >= 1 for p in new)
    recovered = 0
    for part in (0, 1):
        done = fs.read_json(f"{faulty['root']}/embeddings/part_{part:05d}/_done.json")
        summary = fs.read_json(f"{faulty['root']}/images/part_{part:05d}_summary.json")
        assert [b["batch"] for b in done["batches"]] == [0, 1]
        assert done["batches"][1]["rows"] == summary["repaired"]["recovered"] > 0
        recovered += summary["repaired"]["recovered"]
    first = faulty["first_summary"]["ledger"]["downloaded"]
    assert (
        first + recovered == fs.read_json(f"{faulty['root']}/summary.json")["ledger"]["downloaded"]
    )
