"""The laion400m DAG with its dataset root on a real S3 server (SeaweedFS on 127.0.0.1, keys
enforced), credentials only from an Airflow AWS connection: the same ledger checks as the local
run, the same samples as the local pipeline, and every output in the bucket, none on disk."""

from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np
import pandas as pd
import pytest

from laionflow import fs
from laionflow.testing.s3 import SeaweedS3
from tests.helpers import shard_samples, small_run_conf


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with SeaweedS3(tmp_path_factory.mktemp("seaweed")) as server:
        yield server
    assert server.proc.poll() is not None  # stopped by this test


@pytest.fixture(scope="module")
def s3_run(s3, airflow_db, corpus, checkpoint, fixture_server, tmp_path_factory):
    from laionflow.embedded import load_dag

    cwd = tmp_path_factory.mktemp("cwd")
    mp = pytest.MonkeyPatch()
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        mp.delenv(key)  # the connection is the only source of credentials
    mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    mp.chdir(cwd)  # a path mistaken for local would land here
    conf = small_run_conf(f"s3://{s3.bucket}/datasets", corpus.metadata_urls, checkpoint)
    conf["overrides"]["download.number_sample_per_shard"] = 64  # as the local pipeline
    try:
        run = load_dag("laion400m").test(run_conf=conf)
    finally:
        mp.undo()
    return run, f"s3://{s3.bucket}/datasets/laion400m", cwd


@pytest.fixture()
def s3_env(s3, monkeypatch):
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)


def test_run_succeeds_with_everything_in_the_bucket(s3_run, s3):
    run, _, cwd = s3_run
    states = {(t.task_id, t.map_index): str(t.state) for t in run.get_task_instances()}
    assert str(run.state) == "success", states
    assert set(states.values()) <= {"success", "skipped"}
    keys = [
        o["Key"]
        for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket)
        for o in page.get("Contents", [])
    ]
    for expected in (
        "datasets/laion400m/summary.json",
        "datasets/laion400m/metadata/filtered/part-00000.parquet",
        "datasets/laion400m/images/part_00001/00000.tar",
        "datasets/laion400m/images/part_00001_stats.csv",
        "datasets/laion400m/embeddings/part_00000/img_emb/img_emb_0.npy",
        "datasets/laion400m/index/image.index",
    ):
        assert expected in keys, expected
    assert not any(".tmp" in k for k in keys), [k for k in keys if ".tmp" in k]
    assert list(cwd.iterdir()) == []  # nothing written to a local folder named "s3:"


def test_ledger_equals_the_local_run(s3_run, pipeline, corpus, s3_env):
    _, root, _ = s3_run
    led = fs.read_json(f"{root}/summary.json")["ledger"]
    local = fs.read_json(f"{pipeline['recipe'].dataset_root}/summary.json")["ledger"]
    assert led["raw_rows"] == corpus.rows
    assert (
        led["filtered_total"] + led["duplicates"] + led["downloaded"] + led["failed_total"]
        == led["raw_rows"]
    )
    assert led["balanced"] and led["embedding_rows"] == led["downloaded"] == led["index_size"]
    for key in ("raw_rows", "filtered", "duplicates", "downloaded", "failed", "index_size"):
        assert led[key] == local[key], key


def test_same_samples_as_the_local_pipeline_and_tars_read_from_s3(s3_run, pipeline, s3_env):
    _, root, _ = s3_run
    local_root = pipeline["recipe"].dataset_root
    for part in (0, 1):
        ours = shard_samples(root, part)
        pd.testing.assert_frame_equal(ours, shard_samples(local_root, part))
        ok = set(ours.loc[ours.status == "success", "key"])
        in_tars = set()
        for path in fs.ls(f"{root}/images/part_{part:05d}"):
            if path.endswith(".tar"):
                with fs.open(path) as fh, tarfile.open(fileobj=io.BytesIO(fh.read())) as tar:
                    in_tars |= {m.name.split(".")[0] for m in tar.getmembers()}
        assert in_tars == ok


def test_index_answers_from_s3(s3_run, s3_env, tmp_path, monkeypatch):
    monkeypatch.setenv("LAIONFLOW_CACHE", str(tmp_path))
    from laionflow.query import IndexReader

    _, root, _ = s3_run
    with fs.open(f"{root}/embeddings/part_00000/img_emb/img_emb_0.npy") as fh:
        emb = np.load(fh).astype(np.float32)
    _, ids = IndexReader(f"{root}/index").search(emb[:20], k=1)
    assert np.mean(ids[:, 0] == np.arange(20)) >= 0.95


def test_no_secret_in_the_bucket_or_xcoms(s3_run, s3):
    from airflow import settings
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    run, _, _ = s3_run
    client = s3.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=s3.bucket, Key=obj["Key"])["Body"].read()
            assert s3.secret_key.encode() not in body, obj["Key"]
    with settings.Session() as session:
        xcoms = session.scalars(select(XComModel).where(XComModel.run_id == run.run_id)).all()
    assert xcoms and s3.secret_key not in json.dumps([x.value for x in xcoms], default=str)


def test_s3_server_listens_on_loopback_only(s3):
    import psutil

    proc = psutil.Process(s3.proc.pid)
    listening = {
        c.laddr.ip
        for p in [proc, *proc.children(recursive=True)]
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {"127.0.0.1"}


def test_spark_stage_returns_its_summary_as_xcom(s3_run, corpus):
    """The filter runs under spark-submit; its task returns the job's compact summary, read
    back from the run folder in the bucket, like every other stage's task."""
    from airflow import settings
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    run, _, _ = s3_run
    with settings.Session() as session:
        xcom = session.scalars(
            select(XComModel).where(
                XComModel.run_id == run.run_id,
                XComModel.task_id == "filter",
                XComModel.key == "return_value",
            )
        ).one()
    value = xcom.value if isinstance(xcom.value, dict) else json.loads(xcom.value)
    assert value["stage"] == "filter" and value["raw_rows"] == corpus.rows
    assert value["kept"] + value["duplicates"] + sum(value["filtered"].values()) == corpus.rows
