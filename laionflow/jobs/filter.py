"""Stage 2: normalise columns, filter by rule, exact dedup, deterministic shuffle, repartition.

Two engines run one plan (:mod:`laionflow.filtering.runs`: DuckDB map tasks that split rows
into run files by part, then one reduce per part that sorts, dedups and writes through the
shared writer), so they make byte-identical parts and the same per-rule counts. They differ in
who runs the tasks: Spark (``spark_jobs/filter_dedup.py`` under spark-submit, or in-process
``local[*]``: the cluster path; a map task per raw file, a reduce task per part) or one
process (:mod:`laionflow.filtering.duck`: no JVM). Which one runs is the stage table's choice
(``STAGES["filter"].engine(recipe)``). With ``filter.shuffle: false`` each runs its own SQL
(:mod:`laionflow.filtering.sql`), Spark SQL here.

Every raw row is accounted for: it is either filtered with the name of the first rule it fails
(``invalid_url`` for null/empty/non-http(s) URLs), dropped as a duplicate of an identical
``dedup_keys`` tuple, or kept in exactly one output part. The shuffle is a hash of
``(seed, dedup keys)`` (``sql.order_key``) rather than ``rand()``, so the same input gives
the same parts and the same order on ``local[*]``, on a cluster and on DuckDB, whatever the
partitioning, for one DuckDB version (recorded in the stage's summary as ``order``).
"""

from __future__ import annotations

from collections import Counter
from functools import reduce

from laionflow.filtering import runs, sql
from laionflow.filtering.sql import (  # noqa: F401 - the reasons' names, re-exported
    EMPTY_CAPTION,
    INVALID_CAPTION,
    INVALID_URL,
    LONG_CAPTION,
    SPARK,
    needed_columns,
)
from laionflow.filtering.stage import check_columns, done, raw_files, run_stage
from laionflow.filtering.writer import BATCH_ROWS, SPARK_RESULT, spark_writer
from laionflow.layout import Layout
from laionflow.recipes import Recipe
from laionflow.schema import CANONICAL_TYPES, SchemaError
from laionflow.spark import spark_session, spark_storage

__all__ = ["raw_files", "read_normalised", "run", "run_duckdb", "run_spark"]


def _kind(data_type) -> str:
    from pyspark.sql import types as T

    if isinstance(data_type, T.StringType):
        return "text"
    if isinstance(data_type, T.IntegralType):
        return "int"
    if isinstance(data_type, T.FloatType | T.DoubleType | T.DecimalType):
        return "float"
    return "other"


def read_normalised(spark, path: str, recipe: Recipe, needed: set[str], index: int = 0):
    """One raw file as a DataFrame of canonical columns (absent ones null) plus its input
    position (``_src``, ``_blk``, ``_pos``: which duplicate is kept, and the order when
    ``filter.shuffle`` is off), and the canonical columns the file has.
    Raises :class:`SchemaError` naming the file and column when a ``needed`` one is absent."""
    csv = path.endswith((".csv", ".csv.gz"))
    if csv:  # every value as text: the casts are the shared SQL's, not the reader's
        reader = spark.read.option("header", True).option("multiLine", True)
        df = reader.option("escape", '"').csv(path)
    elif ".parquet" in path:
        df = spark.read.parquet(path)
    else:
        raise SchemaError(f"{path}: unknown metadata format (expected .parquet or .csv)")
    by_canonical = sql.source_columns(path, df.columns, recipe.columns, needed)
    kinds = {f.name: _kind(f.dataType) for f in df.schema.fields}
    exprs = sql.normalise(by_canonical, kinds, SPARK, csv=csv)
    positions = [
        f"{index} AS _src",
        "input_file_block_start() AS _blk",
        "monotonically_increasing_id() AS _pos",
    ]
    return df.selectExpr(*exprs, *positions), set(by_canonical)


def _shuffled(spark, recipe: Recipe, files: list[str], out_dir: str):
    """The shuffle through run files (:mod:`laionflow.filtering.runs`) with Spark as its
    distributor: one map task per raw file (the DuckDB engine's scan of that file, one core
    each) writes run files under ``out_dir``, then one reduce task per part sorts and writes
    it. A failed task is retried by Spark and replaces its own run files.

    Spark SQL's own scan is not used here: at 10M rows its scan with the rules alone took
    1.2x bare DuckDB's whole job, and moving the rows to the Python writer (exchange or
    Arrow) 2-3x more (README, Performance)."""
    from laionflow.filtering import duck

    check_columns(recipe, files)  # on the driver, before any task starts
    cfg = recipe.filter
    run_dir = f"{out_dir}/.runs"
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    counted = (
        spark.sparkContext.parallelize(list(enumerate(files)), len(files))
        .mapPartitionsWithIndex(
            lambda task, items: [
                (sql.order_function(), duck.map_files(recipe, list(items), run_dir, task, threads))
            ]
        )
        .collect()
    )
    same_order_function([f for f, _ in counted])
    by_reason: Counter = Counter()
    for _, counts in counted:
        by_reason.update(counts)
    keys = list(cfg.dedup_keys)
    reduced = (
        spark.sparkContext.parallelize(range(cfg.num_parts), cfg.num_parts)
        .map(lambda part: (part, runs.reduce_part(run_dir, part, out_dir, keys)))
        .collect()
    )
    received = sum(r for _, (_, r) in reduced)
    if received != by_reason.get(None, 0):
        raise RuntimeError(f"filter: {by_reason.get(None, 0)} rows passed, {received} reduced")
    return dict(by_reason), {part: rows for part, (rows, _) in reduced if rows}


