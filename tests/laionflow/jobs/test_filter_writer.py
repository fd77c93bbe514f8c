"""The shared part writer's duplicate dropping (the engines deliver duplicates adjacent, first
in input order) and the engines' choice of the first duplicate, end to end."""

from __future__ import annotations

import glob

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laionflow.filtering.writer import SCHEMA, write_parts
from laionflow.jobs.filter import run_duckdb, run_spark
from laionflow.recipes import load_recipe


def _batches(rows: list[tuple], sizes: list[int]) -> list[pa.RecordBatch]:
    """``rows`` of (part, url, caption, hash) cut into batches of ``sizes`` rows."""
    table = pa.table(
        {
            "_part": pa.array([r[0] for r in rows], pa.int32()),
            "url": [r[1] for r in rows],
            "caption": [r[2] for r in rows],
            "hash": [r[3] for r in rows],
        }
    )
    out, start = [], 0
    for size in sizes:
        out.extend(table.slice(start, size).to_batches())
        start += size
    return out


def test_adjacent_duplicates_are_dropped_across_batches_and_nulls_match(tmp_path):
    rows = [
        (0, "u1", "a", "first"),
        (0, "u1", "a", "dup-across-batch"),
        (0, "u1", "b", "other-caption"),
        (0, None, "b", "null-url"),
        (0, None, "b", "dup-of-null-url"),
        (1, "u1", "b", "next-part"),  # same keys as row 3, but not adjacent: kept
        (1, "u2", None, "null-caption"),
        (1, "u2", None, "dup-of-null-caption"),
        (1, "u2", "c", "last"),
    ]
    parts, received = write_parts(
        _batches(rows, [1, 2, 2, 1, 3]), str(tmp_path), ["url", "caption"]
    )
    assert received == len(rows)
    assert parts == {0: 3, 1: 3}
    kept = [pq.read_table(f).column("hash").to_pylist() for f in sorted(glob.glob(f"{tmp_path}/*"))]
    assert kept == [["first", "other-caption", "null-url"], ["next-part", "null-caption", "last"]]
    assert pq.read_schema(f"{tmp_path}/part-00000.parquet").names == SCHEMA.names


def test_without_keys_every_row_is_written(tmp_path):
    rows = [(0, "u", "a", str(i)) for i in range(5)]
    parts, received = write_parts(_batches(rows, [2, 3]), str(tmp_path))
    assert parts == {0: 5} and received == 5


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "input-order"])
def test_both_engines_keep_the_first_duplicate_in_input_order(spark, tmp_path, shuffle):
    """3,000 rows over 40 (url, caption) pairs in two files; ``hash`` is the input position:
    each kept row must be its key's first occurrence."""
    n = 3000
    for f in range(2):
        ids = [(i * 7 + f) % 40 for i in range(n // 2)]
        pq.write_table(
            pa.table(
                {
                    "url": [f"https://h/{i}.jpg" for i in ids],
                    "caption": [f"c{i % 13}" for i in ids],
                    "hash": [f"{f}-{r:05d}" for r in range(n // 2)],
                }
            ),
            tmp_path / f"in{f}.parquet",
        )
    first: dict[tuple, str] = {}
    for f in range(2):
        t = pq.read_table(tmp_path / f"in{f}.parquet").to_pylist()
        for row in t:
            first.setdefault((row["url"], row["caption"]), row["hash"])
    for engine, runner in (("spark", lambda r: run_spark(spark, r)), ("duckdb", run_duckdb)):
        root = tmp_path / engine
        raw = root / "laion400m" / "metadata" / "raw"
        raw.mkdir(parents=True)
        for f in range(2):
            (raw / f"in{f}.parquet").write_bytes((tmp_path / f"in{f}.parquet").read_bytes())
        recipe = load_recipe(
            "laion400m",
            {
                "root": str(root),
                "filter.rules": [],
                "filter.num_parts": 3,
                "filter.shuffle": shuffle,
            },
        )
        summary = runner(recipe)
        files = sorted(glob.glob(f"{root}/laion400m/metadata/filtered/part-*.parquet"))
        kept = pa.concat_tables(pq.read_table(f) for f in files).to_pylist()
        assert {(r["url"], r["caption"]): r["hash"] for r in kept} == first, engine
        assert summary["kept"] == len(first) == len(kept)
        assert summary["duplicates"] == n - len(first)
