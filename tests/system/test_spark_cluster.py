"""The filter job on a real Spark standalone cluster (master + 2 workers on 127.0.0.1, started
and stopped by this test) gives exactly the parts of the ``local[2]`` run."""

from __future__ import annotations

import glob
import os
import subprocess

import pandas as pd
import pytest

from laionflow.jobs import metadata
from laionflow.plan import write_run_config
from laionflow.recipes import load_recipe
from laionflow.testing.spark_cluster import SparkCluster
from operators.spark import job_path, runtime_env
from tests.helpers import small_overrides


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with SparkCluster(tmp_path_factory.mktemp("spark-cluster"), workers=2) as c:
        yield c
    for pid in c.pids:  # every process this test started is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


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
    out = subprocess.run(
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
            job_path("filter_dedup.py"),
            "--config",
            config,
        ],
        env={**os.environ, **runtime_env()},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:] + cluster.logs()
    assert "app-" in cluster.logs() or "Launching executor" in cluster.logs()
    ours = _parts(recipe.dataset_root).reset_index(drop=True)
    local = _parts(pipeline["recipe"].dataset_root).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, local)
