import json

import pandas as pd
import pytest

from laionflow.jobs import metadata
from laionflow.jobs.filter import run_spark
from laionflow.recipes import load_recipe
from laionflow.schema import SchemaError


def _expected(corpus) -> pd.DataFrame:
    frames = []
    for path in corpus.metadata_files:
        df = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
        frames.append(df.rename(columns=str.lower).rename(columns={"text": "caption"}))
    return pd.concat(frames, ignore_index=True)


def test_filter_counts_every_row_by_rule_and_dedups(pipeline, corpus):
    stats = pipeline["filter"]
    raw = _expected(corpus)
    assert stats["raw_rows"] == len(raw)
    # independent pandas computation of the first failing rule, in recipe order
    bad_sim = raw["similarity"] < 0.3
    nsfw = ~bad_sim & (raw["nsfw"] == "NSFW")
    small_w = ~bad_sim & ~nsfw & (raw["width"] < 64)
    assert stats["filtered"] == {
        "min_similarity": int(bad_sim.sum()),
        "nsfw": int(nsfw.sum()),
        "min_width": int(small_w.sum()),
    }
    passed = raw[~(bad_sim | nsfw | small_w)]
    assert stats["duplicates"] == int(passed.duplicated(["url", "caption"]).sum())
    assert stats["kept"] == len(passed.drop_duplicates(["url", "caption"]))
    assert sum(stats["filtered"].values()) + stats["duplicates"] + stats["kept"] == len(raw)


def test_filtered_parts_hold_unique_rows_with_canonical_columns(pipeline):
    root = pipeline["recipe"].dataset_root
    parts = [pd.read_parquet(f"{root}/metadata/filtered/part-{p:05d}.parquet") for p in (0, 1)]
    both = pd.concat(parts)
    assert {"url", "caption", "width", "height", "similarity", "nsfw"} <= set(both.columns)
    assert not both.duplicated(["url", "caption"]).any()
    assert [len(p) for p in parts] == [pipeline["filter"]["parts"][str(i)] for i in (0, 1)]


def test_output_is_identical_across_reruns_and_partitionings(pipeline, spark, tmp_path):
    recipe = pipeline["recipe"]
    other = load_recipe(
        "laion400m",
        {"root": str(tmp_path), "metadata.urls": recipe.metadata.urls, "filter.num_parts": 2},
    )
    metadata.run(other)
    spark.conf.set("spark.sql.shuffle.partitions", "7")
    try:
        run_spark(spark, other)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "4")
    for p in (0, 1):
        a = pd.read_parquet(f"{recipe.dataset_root}/metadata/filtered/part-{p:05d}.parquet")
        b = pd.read_parquet(f"{other.dataset_root}/metadata/filtered/part-{p:05d}.parquet")
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_rerun_skips_and_force_redoes(pipeline, spark):
    recipe = pipeline["recipe"]
    again = run_spark(spark, recipe)
    assert again == pipeline["filter"]
    stats_file = f"{recipe.dataset_root}/metadata/filtered/_filter_stats.json"
    assert json.load(open(stats_file))["kept"] == pipeline["filter"]["kept"]


def test_unknown_column_set_fails_before_download_naming_columns(spark, tmp_path):
    raw = tmp_path / "laion400m" / "metadata" / "raw"
    raw.mkdir(parents=True)
    pd.DataFrame({"link": ["http://x/a.jpg"], "alt_text": ["a"]}).to_parquet(raw / "p.parquet")
    recipe = load_recipe("laion400m", {"root": str(tmp_path)})
    with pytest.raises(SchemaError) as err:
        run_spark(spark, recipe)
    assert "p.parquet" in str(err.value) and "link" in str(err.value)