def same_order_function(functions: list[str]) -> None:
    """Raises unless every map task computed its order keys as the driver would: executors
    with another DuckDB would send one key's duplicates to different parts, where no reduce
    sees both."""
    mine = sql.order_function()
    other = sorted(set(functions) - {mine})
    if other:
        raise RuntimeError(
            f"filter: map tasks ordered rows with {other}, the driver with {mine!r}: install "
            "the same DuckDB version on the driver and every executor"
        )


def _in_input_order(spark, recipe: Recipe, files: list[str], out_dir: str):
    """``filter.shuffle: false``, in Spark SQL: parts keep input order, so duplicates are not
    adjacent; they are found by an aggregate keeping the first row's values, after a
    counting scan."""
    from pyspark.sql import functions as F

    cfg = recipe.filter
    needed = needed_columns(recipe)
    frames = [read_normalised(spark, path, recipe, needed, i)[0] for i, path in enumerate(files)]
    df = reduce(lambda a, b: a.unionByName(b), frames)
    df = df.withColumn("_reason", F.expr(sql.reason(recipe, SPARK)))
    by_reason = {r["_reason"]: r["count"] for r in df.groupBy("_reason").count().collect()}
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_ROWS))
    tasks = min(cfg.num_parts, int(spark.conf.get("spark.sql.shuffle.partitions")))
    keys = list(cfg.dedup_keys)
    rest = [c for c in CANONICAL_TYPES if c not in keys]
    unique = (
        df.where(F.col("_reason").isNull())
        .withColumn("_h", F.expr(sql.key_digest(recipe)))
        .withColumn("_part", F.expr(sql.part_of("_h", cfg.num_parts, SPARK)))
        .repartition(tasks, "_part")
        .groupBy("_part", "_h", *keys)
        .agg(*[F.expr(e) for e in sql.first_row(rest, SPARK)])
        .sortWithinPartitions("_part", "_first")
    )
    written = unique.mapInArrow(spark_writer(out_dir), SPARK_RESULT).collect()
    return by_reason, {r["part"]: r["rows"] for r in written if r["part"] is not None}


def run_spark(spark, recipe: Recipe, force: bool = False) -> dict:
    """The Spark engine (``local[*]``, a standalone cluster or YARN)."""
    finished = done(recipe, force)
    if finished is not None:
        return finished
    if recipe.filter.shuffle:  # the tasks reach any root through fsspec
        compute = lambda files, out: _shuffled(spark, recipe, files, out)  # noqa: E731
        return run_stage(recipe, force, "spark", compute, lambda p: p, None)
    with spark_storage(Layout(recipe.dataset_root).filtered_metadata) as (spark_path, staged_dir):
        return run_stage(
            recipe,
            force,
            "spark",
            lambda files, out: _in_input_order(spark, recipe, files, out),
            spark_path,
            staged_dir,
        )


def run_duckdb(recipe: Recipe, force: bool = False) -> dict:
    """The DuckDB engine: same parts, same counts, one process."""
    import tempfile

    from laionflow import fs
    from laionflow.filtering import duck

    finished = done(recipe, force)
    if finished is not None:
        return finished
    compute = lambda files, out: duck.compute(recipe, files, out)  # noqa: E731
    if fs.is_local(recipe.dataset_root):
        readable = lambda p: p.removeprefix("file://")  # noqa: E731
        return run_stage(recipe, force, "duckdb", compute, readable, None)
    with tempfile.TemporaryDirectory(prefix="laionflow-filter-") as staged:
        return run_stage(recipe, force, "duckdb", compute, None, staged)


def run(recipe: Recipe, force: bool = False, master: str | None = "local[*]") -> dict:
    """CLI/in-process entry: the engine the stage table chooses for this recipe."""
    from laionflow.stages import STAGES, Engine

    if STAGES["filter"].engine(recipe) is Engine.DUCKDB:
        return run_duckdb(recipe, force=force)
    from laionflow.credentials import executor_env

    return run_spark(spark_session(master, conf=executor_env()), recipe, force=force)
