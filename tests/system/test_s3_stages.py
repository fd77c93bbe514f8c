"""The later stages on a real S3 root (SeaweedFS on 127.0.0.1, keys enforced): scores,
score_filter (with its reshard), semdedup and report read and write the bucket only, and the
repair DAG's scan finds a dataset whose root comes from the site defaults.

The dataset is the in-process ``pipeline`` fixture's, copied into the bucket, so each stage's
output can be compared with what the same stage writes on the local root."""

from __future__ import annotations

import tarfile

import pandas as pd
import pytest

from laionflow import fs
from laionflow.testing.s3 import SeaweedS3
from tests.helpers import small_overrides


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with SeaweedS3(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture()
def s3_env(s3, monkeypatch, tmp_path):
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # another module's server may be cached
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # a path mistaken for local would land here
    yield tmp_path
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture()
def s3_recipe(s3, s3_env, pipeline, corpus, checkpoint, tmp_path_factory):
    """laion400m on ``s3://BUCKET/stages`` holding a copy of the local pipeline's dataset,
    with a scores YAML (CLIP score)."""
    from laionflow.recipes import load_recipe

    yaml = tmp_path_factory.mktemp("scores") / "clip.yaml"
    yaml.write_text("models: [clip]\npostprocess_columns: [clip-score]\nnum_workers: 1\n")
    root = f"s3://{s3.bucket}/stages"
    overrides = small_overrides(root, corpus, checkpoint, scores=str(yaml))
    recipe = load_recipe("laion400m", overrides)
    fsys, target = fs.filesystem(recipe.dataset_root)
    if not fsys.exists(f"{target}/summary.json"):
        fsys.put(pipeline["recipe"].dataset_root + "/", target, recursive=True)
    assert fsys.exists(f"{target}/images/part_00001/00000.tar")
    return recipe


def _keys(s3) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_scores_in_the_bucket(s3_recipe, s3, s3_env, pipeline):
    from laionflow.jobs import scores

    root = s3_recipe.dataset_root
    for part in (0, 1):
        summary = scores.run(s3_recipe, part, force=True)
        assert summary["rows"] == pipeline["download"][part]["successes"] > 0
        with fs.open(f"{root}/scores/part_{part:05d}/scores.parquet") as fh:
            table = pd.read_parquet(fh)
        assert table["key"].is_monotonic_increasing and len(table) == summary["rows"]
    assert list(s3_env.iterdir()) == []  # nothing written to a local folder named "s3:"


def test_score_filter_reshard_in_the_bucket(s3_recipe, s3, s3_env, pipeline):
    """Scores computed on the local copy and uploaded: the score filter alone on S3."""
    from laionflow.jobs import scorefilter, scores

    local = pipeline["recipe"].model_copy(update={"scores": s3_recipe.scores})
    for part in (0, 1):
        scores.run(local, part, force=True)
    fsys, target = fs.filesystem(s3_recipe.dataset_root)
    fsys.put(f"{local.dataset_root}/scores/", f"{target}/scores", recursive=True)
    cfg = s3_recipe.score_filter.model_copy(update={"reshard": True, "samples_per_shard": 20})
    summary = scorefilter.run(s3_recipe.model_copy(update={"score_filter": cfg}))
    assert summary["kept"] > 20 and summary["shards"] == -(-summary["kept"] // 20)
    keys = _keys(s3)
    tars = sorted(k for k in keys if k.startswith("stages/laion400m/scores/shards/"))
    assert tars == [f"stages/laion400m/scores/shards/{i:05d}.tar" for i in range(summary["shards"])]
    assert not any(".tmp" in k for k in keys), [k for k in keys if ".tmp" in k]
    names = set()
    for key in tars:
        with fs.open(f"s3://{s3.bucket}/{key}") as fh, tarfile.open(fileobj=fh) as tar:
            names |= {m.name.rsplit(".", 1)[0] for m in tar.getmembers()}
    with fs.open(f"{s3_recipe.dataset_root}/scores/kept.parquet") as fh:
        kept = pd.read_parquet(fh)
    assert names == {f"{p:05d}_{k}" for p, k in zip(kept["part"], kept["key"], strict=True)}
    assert list(s3_env.iterdir()) == []  # nothing written to a local folder named "s3:"


def test_semdedup_and_report_in_the_bucket(s3_recipe, s3, s3_env, pipeline):
    from laionflow.jobs import semdedup
    from laionflow.reporting import ledger as report

    summary = semdedup.run(s3_recipe)
    assert summary["samples"] == sum(d["successes"] for d in pipeline["download"].values())
    out = report.run(s3_recipe)
    assert out["balanced"] and out["path"].startswith("s3://")
    keys = set(_keys(s3))
    for key in ("dedup/semantic_duplicates.parquet", "report/index.html", "report/report.json"):
        assert f"stages/laion400m/{key}" in keys, key
    numbers = fs.read_json(f"{s3_recipe.dataset_root}/report/report.json")
    assert numbers["samples"] == summary["samples"]
    assert list(s3_env.iterdir()) == []


def test_repair_scan_finds_the_site_root(s3, s3_env, airflow_db, monkeypatch, corpus):
    """``config/site.yaml``-style defaults put the datasets in the bucket; the repair DAG
    triggered with an empty root must scan there, not under ``./data``."""
    from laionflow.embedded import load_dag
    from laionflow.plan import resolve, write_run_config

    root = f"s3://{s3.bucket}/site"
    site = s3_env.parent / "site.yaml"
    site.write_text(f"root: {root}\n")
    monkeypatch.setenv("LAIONFLOW_SITE_OVERRIDES", str(site))
    recipe = resolve("laion400m", {"metadata_urls": corpus.metadata_urls})
    assert recipe.dataset_root == f"{root}/laion400m"
    config_path = write_run_config(recipe, "manual__1")
    fs.write_json(
        f"{recipe.dataset_root}/metadata/filtered/_filter_stats.json", {"parts": {"0": 5}}
    )
    with fs.open(f"{recipe.dataset_root}/images/part_00000/00000.tar", "wb") as fh:
        fh.write(b"")  # a shard without its _stats.json: the part needs repairing
    scan = load_dag("laionflow_repair").task_dict["scan"].python_callable
    targets = scan(params={"recipes": ["laion400m"], "root": None, "part_ids": None})
    assert targets == [{"config_path": config_path, "part": 0}]
    assert list(s3_env.iterdir()) == []