def test_invalid_urls_and_nan_sizes_are_counted_with_a_reason(spark, tmp_path):
    raw = tmp_path / "laion400m" / "metadata" / "raw"
    raw.mkdir(parents=True)
    pd.DataFrame(
        {
            "url": [
                "http://h/a.jpg",
                None,
                "",
                "ftp://h/b.jpg",
                "http://h/c.jpg",
                "http://h/d.jpg",
            ],
            "caption": ["a", "b", "c", "d", "e", "f"],
            "width": ["100", "100", "100", "100", "NaN", "100"],
            "height": [100, 100, 100, 100, 100, 100],
            "similarity": [0.5] * 6,
        }
    ).to_csv(raw / "p.csv", index=False)
    recipe = load_recipe("laion400m", {"root": str(tmp_path), "filter.num_parts": 1})
    stats = run_spark(spark, recipe)
    assert stats["filtered"] == {"invalid_url": 3, "min_width": 1}
    assert stats["kept"] == 2 and stats["raw_rows"] == 6


def test_forced_rerun_with_fewer_parts_leaves_no_stale_part(spark, tmp_path):
    raw = tmp_path / "laion400m" / "metadata" / "raw"
    raw.mkdir(parents=True)
    pd.DataFrame(
        {
            "url": [f"http://h/{i}.jpg" for i in range(40)],
            "caption": [f"c{i}" for i in range(40)],
            "width": 100,
            "height": 100,
            "similarity": 0.5,
        }
    ).to_parquet(raw / "p.parquet")
    filtered = tmp_path / "laion400m" / "metadata" / "filtered"
    run_spark(spark, load_recipe("laion400m", {"root": str(tmp_path), "filter.num_parts": 4}))
    assert len(list(filtered.glob("part-*.parquet"))) == 4
    stats = run_spark(
        spark, load_recipe("laion400m", {"root": str(tmp_path), "filter.num_parts": 2}), force=True
    )
    assert sorted(p.name for p in filtered.glob("part-*.parquet")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert stats["kept"] == 40 == sum(len(pd.read_parquet(p)) for p in filtered.glob("part-*"))


def test_bad_rows_are_counted_with_their_reason(spark, tmp_path):
    raw = tmp_path / "laion400m" / "metadata" / "raw"
    raw.mkdir(parents=True)
    header = b"url,caption,width,height,similarity\n"
    rows = [
        b"http://h/ok1.jpg,fine,100,100,0.5",
        b"http://h/ok2.jpg,also fine,100,100,0.5",
        b"javascript:alert(1),x,100,100,0.5",  # non-http scheme
        b"file:///etc/passwd,x,100,100,0.5",  # non-http scheme
        b",no url,100,100,0.5",  # empty url
        b"http://h/e.jpg,,100,100,0.5",  # empty caption
        b"http://h/u.jpg,bad \xff\xfe bytes,100,100,0.5",  # invalid UTF-8
        b"http://h/l.jpg," + b"x" * 5000 + b",100,100,0.5",  # enormous caption
        b"http://h/d.jpg,wrong dtype,wide,100,0.5",  # width not a number
        b"http://h/n.jpg,nan size,NaN,100,0.5",
        b"http://h/s.jpg,nan similarity,100,100,NaN",
    ]
    (raw / "p.csv").write_bytes(header + b"\n".join(rows) + b"\n")
    recipe = load_recipe("laion400m", {"root": str(tmp_path), "filter.num_parts": 1})
    stats = run_spark(spark, recipe)
    assert stats["raw_rows"] == len(rows)
    assert stats["filtered"] == {
        "invalid_url": 3,
        "empty_caption": 1,
        "invalid_caption": 1,
        "caption_too_long": 1,
        "min_width": 2,
        "min_similarity": 1,
    }
    assert stats["kept"] == 2


def test_a_column_a_rule_needs_must_exist_in_every_file(spark, tmp_path):
    raw = tmp_path / "laion400m" / "metadata" / "raw"
    raw.mkdir(parents=True)
    pd.DataFrame(
        {
            "URL": ["http://h/a.jpg"],
            "TEXT": ["a"],
            "WIDTH": [100],
            "HEIGHT": [100],
            "similarty": [0.5],
        }
    ).to_parquet(raw / "typo.parquet")  # misspelled
    recipe = load_recipe("laion400m", {"root": str(tmp_path), "filter.num_parts": 1})
    with pytest.raises(SchemaError) as err:
        run_spark(spark, recipe)
    assert "typo.parquet" in str(err.value) and "['similarity']" in str(err.value)
    assert "similarty" in str(err.value)
