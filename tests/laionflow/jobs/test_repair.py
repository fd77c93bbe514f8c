"""The repair stage: retryable failures come back in patch shards, with per-URL attempts,
backoff and given-up; complete shards are never rewritten."""

from __future__ import annotations

import glob
import hashlib
import os
import time

import pandas as pd
import webdataset as wds

from laionflow import fs
from laionflow.jobs import annotate, download, patch
from laionflow.testing.corpus import CorpusSpec, build_corpus
from laionflow.testing.faults import Fault
from laionflow.testing.server import FixtureServer
from tests.helpers import part_recipe


def checksums(folder: str) -> dict[str, str]:
    return {
        os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest()
        for p in glob.glob(f"{folder}/*")
        if os.path.isfile(p)
    }


def tar_keys(folder: str) -> list[str]:
    keys = []
    for tar in sorted(glob.glob(f"{folder}/*.tar")):
        keys += [
            s["__key__"]
            for s in wds.WebDataset(f"file:{tar}", shardshuffle=False, empty_check=False)
        ]
    return keys


def test_retryable_failures_are_patched_with_backoff_until_given_up(tmp_path, monkeypatch):
    with FixtureServer(tmp_path / "srv") as srv:
        monkeypatch.setenv("LAIONFLOW_FETCH_ALLOW", srv.allow_entry)
        corpus = build_corpus(
            tmp_path / "srv",
            srv.base_url,
            CorpusSpec(rows=40, parts=1, dead_fraction=0, duplicate_fraction=0, max_side=96),
        )
        urls = list(pd.read_parquet(corpus.metadata_files[0])["URL"])
        paths = [u.replace(srv.base_url, "") for u in urls]
        always_503, heals, gone = urls[0:3], urls[3:6], urls[6:8]
        for p in paths[0:3]:
            srv.faults[p] = Fault("status", 503, times=-1)
        for p in paths[3:6]:
            srv.faults[p] = Fault("status", 500, times=1)
        for p in paths[6:8]:
            srv.faults[p] = Fault("status", 404, times=-1)
        root = tmp_path / "ds"
        recipe = part_recipe(
            root,
            urls,
            **{
                "download.number_sample_per_shard": 16,
                "repair.max_attempts": 3,
                "repair.backoff_s": 100,
                "repair.backoff_factor": 2,
            },
        )
        folder = f"{recipe.dataset_root}/images/part_00000"
        first = download.run(recipe, 0)
        assert first["failed"] == {"http_404": 2, "http_500": 3, "http_503": 3}
        assert first["retry_pending"] == 6 and first["given_up"] == 0
        before = checksums(folder)
        assert len([n for n in before if n.endswith(".tar")]) == 3

        # backoff not elapsed: nothing retried, nothing written
        waited = patch.run(recipe, 0, now=time.time() + 50)
        assert waited["repaired"] == {"retried": 0, "recovered": 0}
        assert checksums(folder) == before

        # after the backoff: the six retryable URLs go to a patch shard, three come back
        second = patch.run(recipe, 0, now=time.time() + 101)
        assert second["repaired"] == {"retried": 6, "recovered": 3}
        after = checksums(folder)
        assert {k: after[k] for k in before} == before  # complete shards untouched
        assert sorted(set(after) - set(before)) == [
            "00003.parquet",
            "00003.tar",
            "00003_stats.json",
        ]
        assert second["successes"] == first["successes"] + 3
        assert second["failed"] == {"http_404": 2, "http_503": 3}
        ledger = {
            u["url"]: u
            for u in fs.read_json(f"{root}/laion400m/images/part_00000_repairs.json")["urls"]
        }
        assert set(ledger) == set(always_503) | set(gone)
        assert not set(heals) & set(ledger)  # recovered
        for url in always_503:
            assert ledger[url]["attempts"] == 2 and ledger[url]["state"] == "pending"
            assert ledger[url]["next_eligible"] == ledger[url]["last_attempt"] + 200
        for url in gone:
            assert ledger[url]["state"] == "final" and ledger[url]["attempts"] == 1

        # third attempt fails again: given up, with its last reason
        third = patch.run(recipe, 0, now=time.time() + 1000)
        assert third["repaired"] == {"retried": 3, "recovered": 0}
        assert third["given_up"] == 3 and third["retry_pending"] == 0
        ledger = {
            u["url"]: u
            for u in fs.read_json(f"{root}/laion400m/images/part_00000_repairs.json")["urls"]
        }
        for url in always_503:
            assert ledger[url]["state"] == "given_up" and ledger[url]["last_reason"] == "http_503"
            assert ledger[url]["attempts"] == 3
        final = checksums(folder)
        assert patch.run(recipe, 0, now=time.time() + 10**6)["repaired"]["retried"] == 0
        assert checksums(folder) == final
        assert srv.hits[paths[0]] == 3 and srv.hits[paths[6]] == 1

    keys = tar_keys(folder)
    assert len(keys) == len(set(keys)) == third["successes"] == 40 - 5
    stats = annotate.run(recipe, 0)
    assert stats["samples"] == 35 and stats["rows"] == 5  # 3 shards + 2 patch shards


def test_a_retried_url_with_a_listed_image_is_quarantined_not_patched_in(tmp_path, monkeypatch):
    """The repair's patch shards pass the known-bad hash gate like a first download: a URL that
    failed with a 500 and comes back on the retry with an image on the MD5 list ends in the
    quarantine folder with status ``quarantined``, in no tar; the other healed URL is kept."""
    with FixtureServer(tmp_path / "srv") as srv:
        monkeypatch.setenv("LAIONFLOW_FETCH_ALLOW", srv.allow_entry)
        corpus = build_corpus(
            tmp_path / "srv",
            srv.base_url,
            CorpusSpec(rows=24, parts=1, dead_fraction=0, duplicate_fraction=0, max_side=96),
        )
        urls = list(pd.read_parquet(corpus.metadata_files[0])["URL"])
        jpgs = [u for u in urls if u.endswith(".jpg")][:2]
        listed, healed = jpgs
        for url in jpgs:  # both fail once, then serve their image
            srv.faults[url.replace(srv.base_url, "")] = Fault("status", 500, times=1)
        served = (tmp_path / "srv" / listed.replace(srv.base_url, "").lstrip("/")).read_bytes()
        md5_list = tmp_path / "md5.txt"
        md5_list.write_text(hashlib.md5(served).hexdigest() + "\n")
        recipe = part_recipe(
            tmp_path / "ds",
            urls,
            **{
                "download.resize_mode": "no",  # the stored bytes are the served bytes
                "download.skip_reencode": True,
                "download.number_sample_per_shard": 8,
                "repair.backoff_s": 0,
                "safety.hashlists.md5": str(md5_list),
            },
        )
        first = download.run(recipe, 0)
        assert first["failed"] == {"http_500": 2} and first["quarantined"] == 0
        repaired = patch.run(recipe, 0, now=time.time() + 1)
        assert repaired["repaired"] == {"retried": 2, "recovered": 1}
        assert repaired["quarantined"] == 1
        folder = f"{recipe.dataset_root}/images/part_00000"
        rows = pd.concat(pd.read_parquet(p) for p in sorted(glob.glob(f"{folder}/*.parquet")))
        tar_urls = set(rows.set_index("key").loc[tar_keys(folder), "url"])
        assert healed in tar_urls and listed not in tar_urls
        assert list(rows.loc[rows["status"] == "quarantined", "url"]) == [listed]
        reasons = glob.glob(f"{recipe.dataset_root}/quarantine/part_00000/*.reason.json")
        assert [fs.read_json(p)["list"] for p in reasons] == ["md5"]
