"""laion2b_en_sd21 through dag.test(): webdataset and files output, dry run, size limit.
The webdataset run's corpus also holds scikit-image's photographs, and the run has the
recipe's safety models (scores YAML), a score rule per signal, a known-bad URL hash and PDQ
list (one photo blocked, one quarantined), face blurring and SD buckets."""

import csv
import hashlib

import pandas as pd
import pytest
import webdataset as wds
from PIL import Image

from laionflow import fs
from tests.helpers import run_dag, small_run_conf


def _conf(root, corpus, checkpoint, **extra):
    return small_run_conf(root, corpus.metadata_urls, checkpoint, **extra)


def _duckdb_conf(root, corpus, checkpoint, **extra):
    """For the runs whose subject is past the filter (output format, dry run, size gate): the
    filter on its DuckDB engine, whose parts are byte-identical to Spark's
    (tests/laionflow/jobs/test_filter_engines.py), without a JVM start per run."""
    conf = _conf(root, corpus, checkpoint, **extra)
    conf["overrides"]["filter.engine"] = "duckdb"
    return conf


def _run(conf):
    return run_dag("laion2b_en_sd21", conf)


@pytest.fixture(scope="module")
def photo_corpus(fixture_server, session_tmp):
    """The sd21 corpus's spec, plus one row per scikit-image photograph (served at 512 px)."""
    from laionflow.testing import photos
    from laionflow.testing.corpus import CorpusSpec, build_corpus

    spec = CorpusSpec(
        rows=240,
        parts=2,
        seed=11,
        flavour="laion2b_aesthetics",
        min_side=300,
        max_side=760,
        formats=("parquet",),
    )
    out, base = session_tmp / "fixture" / "sd21photos", f"{fixture_server.base_url}/sd21photos"
    corpus = build_corpus(out, base, spec)
    corpus.rows += len(photos.add_to_corpus(out, base))
    return corpus


@pytest.fixture(scope="module")
def webdataset_run(airflow_db, photo_corpus, checkpoint, tmp_path_factory):
    import numpy as np

    from laionflow.safety.detectors import pdq_hash
    from laionflow.testing import photos

    root = tmp_path_factory.mktemp("sd21-wds")
    blocked = f"{photo_corpus.base_url}/photos/coffee.png"
    (root / "url_sha256.txt").write_text(hashlib.sha256(blocked.encode()).hexdigest() + "\n")
    (root / "pdq.txt").write_text(pdq_hash(np.asarray(photos.photo("rocket")))[0] + "\n")
    rules = [
        {"name": "max_nsfw_image", "column": "nsfw_image", "op": "<=", "value": 0.5},
        {"name": "no_faces", "column": "faces", "op": "==", "value": 0},
        {"name": "max_text_area", "column": "text_area", "op": "<=", "value": 0.2},
    ]
    conf = _conf(root, photo_corpus, checkpoint)
    conf["overrides"].update(
        {
            "safety.hashlists.url_hashes": str(root / "url_sha256.txt"),
            "safety.hashlists.pdq": str(root / "pdq.txt"),
            "safety.blur_faces": True,
            "score_filter.rules": rules,
        }
    )
    run, states = _run(conf)
    return run, states, root / "laion2b_en_sd21"


def test_webdataset_run_filters_like_the_sd21_guide(webdataset_run, photo_corpus):
    run, states, root = webdataset_run
    assert str(run.state) == "success", states
    led = fs.read_json(f"{root}/summary.json")["ledger"]
    assert led["balanced"] and led["raw_rows"] == photo_corpus.rows
    rules = {"min_width", "min_height", "max_punsafe", "min_aesthetic"}
    assert {"min_width", "min_height"} <= set(led["filtered"]) <= rules
    # (no language column in this set: the `language` rule passes every row)
    kept = pd.concat(
        pd.read_parquet(f"{root}/metadata/filtered/part-{p:05d}.parquet") for p in (0, 1)
    )
    assert (kept["width"] >= 512).all() and (kept["height"] >= 512).all()
    assert (kept["punsafe"] <= 0.98).all() and (kept["aesthetic"] >= 4.5).all()
    assert led["embedding_rows"] == led["downloaded"] == led["index_size"]


