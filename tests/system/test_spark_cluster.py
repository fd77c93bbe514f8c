"""A real Spark standalone cluster (master + 2 workers on 127.0.0.1, started and stopped by this
test): the filter job gives exactly the parts of the ``local[2]`` run, and the laion400m DAG
pointed at the cluster by its ``spark_default`` connection — filter and the distributed image
download (img2dataset's pyspark distributor) submitted by ``SparkSubmitOperator`` — gives the
local run's parts and samples, key for key; and the download job on an ``s3://`` root
(SeaweedFS, no s3a: the executors write through s3fs) gives the local run's samples too."""

from __future__ import annotations

import glob
import os
import subprocess

import pandas as pd
import pytest

from laionflow.jobs import metadata
from laionflow.plan import write_run_config
from laionflow.recipes import load_recipe
from laionflow.testing.s3 import SeaweedS3
from laionflow.testing.spark_cluster import SparkCluster
from operators.spark import job_path, runtime_env
from tests.helpers import shard_samples, small_overrides, small_run_conf


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with SparkCluster(tmp_path_factory.mktemp("spark-cluster"), workers=2) as c:
        yield c
    for pid in c.pids:  # every process this test started is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with SeaweedS3(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


def _submit(cluster, job: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "spark-submit",
            "--master",
            cluster.url,
            "--conf",
            "spark.driver.bindAddress=127.0.0.1",
            "--conf",
            "spark.driver.host=127.0.0.1",
            "--conf",
            "spark.ui.enabled=false",
            "--conf",
            "spark.executor.memory=512m",
            job_path(job),
            *args,
        ],
        env={**os.environ, **runtime_env()},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _executor_logs(cluster) -> str:
    """The executors' own output (img2dataset prints a failed shard's traceback there)."""
    paths = sorted(glob.glob(f"{cluster.work}/worker/app-*/*/std*"))
    return "\n".join(f"== {p}\n" + open(p, errors="replace").read()[-3000:] for p in paths)


def _parts(root: str) -> pd.DataFrame:
    files = sorted(glob.glob(f"{root}/metadata/filtered/part-*.parquet"))
    return pd.concat(pd.read_parquet(f).assign(file=os.path.basename(f)) for f in files)


def test_cluster_listens_on_loopback_only(cluster):
    addresses = cluster.listening()
    assert addresses and {ip for ip, _ in addresses} == {"127.0.0.1"}


def test_filter_on_the_cluster_equals_the_local_run(
    cluster, pipeline, corpus, checkpoint, tmp_path
):
    recipe = load_recipe("laion400m", small_overrides(tmp_path, corpus, checkpoint))
    metadata.run(recipe)
    config = write_run_config(recipe, "cluster")
    out = _submit(cluster, "filter_dedup.py", "--config", config)
    assert out.returncode == 0, out.stderr[-3000:] + cluster.logs()
    assert "app-" in cluster.logs() or "Launching executor" in cluster.logs()
    ours = _parts(recipe.dataset_root).reset_index(drop=True)
    local = _parts(pipeline["recipe"].dataset_root).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, local)


def test_download_job_on_the_cluster_writes_an_s3_root(
    cluster, s3, pipeline, corpus, checkpoint, monkeypatch
):
    """No s3a here: img2dataset's executors read their shard lists from and write their shards
    to the bucket through s3fs, with the keys and endpoint the driver hands them."""
    import s3fs

    from laionflow import fs
    from laionflow.layout import Layout

    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    recipe = load_recipe(
        "laion400m", small_overrides(f"s3://{s3.bucket}/cluster", corpus, checkpoint)
    )
    local = pipeline["recipe"].dataset_root
    fsys, target = fs.filesystem(Layout(recipe.dataset_root).filtered_part(0))
    fsys.put_file(Layout(local).filtered_part(0), target)
    config = write_run_config(recipe, "cluster-s3")
    out = _submit(cluster, "download_parts.py", "--config", config, "--parts", "0")
    assert out.returncode == 0, out.stderr[-3000:] + _executor_logs(cluster)
    summary = fs.read_json(Layout(recipe.dataset_root).download_summary(0))
    assert summary["distributor"] == "pyspark" and summary["input_rows"] > 0
    pd.testing.assert_frame_equal(shard_samples(recipe.dataset_root, 0), shard_samples(local, 0))
    s3fs.S3FileSystem.clear_instance_cache()


def test_dag_on_the_cluster_downloads_the_same_samples(
    cluster, pipeline, corpus, checkpoint, airflow_db, tmp_path, monkeypatch
):
    import json

    from laionflow import fs
    from laionflow.embedded import load_dag

    host, port = cluster.url.rsplit(":", 1)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPARK_DEFAULT",
        json.dumps({"conn_type": "spark", "host": host, "port": int(port)}),
    )
    monkeypatch.setenv("LAIONFLOW_DOWNLOAD_ENGINE", "spark")  # a setting, not a code change
    conf = small_run_conf(tmp_path, corpus.metadata_urls, checkpoint)
    conf["overrides"]["download.number_sample_per_shard"] = 64  # as the local pipeline
    run = load_dag("laion400m").test(run_conf=conf)
    states = {(t.task_id, t.map_index): str(t.state) for t in run.get_task_instances()}
    assert str(run.state) == "success", states
    assert states[("download", -1)] == "success"  # one Spark job for every part
    apps = cluster.apps()
    assert any(a.startswith("laionflow-download") for a in apps), apps
    assert any(a.startswith("laionflow-filter") for a in apps), apps

    root = f"{tmp_path}/laion400m"
    local = pipeline["recipe"].dataset_root
    assert _parts(root).reset_index(drop=True).equals(_parts(local).reset_index(drop=True))
    for part in (0, 1):
        summary = fs.read_json(f"{root}/images/part_{part:05d}_summary.json")
        assert summary["distributor"] == "pyspark"
        pd.testing.assert_frame_equal(shard_samples(root, part), shard_samples(local, part))
    led = fs.read_json(f"{root}/summary.json")["ledger"]
    assert led["balanced"] and led["embedding_rows"] == led["downloaded"] > 0
