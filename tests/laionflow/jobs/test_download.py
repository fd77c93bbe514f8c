import csv
import io
import tarfile

import pandas as pd
import webdataset as wds
from PIL import Image

from laionflow.jobs import annotate, download
from laionflow.shards import reason_of


def test_reason_of_groups_img2dataset_error_messages():
    assert reason_of("HTTP Error 404: Not Found") == "http_404"
    assert reason_of("<urlopen error timed out>") == "timeout"
    assert reason_of("cannot identify image file <_io.BytesIO>") == "decode_error"
    assert reason_of(None) == "other"


def test_every_filtered_row_lands_in_exactly_one_shard(pipeline, corpus):
    root = pipeline["recipe"].dataset_root
    for part, summary in pipeline["download"].items():
        shards = pd.concat(
            pd.read_parquet(f"{root}/images/part_{part:05d}/{s['shard']}.parquet")
            for s in summary["shards"]
        )
        rows = pd.read_parquet(f"{root}/metadata/filtered/part-{part:05d}.parquet")
        assert sorted(shards["url"]) == sorted(rows["url"])
        assert summary["successes"] == int((shards["status"] == "success").sum())
        assert summary["successes"] + summary["failed_total"] == len(rows)
    failed = {}
    for s in pipeline["download"].values():
        for reason, n in s["failed"].items():
            failed[reason] = failed.get(reason, 0) + n
    assert set(failed) == {"http_404"}  # the fixture's only fault is its dead URLs


def test_shards_keep_img2dataset_layout_and_read_with_webdataset(pipeline):
    root = pipeline["recipe"].dataset_root
    for part, summary in pipeline["download"].items():
        folder = f"{root}/images/part_{part:05d}"
        for shard in summary["shards"]:
            samples = list(
                wds.WebDataset(
                    f"file:{folder}/{shard['shard']}.tar", shardshuffle=False, empty_check=False
                )
            )
            assert len(samples) == shard["successes"]
            for s in samples:
                assert {"jpg", "txt", "json"} <= set(s)
                img = Image.open(io.BytesIO(s["jpg"]))
                assert img.size == (256, 256)  # border resize to image_size


def test_stats_csv_counts_equal_tar_contents(pipeline):
    root = pipeline["recipe"].dataset_root
    for part, result in pipeline["annotate"].items():
        with open(f"{root}/images/part_{part:05d}_stats.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert rows and all(r["tar_path"].endswith(".tar") for r in rows)
        for row in rows:
            with tarfile.open(row["tar_path"]) as tar:
                jpgs = [m for m in tar.getmembers() if m.name.endswith(".jpg")]
            assert int(row["samples"]) == len(jpgs)
        assert result["samples"] == sum(int(r["samples"]) for r in rows)


def test_rerun_is_skipped_by_the_done_marker(pipeline):
    recipe = pipeline["recipe"]
    assert download.run(recipe, 0) == pipeline["download"][0]


def test_files_output_writes_image_path_and_caption_csv(pipeline, tmp_path, fixture_server):
    import shutil

    from laionflow.recipes import load_recipe

    recipe = pipeline["recipe"]
    files = load_recipe(
        "laion400m", {**_dotted(recipe), "root": str(tmp_path), "download.output_format": "files"}
    )
    shutil.copytree(f"{recipe.dataset_root}/metadata", f"{files.dataset_root}/metadata")
    summary = download.run(files, 1)
    result = annotate.run(files, 1)
    rows = list(csv.DictReader(open(f"{files.dataset_root}/images/part_00001.csv")))
    assert len(rows) == summary["successes"] == result["samples"]
    for row in rows:
        assert Image.open(row["image_path"]).size == (256, 256)
        with open(row["image_path"].rsplit(".", 1)[0] + ".txt") as fh:
            assert fh.read() == row["caption"]


def _dotted(recipe) -> dict:
    return {
        "metadata.urls": recipe.metadata.urls,
        "filter.num_parts": 2,
        "download.processes": 1,
        "download.threads": 8,
        "download.number_sample_per_shard": 64,
    }
