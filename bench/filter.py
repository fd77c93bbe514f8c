"""Benchmark: the Spark filter + dedup + shuffle + repartition job vs DuckDB doing the same
filter and dedup and writing the same number of parquet parts, on the same synthetic metadata.

    .venv/bin/python bench/filter.py [--rows 1000000,10000000] [--parts 16]

Prints seconds for both and the ratio ours/DuckDB (goal ≤ 2) for each size, so the growth
with rows (goal: linear) is visible in one run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def synth(folder: Path, rows: int, files: int = 8, seed: int = 0) -> None:
    """LAION-400M-like columns; ~2 % duplicates, ~10 % rows failing some rule."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    per = rows // files
    for f in range(files):
        ids = rng.integers(0, int(rows * 0.98), size=per)
        table = pa.table(
            {
                "URL": pa.array([f"https://img.example.com/{i}.jpg" for i in ids]),
                "TEXT": pa.array([f"caption number {i}" for i in ids]),
                "WIDTH": rng.integers(20, 2000, size=per).astype(np.int32),
                "HEIGHT": rng.integers(20, 2000, size=per).astype(np.int32),
                "similarity": rng.uniform(0.25, 0.45, size=per),
                "NSFW": np.where(rng.random(per) < 0.03, "NSFW", "UNLIKELY"),
                "punsafe": rng.random(per),
                "pwatermark": rng.random(per),
                "LICENSE": np.full(per, "?"),
                "hash": rng.integers(-(2**62), 2**62, size=per).astype(str),
            }
        )
        pq.write_table(table, folder / f"{f:05d}-part.parquet")


def duckdb_filter(raw: Path, out: Path, parts: int) -> float:
    import duckdb

    out.mkdir()
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(f"""
        COPY (
          SELECT * EXCLUDE (rn), hash(URL, TEXT) % {parts} AS part FROM (
            SELECT *, row_number() OVER (PARTITION BY URL, TEXT ORDER BY hash) AS rn
            FROM read_parquet('{raw}/*.parquet')
            WHERE similarity >= 0.3 AND NSFW != 'NSFW' AND WIDTH >= 64 AND HEIGHT >= 64
              AND regexp_matches(URL, '^https?://')
          ) WHERE rn = 1
        ) TO '{out}' (FORMAT parquet, PARTITION_BY (part))""")
    # the same accounting our job does: rows per rule
    con.execute(f"""SELECT CASE WHEN similarity < 0.3 THEN 'sim' WHEN NSFW = 'NSFW' THEN 'nsfw'
                    WHEN WIDTH < 64 THEN 'w' WHEN HEIGHT < 64 THEN 'h' END AS r, count(*)
                    FROM read_parquet('{raw}/*.parquet') GROUP BY r""").fetchall()
    return time.perf_counter() - t


def spark_filter(work: Path, parts: int, spark) -> float:
    from laionflow.jobs.filter import run_spark
    from laionflow.recipes import load_recipe

    recipe = load_recipe(
        "laion400m",
        {"root": str(work), "filter.num_parts": parts, "metadata.urls": ["file:///unused"]},
    )
    t = time.perf_counter()
    run_spark(spark, recipe, force=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1000000,10000000")
    ap.add_argument("--parts", type=int, default=16)
    args = ap.parse_args()
    import os

    os.environ.setdefault("LAIONFLOW_SHUFFLE_PARTITIONS", "16")
    os.environ.setdefault("LAIONFLOW_SPARK_DRIVER_MEMORY", "8g")
    from laionflow.spark import spark_session

    spark = spark_session("local[*]", app="bench-filter")
    # warm the JVM (class loading, code generation) so both engines are measured warm
    warm = Path(tempfile.mkdtemp(prefix="laionflow-bench-warm-"))
    synth(warm / "laion400m" / "metadata" / "raw", 20_000)
    spark_filter(warm, args.parts, spark)
    shutil.rmtree(warm, ignore_errors=True)
    for rows in (int(r) for r in args.rows.split(",")):
        work = Path(tempfile.mkdtemp(prefix="laionflow-bench-filter-"))
        raw = work / "laion400m" / "metadata" / "raw"
        synth(raw, rows)
        ours = spark_filter(work, args.parts, spark)
        theirs = duckdb_filter(raw, work / "duck", args.parts)
        print(
            f"rows={rows:>10}  spark={ours:7.1f}s  duckdb={theirs:7.1f}s  "
            f"ratio={ours / theirs:5.2f} (goal <= 2)  spark rows/s={rows / ours:,.0f}"
        )
        shutil.rmtree(work, ignore_errors=True)
    spark.stop()


if __name__ == "__main__":
    main()
