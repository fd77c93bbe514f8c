"""The same inference job submitted to Spark (one task per part, spark-submit, local[2]) gives
the local run's embeddings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pandas as pd

from laionflow.plan import write_run_config
from laionflow.recipes import load_recipe
from operators.spark import job_path, runtime_env
from tests.helpers import small_overrides


def test_spark_submitted_inference_equals_the_local_run(pipeline, corpus, checkpoint, tmp_path):
    recipe = load_recipe("laion400m", small_overrides(tmp_path, corpus, checkpoint))
    src = pipeline["recipe"].dataset_root
    for part in (0, 1):
        shutil.copytree(
            f"{src}/images/part_{part:05d}", f"{recipe.dataset_root}/images/part_{part:05d}"
        )
    config = write_run_config(recipe, "spark-embed")
    out = subprocess.run(
        [
            "spark-submit",
            "--master",
            "local[2]",
            "--conf",
            "spark.driver.bindAddress=127.0.0.1",
            "--conf",
            "spark.ui.enabled=false",
            job_path("embed_parts.py"),
            "--config",
            config,
            "--parts",
            "0,1",
            "--summary-out",
            f"{tmp_path}/summaries/embed.json",
        ],
        env={**os.environ, **runtime_env()},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LAIONFLOW_SUMMARY" in out.stdout
    # what the operator returns as its XCom: the parts' counts summed
    published = json.loads((tmp_path / "summaries" / "embed.json").read_text())
    assert published["stage"] == "embed" and published["parts"] == 2
    assert published["rows"] == sum(pipeline["embed"][p]["rows"] for p in (0, 1))
    for part in (0, 1):
        mine = f"{recipe.dataset_root}/embeddings/part_{part:05d}"
        local = f"{src}/embeddings/part_{part:05d}"
        assert list(pd.read_parquet(f"{mine}/metadata/metadata_0.parquet")["key"]) == list(
            pd.read_parquet(f"{local}/metadata/metadata_0.parquet")["key"]
        )
        np.testing.assert_allclose(
            np.load(f"{mine}/img_emb/img_emb_0.npy").astype(np.float32),
            np.load(f"{local}/img_emb/img_emb_0.npy").astype(np.float32),
            atol=2e-3,
        )
