"""The two filter engines (Spark, DuckDB) make byte-identical parts and the same per-rule
counts: on the fixture corpus, and on a synthetic table built to hit every place where the
engines' defaults differ (number text, NaN, nulls, float -> int, csv quoting, duplicates that
differ outside their keys, every column spelling, recipe column overrides)."""

from __future__ import annotations

import glob
import os
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laionflow.jobs.filter import run, run_duckdb, run_spark
from laionflow.recipes import load_recipe
from laionflow.stages import STAGES, Engine

NAN = float("nan")
BAD_URLS = ["", "ftp://h/x.jpg", "http://", "https://", "http://h/a b.jpg", "nohttp.jpg"]
WIDTHS = ["100", " 200 ", "12.5", "abc", "", None, "1e3", "+64", "99999999999", "640", "0x40"]
SIMS = ["0.5", "nan", "1e-1", ".35", "0.3x", "", "0.31", "NaN", "inf", "0.9"]


def _captions(n: int, rng) -> list:
    texts = ["red cat", 'say "hi"', "a,b", "line\nbreak", "  ", "bad\ufffdbyte", "ok"]
    return [None if i % 29 == 5 else str(rng.choice(texts)) for i in range(n)]


def _urls(n: int, rng) -> list:
    urls = [f"https://img{i % 2}.example.com/{rng.integers(0, 4)}.jpg" for i in range(n)]
    for i in range(0, n, 9):
        urls[i] = BAD_URLS[(i // 9) % len(BAD_URLS)]
    urls[1] = "HTTPS://UPPER.example.com/A.JPG"
    urls[2] = None
    return urls


def synthetic(raw: str, n: int = 90) -> int:
    """Four files, four column spellings (one mapped by the recipe); url+caption pairs drawn
    from a small pool, so duplicates abound and differ in their other columns."""
    rng = np.random.default_rng(3)
    os.makedirs(raw, exist_ok=True)
    pick = lambda xs: [xs[i] for i in rng.integers(0, len(xs), size=n)]  # noqa: E731
    pq.write_table(
        pa.table(
            {
                "SAMPLE_ID": pa.array(rng.integers(0, 10**12, size=n)),
                "URL": _urls(n, rng),
                "TEXT": _captions(n, rng),
                "WIDTH": pick(WIDTHS),
                "HEIGHT": pa.array(pick([64, 2**40, -3, 300, None, 1000]), pa.int64()),
                "similarity": pick([0.5, NAN, float("inf"), None, 0.29, 0.31]),
                "NSFW": pick([None, "NSFW", "UNLIKELY", ""]),
                "LICENSE": pick(["?", "bad", None]),
                "hash": pa.array(rng.integers(-(2**62), 2**62, size=n)),
            }
        ),
        f"{raw}/a.parquet",
    )
    pd.DataFrame(
        {
            "url": _urls(n, rng),
            "top_caption": _captions(n, rng),
            "original_width": pick(WIDTHS),
            "original_height": pick(["64", "NaN", "-5", "7.0", "", "300"]),
            "similarity": pick(SIMS),
            "punsafe": pick(["0.1", "x", ""]),
            "AESTHETIC_SCORE": pick(["5.5", "9.5", "", "nan"]),
            "lang": pick(["en", "de", "", "fr"]),
        }
    ).to_csv(f"{raw}/b.csv", index=False)
    with open(f"{raw}/b.csv", "ab") as fh:  # undecodable bytes: U+FFFD in both engines
        fh.write(b"http://h/u.jpg,bad \xff\xfe bytes,100,100,0.5,0.1,5.5,en\n")
    pq.write_table(
        pa.table(
            {
                "Url": _urls(n, rng),
                "caption": _captions(n, rng),
                "width": pick([100.7, NAN, -0.0, 1e12, 64.0, None, 99.9]),
                "height": pa.array(pick([80.5, 500.0, 10.0, 400.0]), pa.float32()),
                "similarity": pa.array(pick([0.35, 0.2, NAN]), pa.float32()),
                "aesthetic": pick([4.0, 8.0, None]),
                "language": pick(["en", None, "ja"]),
                "sample_id": pick(["a", "b", None]),
                "x": np.arange(n),
            }
        ),
        f"{raw}/c.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "image_link": _urls(n, rng),
                "alt": _captions(n, rng),
                "WIDTH": pa.array(pick([100, 20, 3000, None]), pa.int32()),
                "HEIGHT": pa.array(pick([100, 90, 800]), pa.int32()),
                "similarity": pick([0.4, 0.1]),
            }
        ),
        f"{raw}/d.parquet",
    )
    return 4 * n + 1