def test_webdataset_run_has_safety_columns_buckets_and_the_hash_gate(webdataset_run):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, _, root = webdataset_run
    summary = fs.read_json(f"{root}/summary.json")
    led = summary["ledger"]
    # one photo URL blocked before download, the rocket quarantined after: both on the ledger
    assert led["blocked_hashlist"] == 1 and led["quarantined"] == 1 and led["balanced"]
    held = [p for d in fs.ls(f"{root}/quarantine") for p in fs.ls(d)]
    assert [fs.read_json(p)["list"] for p in held if p.endswith(".reason.json")] == ["pdq"]
    (sample,) = [fs.read_json(p) for p in held if p.endswith(".json") and ".reason" not in p]
    assert sample["url"].endswith("/photos/rocket.png")
    tables = [pq.read_table(f"{root}/scores/part_{p:05d}/scores.parquet") for p in (0, 1)]
    schema = tables[0].schema
    boxes, classes = schema.field("face_boxes").type, schema.field("nsfw_classes").type
    assert pa.types.is_list(boxes) and boxes.value_type.value_type == pa.float32()
    assert pa.types.is_list(classes) and classes.value_type == pa.string()
    scores = pd.concat(t.to_pandas() for t in tables)
    assert len(scores) == led["downloaded"]
    photos_ = scores[scores["url"].str.contains("/photos/")]
    assert sorted(photos_["url"].str.rsplit("/", n=1).str[-1]) == [
        f"{n}.png" for n in ("astronaut", "camera", "chelsea", "page", "text")
    ]
    assert (scores["nsfw_image"] <= 0.5).all() and scores["pdq"].str.len().eq(64).all()
    sf = led["safety"]["score_filter"]
    assert sf["scored"] == led["downloaded"] and sf["balanced"]
    assert set(sf["filtered"]) == {"max_nsfw_image", "no_faces", "max_text_area"}
    kept = pd.read_parquet(f"{root}/scores/kept.parquet")
    assert len(kept) == sf["kept"] == sf["scored"] - sum(sf["filtered"].values())
    buckets = pd.concat(
        pd.read_parquet(f"{root}/images/part_{p:05d}_buckets.parquet") for p in (0, 1)
    )
    assert len(buckets) == led["downloaded"] and buckets["bucket"].notna().all()
    # ... and in the embeddings metadata, so in the index metadata, by part and key
    index_meta = pd.concat(pd.read_parquet(p) for p in fs.ls(f"{root}/index/metadata"))
    assert len(index_meta) == led["index_size"]
    for part in (0, 1):
        annotated = pd.read_parquet(f"{root}/images/part_{part:05d}_buckets.parquet")
        in_index = index_meta[index_meta["part"] == part]
        assert len(in_index) == len(annotated) > 0
        got = in_index.set_index("key")[["bucket", "stored_bucket"]].sort_index()
        want = annotated.set_index("key")[["bucket", "stored_bucket"]].sort_index()
        assert got.equals(want), part
    assert sum(led["safety"]["buckets"].values()) == led["downloaded"]
    report = fs.read_json(f"{root}/report/report.json")
    assert report["safety"]["buckets"] == led["safety"]["buckets"]
    assert set(led["safety"]["blurred"]) == {"part_00000", "part_00001"}
    card = open(f"{root}/report/README.md").read()
    assert "nsfw-image, faces, text-area, pdq" in card and "no_faces: faces == 0" in card
    page = open(f"{root}/report/index.html").read()
    assert "aspect-ratio buckets" in page and "face-blurred shards" in page


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
        _duckdb_conf(tmp_path, sd21_corpus, checkpoint, output_format="files", part_ids=[1])
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
    run, states = _run(_duckdb_conf(tmp_path, sd21_corpus, checkpoint, dry_run=True))
    assert str(run.state) == "success"
    assert states[("estimate", -1)] == "success"
    assert all(states[k] == "skipped" for k in states if k[0] in ("download", "report", "index"))
    root = tmp_path / "laion2b_en_sd21"
    assert not (root / "images").exists()
    (estimate,) = list((root / "runs").glob("*/estimate.json"))
    assert fs.read_json(str(estimate))["bytes"] > 0


def test_output_over_max_bytes_stops_before_download(airflow_db, sd21_corpus, checkpoint, tmp_path):
    run, states = _run(_duckdb_conf(tmp_path, sd21_corpus, checkpoint, max_output_bytes=1000))
    assert str(run.state) == "failed"
    assert states[("estimate", -1)] == "failed"
    assert not (tmp_path / "laion2b_en_sd21" / "images").exists()
