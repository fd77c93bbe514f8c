"""laion2b_en_sd21 through dag.test(): webdataset and files output, dry run, size limit."""

import csv

import pandas as pd
import pytest
import webdataset as wds
from PIL import Image

from laionflow import fs
from tests.helpers import run_dag, small_run_conf


def _conf(root, corpus, checkpoint, **extra):
    return small_run_conf(root, corpus.metadata_urls, checkpoint, **extra)


def _run(conf):
    return run_dag("laion2b_en_sd21", conf)


@pytest.fixture(scope="module")
def webdataset_run(airflow_db, sd21_corpus, checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("sd21-wds")
    run, states = _run(_conf(root, sd21_corpus, checkpoint))
    return run, states, root / "laion2b_en_sd21"


def test_webdataset_run_filters_like_the_sd21_guide(webdataset_run, sd21_corpus):
    run, states, root = webdataset_run
    assert str(run.state) == "success", states
    led = fs.read_json(f"{root}/summary.json")["ledger"]
    assert led["balanced"] and led["raw_rows"] == sd21_corpus.rows
    rules = {"min_width", "min_height", "max_punsafe", "min_aesthetic"}
    assert {"min_width", "min_height"} <= set(led["filtered"]) <= rules
    # (no language column in this set: the `language` rule passes every row)
    kept = pd.concat(
        pd.read_parquet(f"{root}/metadata/filtered/part-{p:05d}.parquet") for p in (0, 1)
    )
    assert (kept["width"] >= 512).all() and (kept["height"] >= 512).all()
    assert (kept["punsafe"] <= 0.98).all() and (kept["aesthetic"] >= 4.5).all()
    assert led["embedding_rows"] == led["downloaded"] == led["index_size"]


def test_webdataset_run_writes_stats_csv_per_part(webdataset_run):
    _, _, root = webdataset_run
    total = 0
    for part in (0, 1):
        for row in csv.DictReader(open(f"{root}/images/part_{part:05d}_stats.csv")):
            n = sum(
                1
                for _ in wds.WebDataset(
                    f"file:{row['tar_path']}", shardshuffle=False, empty_check=False
                )
            )
            assert n == int(row["samples"])
            total += n
    summary = fs.read_json(f"{root}/summary.json")
    assert total == summary["ledger"]["downloaded"]
    assert summary["estimate"]["rows"] == sum(
        fs.read_json(f"{root}/metadata/filtered/_filter_stats.json")["parts"].values()
    )


def test_files_output_writes_image_caption_csv(airflow_db, sd21_corpus, checkpoint, tmp_path):
    run, states = _run(
        _conf(tmp_path, sd21_corpus, checkpoint, output_format="files", part_ids=[1])
    )
    assert str(run.state) == "success", states
    root = tmp_path / "laion2b_en_sd21"
    assert ("download", 0) in states and len([k for k in states if k[0] == "download"]) == 1
    rows = list(csv.DictReader(open(f"{root}/images/part_00001.csv")))
    assert rows and not (root / "images" / "part_00000").exists()
    for row in rows:
        with Image.open(row["image_path"]) as img:
            assert min(img.size) == 64  # keep_ratio: the short side becomes image_size
    led = fs.read_json(f"{root}/summary.json")["ledger"]
    assert led["balanced"] and led["not_selected"] > 0 and led["downloaded"] == len(rows)


def test_dry_run_stops_after_the_estimate(airflow_db, sd21_corpus, checkpoint, tmp_path):
    run, states = _run(_conf(tmp_path, sd21_corpus, checkpoint, dry_run=True))
    assert str(run.state) == "success"
    assert states[("estimate", -1)] == "success"
    assert all(states[k] == "skipped" for k in states if k[0] in ("download", "report", "index"))
    root = tmp_path / "laion2b_en_sd21"
    assert not (root / "images").exists()
    (estimate,) = list((root / "runs").glob("*/estimate.json"))
    assert fs.read_json(str(estimate))["bytes"] > 0


def test_output_over_max_bytes_stops_before_download(airflow_db, sd21_corpus, checkpoint, tmp_path):
    run, states = _run(_conf(tmp_path, sd21_corpus, checkpoint, max_output_bytes=1000))
    assert str(run.state) == "failed"
    assert states[("estimate", -1)] == "failed"
    assert not (tmp_path / "laion2b_en_sd21" / "images").exists()