RULES = [
    {"name": "min_similarity", "column": "similarity", "op": ">=", "value": 0.3},
    {"name": "nsfw", "column": "nsfw", "op": "!=", "value": "NSFW"},
    {"name": "min_width", "column": "width", "op": ">=", "value": 64},
    {"name": "aspect", "column": "aspect_ratio", "op": "<=", "value": 3},
    {"name": "lang", "column": "language", "op": "in", "value": ["en", "fr"], "missing": "pass"},
    {"name": "license", "column": "license", "op": "not_in", "value": ["bad"]},
    {"name": "aesthetic", "column": "aesthetic", "op": "<", "value": 9, "missing": "pass"},
]


def _both(spark, tmp_path, raw_src: str, overrides: dict) -> tuple[dict, dict]:
    """Run each engine on its own copy of ``raw_src``; (summaries, part bytes) per engine."""
    summaries, parts = {}, {}
    for engine in ("spark", "duckdb"):
        root = tmp_path / engine
        shutil.copytree(raw_src, root / "laion400m" / "metadata" / "raw")
        recipe = load_recipe("laion400m", {"root": str(root), **overrides})
        summary = run_spark(spark, recipe) if engine == "spark" else run_duckdb(recipe)
        summaries[engine] = {k: v for k, v in summary.items() if k not in ("seconds", "engine")}
        files = sorted(glob.glob(f"{root}/laion400m/metadata/filtered/part-*.parquet"))
        parts[engine] = {os.path.basename(f): open(f, "rb").read() for f in files}
    return summaries, parts


def test_engines_agree_on_the_fixture_corpus(spark, corpus, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in corpus.metadata_files:
        shutil.copy(path, raw)
    summaries, parts = _both(spark, tmp_path, str(raw), {"filter.num_parts": 3})
    assert summaries["spark"] == summaries["duckdb"]
    assert summaries["spark"]["duplicates"] > 0 and len(summaries["spark"]["filtered"]) == 3
    assert len(parts["spark"]) == 3 and parts["spark"] == parts["duckdb"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"filter.rules": RULES, "filter.num_parts": 4, "filter.seed": 11},
        # the rules come from the resolved recipe: none here (a prefiltered source); input order
        {"filter.rules": [], "filter.shuffle": False, "filter.dedup_keys": ["url"]},
        # input order keeps each engine's own SQL (Spark SQL's reader, casts and rules)
        {"filter.rules": RULES, "filter.shuffle": False, "filter.num_parts": 2},
    ],
    ids=["rules", "no-rules-unshuffled", "rules-unshuffled"],
)
def test_engines_agree_on_malformed_input_and_every_spelling(spark, tmp_path, overrides):
    raw = tmp_path / "raw"
    rows = synthetic(str(raw))
    overrides = {**overrides, "columns": {"image_link": "url", "alt": "caption"}}
    summaries, parts = _both(spark, tmp_path, str(raw), overrides)
    stats = summaries["spark"]
    assert stats == summaries["duckdb"]
    assert parts["spark"] == parts["duckdb"] and parts["spark"]
    assert stats["raw_rows"] == rows
    assert sum(stats["filtered"].values()) + stats["duplicates"] + stats["kept"] == rows
    assert stats["duplicates"] > 0
    rules = [r["name"] for r in overrides["filter.rules"]]
    builtin = {"invalid_url", "empty_caption", "invalid_caption"}
    assert set(stats["filtered"]) == builtin | set(rules)  # every rule and check is hit
    kept = pd.read_parquet(tmp_path / "duckdb" / "laion400m" / "metadata" / "filtered")
    assert not kept.duplicated(overrides.get("filter.dedup_keys", ["url", "caption"])).any()


def test_the_stage_table_picks_the_engine_from_the_recipe(tmp_path, monkeypatch):
    monkeypatch.delenv("LAIONFLOW_FILTER_ENGINE", raising=False)
    columns = {"image_link": "url", "alt": "caption"}
    recipe = load_recipe(
        "laion400m", {"root": str(tmp_path), "filter.engine": "duckdb", "columns": columns}
    )
    assert STAGES["filter"].engine(recipe) is Engine.DUCKDB
    assert STAGES["filter"].engine(load_recipe("laion400m", {})) is Engine.SPARK
    monkeypatch.setenv("LAIONFLOW_FILTER_ENGINE", "duckdb")
    assert STAGES["filter"].engine() is Engine.DUCKDB
    synthetic(str(tmp_path / "laion400m" / "metadata" / "raw"), n=20)
    assert run(recipe, master=None)["engine"] == "duckdb"  # no Spark session started
