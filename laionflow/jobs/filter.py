"""Stage 2: normalise columns, filter by rule, exact dedup, deterministic shuffle, repartition.

Two engines run the same SQL (:mod:`laionflow.filtering.sql`) and write through the same
writer (:mod:`laionflow.filtering.writer`), so they make byte-identical parts and the same
per-rule counts: Spark (``spark_jobs/filter_dedup.py`` under spark-submit, or in-process
``local[*]``: the cluster path) and DuckDB (:mod:`laionflow.filtering.duck`: one process, no
JVM). Which one runs is the stage table's choice (``STAGES["filter"].engine(recipe)``).

Every raw row is accounted for: it is either filtered with the name of the first rule it fails
(``invalid_url`` for null/empty/non-http(s) URLs), dropped as a duplicate of an identical
``dedup_keys`` tuple, or kept in exactly one output part. The shuffle is an md5 of
``(seed, dedup keys)`` rather than ``rand()``, so the same input gives the same parts and
the same order on ``local[*]``, on a cluster and on DuckDB, whatever the partitioning.
"""

from __future__ import annotations

import logging
from functools import reduce

from laionflow.filtering import sql
from laionflow.filtering.sql import (  # noqa: F401 - the reasons' names, re-exported
    EMPTY_CAPTION,
    INVALID_CAPTION,
    INVALID_URL,
    LONG_CAPTION,
    SPARK,
    needed_columns,
)
from laionflow.filtering.stage import done, raw_files, run_stage
from laionflow.filtering.writer import spark_writer
from laionflow.layout import Layout
from laionflow.recipes import Recipe
from laionflow.schema import CANONICAL_TYPES, SchemaError
from laionflow.spark import spark_session, spark_storage

log = logging.getLogger(__name__)
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
    ``filter.shuffle`` is off).
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
    return df.selectExpr(
        *exprs,
        f"{index} AS _src",
        "input_file_block_start() AS _blk",
        "monotonically_increasing_id() AS _pos",
    )


def _compute(spark, recipe: Recipe, files: list[str], out_dir: str):
    from pyspark.sql import functions as F

    cfg = recipe.filter
    needed = needed_columns(recipe)
    frames = [read_normalised(spark, p, recipe, needed, i) for i, p in enumerate(files)]
    df = reduce(lambda a, b: a.unionByName(b), frames)
    df = df.withColumn("_reason", F.expr(sql.reason(recipe, SPARK)))
    by_reason = {r["_reason"]: r["count"] for r in df.groupBy("_reason").count().collect()}

    # One exchange: rows go to their output part (the md5 of the dedup keys, so duplicates
    # share a part); dedup is then an aggregate inside each partition keeping the first row in
    # input order (shared SQL), sorted within the partition as the writer needs.
    keys = list(cfg.dedup_keys)
    rest = [c for c in CANONICAL_TYPES if c not in keys]
    order = ["_h", *keys] if cfg.shuffle else ["_first"]
    tasks = min(cfg.num_parts, int(spark.conf.get("spark.sql.shuffle.partitions")))
    unique = (
        df.where(F.col("_reason").isNull())
        .withColumn("_h", F.expr(sql.key_digest(recipe)))
        .withColumn("_part", F.expr(sql.part_of("_h", cfg.num_parts, SPARK)))
        .repartition(tasks, "_part")
        .groupBy("_part", "_h", *keys)
        .agg(*[F.expr(e) for e in sql.first_row(rest, SPARK)])
        .sortWithinPartitions("_part", *order)
    )
    written = unique.mapInArrow(spark_writer(out_dir), "part int, rows long").collect()
    return by_reason, {r["part"]: r["rows"] for r in written}


def run_spark(spark, recipe: Recipe, force: bool = False) -> dict:
    """The Spark engine (``local[*]``, a standalone cluster or YARN)."""
    finished = done(recipe, force)
    if finished is not None:
        return finished
    with spark_storage(Layout(recipe.dataset_root).filtered_metadata) as (spark_path, staged_dir):
        return run_stage(
            recipe,
            force,
            "spark",
            lambda files, out: _compute(spark, recipe, files, out),
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
    return run_spark(spark_session(master), recipe, force=force)
