"""End to end: the real laion400m DAG through ``dag.test()`` on the embedded default."""

import csv
import io
import tarfile

import numpy as np
import pandas as pd
import pytest
import webdataset as wds
from PIL import Image

from laionflow import fs
from laionflow.query import IndexReader


@pytest.fixture(scope="module")
def dag_run(laion400m_run):
    return laion400m_run


def test_run_succeeds_with_readable_map_indices(dag_run):
    run, _ = dag_run
    assert str(run.state) == "success"
    tis = {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances()}
    assert {k for k in tis if k[0] == "download"} == {("download", 0), ("download", 1)}
    assert all(str(ti.state) == "success" for ti in tis.values())
    assert tis[("download", 1)].rendered_map_index == "part_00001"


def test_ledger_holds_exactly(dag_run, corpus):
    _, root = dag_run
    led = fs.read_json(f"{root}/summary.json")["ledger"]
    assert led["raw_rows"] == corpus.rows
    assert (
        led["filtered_total"] + led["duplicates"] + led["downloaded"] + led["failed_total"]
        == led["raw_rows"]
    )
    assert led["not_selected"] == 0
    assert led["embedding_rows"] == led["downloaded"] == led["index_size"]


def test_every_tar_reads_and_stats_csv_counts_match(dag_run):
    _, root = dag_run
    total = 0
    for part in (0, 1):
        with open(f"{root}/images/part_{part:05d}_stats.csv") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            samples = list(
                wds.WebDataset(f"file:{row['tar_path']}", shardshuffle=False, empty_check=False)
            )
            assert int(row["samples"]) == len(samples)
            for s in samples:
                assert {"jpg", "txt", "json"} <= set(s)
                Image.open(io.BytesIO(s["jpg"])).verify()
            with tarfile.open(row["tar_path"]) as tar:
                assert all(m.isfile() for m in tar.getmembers())
            total += len(samples)
    assert total == fs.read_json(f"{root}/summary.json")["ledger"]["downloaded"]


def test_index_self_retrieval_and_metadata_alignment(dag_run):
    _, root = dag_run
    reader = IndexReader(f"{root}/index")
    parts = (0, 1)
    emb = np.concatenate(
        [np.load(f"{root}/embeddings/part_{p:05d}/img_emb/img_emb_0.npy") for p in parts]
    ).astype(np.float32)
    _, ids = reader.search(emb, k=1)
    assert np.mean(ids[:, 0] == np.arange(len(emb))) >= 0.99
    tar_captions = {}
    for p in parts:
        for row in csv.DictReader(open(f"{root}/images/part_{p:05d}_stats.csv")):
            for s in wds.WebDataset(
                f"file:{row['tar_path']}", shardshuffle=False, empty_check=False
            ):
                tar_captions[(p, s["__key__"])] = s["txt"].decode()
    meta = reader.metadata.to_pandas()
    for i in np.flatnonzero(ids[:, 0] == np.arange(len(emb))):
        row = meta.iloc[int(ids[i, 0])]
        assert tar_captions[(int(row["part"]), row["key"])] == row["caption"]
    assert len(meta) == len(tar_captions)


def test_outputs_follow_the_documented_layout(dag_run):
    _, root = dag_run
    for path in (
        "metadata/raw/_metadata_stats.json",
        "metadata/filtered/part-00000.parquet",
        "metadata/filtered/_filter_stats.json",
        "images/part_00000/00000.tar",
        "images/part_00000/00000.parquet",
        "images/part_00000/00000_stats.json",
        "images/part_00000_stats.csv",
        "embeddings/part_00000/img_emb/img_emb_0.npy",
        "embeddings/part_00000/text_emb/text_emb_0.npy",
        "embeddings/part_00000/metadata/metadata_0.parquet",
        "index/image.index",
        "index/text.index",
        "index/metadata/metadata_00000.parquet",
        "summary.json",
    ):
        assert (root / path).exists(), path
    stats = fs.read_json(f"{root}/images/part_00000/00000_stats.json")
    assert {"count", "successes", "failed_to_download", "failed_to_resize", "status_dict"} <= set(
        stats
    )
    assert pd.read_parquet(root / "metadata/filtered/part-00000.parquet")["url"].is_unique


# --- the repair DAG, on this module's dataset (kept last: it damages and repairs it) ---------


def _repair(root):
    from laionflow.embedded import load_dag

    run = load_dag("laionflow_repair").test(
        run_conf={"recipes": ["laion400m"], "root": str(root.parent)}
    )
    return run, {(t.task_id, t.map_index): str(t.state) for t in run.get_task_instances()}


def _sha(path):
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_repair_with_nothing_to_repair_succeeds_and_skips(dag_run):
    _, root = dag_run
    run, states = _repair(root)
    assert str(run.state) == "success"
    assert states[("scan", -1)] == "success"
    assert all(s == "skipped" for k, s in states.items() if k[0] in ("repair", "publish"))


def test_repair_redoes_only_the_missing_shard_and_publishes_an_asset_event(dag_run):
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    _, root = dag_run
    before = fs.read_json(f"{root}/images/part_00001_summary.json")
    tars = sorted((root / "images").glob("part_*/*.tar"))
    sums = {t: _sha(t) for t in tars}
    (root / "images" / "part_00001" / "00000_stats.json").unlink()
    (root / "images" / "part_00001_summary.json").unlink()
    run, states = _repair(root)
    assert str(run.state) == "success", states
    assert [k for k in states if k[0] == "repair"] == [("repair", 0)]
    after = fs.read_json(f"{root}/images/part_00001_summary.json")
    assert after["successes"] == before["successes"] and after["failed"] == before["failed"]
    changed = [t for t in tars if _sha(t) != sums[t]]
    assert all(t.parent.name == "part_00001" and t.name == "00000.tar" for t in changed)
    with settings.Session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == "laionflow://laion400m/repairs")
        ).all()
    assert events and events[-1].extra["parts"] == [1]
