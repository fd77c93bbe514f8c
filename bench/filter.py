"""Benchmark: the filter stage (rules + dedup + hash shuffle + parts) on both engines against
bare DuckDB doing the same filter and dedup into the same number of parquet parts, measured
in the same run on the same synthetic metadata.

    .venv/bin/python bench/filter.py [--rows 1000000,10000000] [--parts 16] [--repeat 3]

Prints, per size, seconds of bare DuckDB, of the DuckDB engine (ratio, goal <= 1.2, and its
peak RSS: each DuckDB run is its own process) and of Spark local[*] (ratio, goal <= 2), with
min/median/max when repeated, and the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def synth(folder: Path, rows: int, files: int = 8, seed: int = 0) -> None:
    """LAION-400M-like columns: ids drawn with replacement from 0.98x the rows, so ~37 % of
    rows repeat an earlier url+caption (the dedup has real work); ~10 % fail some rule."""
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

    t = time.perf_counter()
    run_spark(spark, _recipe(work, parts), force=True)
    return time.perf_counter() - t


def _recipe(work: Path, parts: int):
    from laionflow.recipes import load_recipe

    return load_recipe(
        "laion400m",
        {"root": str(work), "filter.num_parts": parts, "metadata.urls": ["file:///unused"]},
    )


def in_child(kind: str, work: Path, parts: int) -> tuple[float, float]:
    """Seconds and peak RSS (GB) of one DuckDB run (``bare`` or ``engine``) in a fresh
    process, so the memory figure is DuckDB's alone."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--work", str(work), "--parts", str(parts)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[-2]), float(out[-1])


def child(kind: str, work: Path, parts: int) -> None:
    if kind == "bare":
        out = work / "duck"
        shutil.rmtree(out, ignore_errors=True)
        seconds = duckdb_filter(work / "laion400m" / "metadata" / "raw", out, parts)
    else:
        # imported before the clock starts, as bare DuckDB's is: the job is measured, not
        # imports (pyarrow imports pandas on its first numpy conversion: ~0.25 s)
        import duckdb  # noqa: F401
        import pandas  # noqa: F401

        from laionflow.filtering import duck  # noqa: F401
        from laionflow.jobs.filter import run_duckdb

        t = time.perf_counter()
        run_duckdb(_recipe(work, parts), force=True)
        seconds = time.perf_counter() - t
    print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def spread(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:7.1f}s"
    return f"{min(xs):.1f}/{statistics.median(xs):.1f}/{max(xs):.1f}s"


def bench(rows: int, args, spark) -> None:
    work = Path(tempfile.mkdtemp(prefix="laionflow-bench-filter-"))
    synth(work / "laion400m" / "metadata" / "raw", rows)
    bare, engine, ours, rss = [], [], [], []
    for _ in range(args.repeat):
        bare.append(in_child("bare", work, args.parts)[0])
        seconds, peak = in_child("engine", work, args.parts)
        engine.append(seconds)
        rss.append(peak)
        if spark is not None:
            ours.append(spark_filter(work, args.parts, spark))
    base = statistics.median(bare)
    line = f"rows={rows:>10}  bare duckdb={spread(bare)}  duckdb engine={spread(engine)} "
    line += f"({statistics.median(engine) / base:4.2f}x, goal <= 1.2; peak RSS {max(rss):.2f} GB)"
    if ours:
        line += f"  spark={spread(ours)} ({statistics.median(ours) / base:4.2f}x, goal <= 2)"
        line += f"  spark rows/s={rows / statistics.median(ours):,.0f}"
    print(line + f"  [load {os.getloadavg()[0]:.1f}]", flush=True)
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1000000,10000000")
    ap.add_argument("--parts", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=1, help="runs per size: min/median/max")
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--child", choices=("bare", "engine"), help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.work, args.parts)
        return
    print(f"load average before: {os.getloadavg()} on {os.cpu_count()} cores", flush=True)
    spark = None
    if not args.no_spark:
        os.environ.setdefault("LAIONFLOW_SHUFFLE_PARTITIONS", str(os.cpu_count() or 2))
        from laionflow.spark import spark_session

        spark = spark_session("local[*]", app="bench-filter")
        # warm the JVM (class loading, code generation) so Spark is measured warm
        warm = Path(tempfile.mkdtemp(prefix="laionflow-bench-warm-"))
        synth(warm / "laion400m" / "metadata" / "raw", 20_000)
        spark_filter(warm, args.parts, spark)
        shutil.rmtree(warm, ignore_errors=True)
    for rows in (int(r) for r in args.rows.split(",")):
        bench(rows, args, spark)
    print(f"load average after: {os.getloadavg()}", flush=True)
    if spark is not None:
        spark.stop()


if __name__ == "__main__":
    main()
