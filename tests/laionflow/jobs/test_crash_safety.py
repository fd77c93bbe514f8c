"""SIGKILL in the middle of a download part or an inference partition, then a rerun: the
result equals an uninterrupted run — same sample keys, no duplicates, every tar readable, no
partial or unlisted file left behind."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pandas as pd
import webdataset as wds

from laionflow import fs
from laionflow.plan import write_run_config
from laionflow.recipes import load_recipe
from laionflow.testing.corpus import CorpusSpec, build_corpus
from laionflow.testing.faults import Fault
from laionflow.testing.server import FixtureServer
from tests.helpers import small_overrides


def _stage(stage: str, config: str, part: int, env: dict | None = None, wait: bool = True):
    cmd = [sys.executable, "-m", "laionflow", "run", stage, "--config", config, "--part", str(part)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    if wait:
        out, _ = proc.communicate(timeout=600)
        return proc.returncode, out
    return proc


def _shard_rows(folder: str) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in sorted(glob.glob(f"{folder}/*.parquet"))]
    return pd.concat(frames)[["key", "url", "status"]].sort_values("key").reset_index(drop=True)


def _tar_keys(folder: str) -> list[str]:
    keys = []
    for tar in sorted(glob.glob(f"{folder}/*.tar")):
        with tarfile.open(tar) as t:  # readable to the end
            assert all(m.isfile() for m in t.getmembers())
        keys += [
            s["__key__"]
            for s in wds.WebDataset(f"file:{tar}", shardshuffle=False, empty_check=False)
        ]
    return keys


def _no_leftovers(folder: str) -> None:
    names = os.listdir(folder)
    assert not [n for n in names if n.startswith(".")], names  # temporary files
    complete = {n[:5] for n in names if n.endswith("_stats.json")}
    assert {n[:5] for n in names} == complete, names  # every file belongs to a complete shard


def test_download_killed_mid_part_reruns_to_the_uninterrupted_result(tmp_path, monkeypatch):
    with FixtureServer(tmp_path / "srv") as srv:
        monkeypatch.setenv("LAIONFLOW_FETCH_ALLOW", srv.allow_entry)
        corpus = build_corpus(
            tmp_path / "srv", srv.base_url, CorpusSpec(rows=96, parts=1, duplicate_fraction=0)
        )
        urls = pd.read_parquet(corpus.metadata_files[0])
        for url in urls["URL"]:  # slow enough to be caught mid-part
            srv.faults[url.replace(srv.base_url, "")] = Fault("slow", delay=0.15, times=-1)
        configs, folders = {}, {}
        for name in ("killed", "clean"):
            root = tmp_path / name
            filtered = root / "laion400m" / "metadata" / "filtered"
            filtered.mkdir(parents=True)
            urls.rename(columns={"URL": "url", "TEXT": "caption"})[["url", "caption"]].to_parquet(
                filtered / "part-00000.parquet"
            )
            recipe = load_recipe(
                "laion400m",
                {
                    "root": str(root),
                    "download.processes": 2,
                    "download.threads": 4,
                    "download.image_size": 32,
                    "download.number_sample_per_shard": 12,
                },
            )
            configs[name] = write_run_config(recipe, name)
            folders[name] = f"{recipe.dataset_root}/images/part_00000"

        proc = _stage("download", configs["killed"], 0, wait=False)
        deadline = time.time() + 120
        while len(glob.glob(f"{folders['killed']}/*_stats.json")) < 2:
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert len(glob.glob(f"{folders['killed']}/*_stats.json")) < 8  # really mid-part
        assert not os.path.exists(f"{folders['killed']}/../part_00000_summary.json")

        for name in ("killed", "clean"):
            code, out = _stage("download", configs[name], 0)
            assert code == 0, out[-3000:]
    killed, clean = _shard_rows(folders["killed"]), _shard_rows(folders["clean"])
    pd.testing.assert_frame_equal(killed, clean)
    keys = _tar_keys(folders["killed"])
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted(_tar_keys(folders["clean"]))
    assert len(keys) == int((clean["status"] == "success").sum()) > 0
    _no_leftovers(folders["killed"])
    summary = fs.read_json(f"{folders['killed']}/../part_00000_summary.json")
    assert summary["input_rows"] == len(urls) == summary["successes"] + summary["failed_total"]


def test_inference_killed_mid_partition_reruns_to_the_uninterrupted_result(
    tmp_path, pipeline, corpus, checkpoint
):
    src = f"{pipeline['recipe'].dataset_root}/images/part_00000"
    configs, outs = {}, {}
    for name in ("killed", "clean"):
        recipe = load_recipe("laion400m", small_overrides(tmp_path / name, corpus, checkpoint))
        shutil.copytree(src, f"{recipe.dataset_root}/images/part_00000")
        configs[name] = write_run_config(recipe, name)
        outs[name] = f"{recipe.dataset_root}/embeddings/part_00000"

    code, out = _stage(
        "embed", configs["killed"], 0, env={"LAIONFLOW_FAILPOINTS": "embed.before_done"}
    )
    assert code == -signal.SIGKILL, out[-3000:]
    assert glob.glob(f"{outs['killed']}/img_emb/*.npy")  # killed with the partition half written
    assert not os.path.exists(f"{outs['killed']}/_done.json")
    for name in ("killed", "clean"):
        code, out = _stage("embed", configs[name], 0)
        assert code == 0, out[-3000:]

    def load(base):
        meta = pd.read_parquet(f"{base}/metadata/metadata_0.parquet")
        return (
            meta,
            np.load(f"{base}/img_emb/img_emb_0.npy"),
            np.load(f"{base}/text_emb/text_emb_0.npy"),
        )

    (km, ki, kt), (cm, ci, ct) = load(outs["killed"]), load(outs["clean"])
    assert list(km["key"]) == list(cm["key"]) and km["key"].is_unique
    assert len(km) == pipeline["download"][0]["successes"] == len(ki) == len(kt)
    np.testing.assert_allclose(ki.astype(np.float32), ci.astype(np.float32), atol=2e-3)
    np.testing.assert_allclose(kt.astype(np.float32), ct.astype(np.float32), atol=2e-3)
    for sub in ("img_emb", "text_emb", "metadata"):  # nothing partial or unlisted is visible
        assert len(os.listdir(f"{outs['killed']}/{sub}")) == 1
    assert fs.read_json(f"{outs['killed']}/_done.json")["rows"] == len(km)


def test_a_stats_file_cut_by_a_kill_does_not_complete_its_shard(tmp_path):
    """img2dataset writes ``_stats.json`` in place: a kill mid-write leaves it empty. Such a
    shard is incomplete and its files are removed before the rerun redoes it."""
    from laionflow.shards import remove_orphans, shard_ids

    for sid, stats in ((0, '{"count": 1, "successes": 1}'), (1, ""), (2, '{"count": 1, "su')):
        for ext in (".tar", ".parquet"):
            (tmp_path / f"{sid:05d}{ext}").write_bytes(b"x")
        (tmp_path / f"{sid:05d}_stats.json").write_text(stats)
    assert shard_ids(str(tmp_path)) == [0]
    removed = remove_orphans(str(tmp_path))
    assert removed == sorted(
        f"{s:05d}{e}" for s in (1, 2) for e in (".parquet", ".tar", "_stats.json")
    )
    assert sorted(os.listdir(tmp_path)) == ["00000.parquet", "00000.tar", "00000_stats.json"]
