"""Stage 2: normalise columns, filter by rule, exact dedup, deterministic shuffle, repartition.

Runs on Spark (``spark_jobs/filter_dedup.py`` under spark-submit, or in-process for the CLI).
Every raw row is accounted for: it is either filtered with the name of the first rule it fails
(``invalid_url`` for null/empty/non-http(s) URLs), dropped as a duplicate of an identical
``dedup_keys`` tuple, or kept in exactly one output part. The shuffle is a hash of
``(seed, url, caption)`` rather than ``rand()``, so the same input gives the same parts and
the same order on ``local[*]`` and on a cluster, whatever the partitioning.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from functools import reduce

from laionflow import fs
from laionflow.layout import Layout, part_id
from laionflow.recipes import Recipe
from laionflow.schema import CANONICAL_TYPES, SchemaError, column_mapping
from laionflow.spark import spark_session, spark_storage

log = logging.getLogger(__name__)
INVALID_URL = "invalid_url"
#: built-in row checks, before the recipe's rules: (reason, condition a good row meets)
EMPTY_CAPTION = "empty_caption"
INVALID_CAPTION = "invalid_caption"  # undecodable bytes (U+FFFD after decoding)
LONG_CAPTION = "caption_too_long"


def raw_files(recipe: Recipe) -> list[str]:
    files = [
        p
        for p in fs.ls(Layout(recipe.dataset_root).raw_metadata)
        if not os.path.basename(p).startswith((".", "_"))
    ]
    if not files:
        raise FileNotFoundError(f"no metadata under {Layout(recipe.dataset_root).raw_metadata}")
    return files


def needed_columns(recipe: Recipe) -> set[str]:
    """Canonical columns a source must have for the recipe's rules to mean anything (a rule
    on a missing column would silently filter every row)."""
    needed = set()
    for rule in recipe.filter.rules:
        if rule.missing == "pass" or rule.op in ("!=", "not_in"):
            continue  # nulls pass these rules: an absent column filters nothing
        needed |= {"width", "height"} if rule.column == "aspect_ratio" else {rule.column}
    return needed


def read_normalised(spark, path: str, overrides: dict[str, str], needed: set[str] = frozenset()):
    """One raw part as a DataFrame of canonical columns (all of them; absent ones are null).
    Raises :class:`SchemaError` naming the file and column when a ``needed`` one is absent."""
    from pyspark.sql import functions as F

    if path.endswith(".csv") or path.endswith(".csv.gz"):
        df = (
            spark.read.option("header", True)
            .option("multiLine", True)
            .option("escape", '"')
            .csv(path)
        )
    elif ".parquet" in path:
        df = spark.read.parquet(path)
    else:
        raise SchemaError(f"{path}: unknown metadata format (expected .parquet or .csv)")
    try:
        mapping = column_mapping(df.columns, overrides)
    except SchemaError as err:
        raise SchemaError(f"{os.path.basename(path)}: {err}") from None
    by_canonical = {v: k for k, v in mapping.items()}
    absent = sorted(needed - set(by_canonical))
    if absent:
        raise SchemaError(
            f"{os.path.basename(path)}: the recipe's rules need column(s) {absent}, which this "
            f"file lacks; found columns {df.columns} (map yours in the recipe's `columns`)"
        )
    cols = []
    for name, typ in CANONICAL_TYPES.items():
        if name in by_canonical:
            # malformed values become null (then a filter reason), never a failed job; NaN too,
            # since Spark orders NaN above every number and "NaN >= 64" would pass
            value = F.col(f"`{by_canonical[name]}`").try_cast(typ)
            if typ == "double":
                value = F.when(F.isnan(value), F.lit(None).cast(typ)).otherwise(value)
            cols.append(value.alias(name))
        else:
            cols.append(F.lit(None).cast(typ).alias(name))
    return df.select(*cols)


def _rule_condition(rule, F):
    col = F.col(rule.column)
    if rule.column == "aspect_ratio":
        col = F.greatest("width", "height") / F.least("width", "height")
    # a missing value cannot satisfy a comparison, but is not a forbidden value either:
    # "nsfw != NSFW" keeps a row without an NSFW tag, "width >= 64" drops a row without a width
    ops = {
        ">=": col.__ge__,
        ">": col.__gt__,
        "<=": col.__le__,
        "<": col.__lt__,
        "==": col.__eq__,
        "!=": lambda v: ~col.eqNullSafe(v),
    }
    if rule.op == "in":
        return col.isin(rule.value)
    if rule.op == "not_in":
        return col.isNull() | ~col.isin(rule.value)
    return ops[rule.op](rule.value)


def reason_column(recipe: Recipe):
    """``null`` for a row that passes every rule, else the name of the first rule it fails."""
    from pyspark.sql import functions as F

    url = F.lower(F.col("url"))
    # prefix and substring tests instead of a regex: the same rule, far cheaper at scale
    valid_url = F.coalesce(
        (
            (url.startswith("http://") & (F.length(url) > 7))
            | (url.startswith("https://") & (F.length(url) > 8))
        )
        & ~url.contains(" ")
        & ~url.contains("\t")
        & ~url.contains("\n"),
        F.lit(False),
    )
    url_text_ok = ~F.coalesce(F.col("url").contains("\ufffd"), F.lit(False))
    caption = F.col("caption")
    expr = (
        F.when(~(valid_url & url_text_ok), F.lit(INVALID_URL))
        .when(F.coalesce(F.length(F.trim(caption)) == 0, F.lit(True)), F.lit(EMPTY_CAPTION))
        .when(caption.contains("\ufffd"), F.lit(INVALID_CAPTION))
        .when(F.length(caption) > recipe.filter.max_caption_chars, F.lit(LONG_CAPTION))
    )
    for rule in recipe.filter.rules:
        cond = _rule_condition(rule, F)
        if rule.missing == "pass":
            cond = F.col(rule.column).isNull() | cond
        expr = expr.when(~F.coalesce(cond, F.lit(False)), F.lit(rule.name))
    return expr


def run_spark(spark, recipe: Recipe, force: bool = False) -> dict:
    layout = Layout(recipe.dataset_root)
    if fs.exists(layout.filter_stats) and not force:
        log.info("filter: %s exists, skipping (use --force to redo)", layout.filter_stats)
        return fs.read_json(layout.filter_stats)
    started = time.time()
    files = raw_files(recipe)
    with spark_storage(layout.filtered_metadata) as (spark_path, staged_dir):
        summary = _filter(spark, recipe, files, spark_path, staged_dir)
    summary["seconds"] = round(time.time() - started, 2)
    fs.write_json(layout.filter_stats, summary)  # written last: marks the stage done
    log.info(
        "filter: %d raw -> %d kept in %d parts (%d duplicates, filtered %s)",
        summary["raw_rows"],
        summary["kept"],
        len(summary["parts"]),
        summary["duplicates"],
        summary["filtered"],
    )
    return summary


def _filter(spark, recipe: Recipe, files: list[str], spark_path, staged_dir) -> dict:
    from pyspark.sql import functions as F

    layout = Layout(recipe.dataset_root)
    if staged_dir is not None:
        local_files = []
        for src in files:
            dest = os.path.join(staged_dir, "raw", os.path.basename(src))
            fs.download(src, dest)
            local_files.append(dest)
        readable = local_files
    else:
        readable = [spark_path(p) for p in files]
    needed = needed_columns(recipe)
    frames = [read_normalised(spark, p, recipe.columns, needed) for p in readable]
    df = reduce(lambda a, b: a.unionByName(b), frames)
    df = df.withColumn("_reason", reason_column(recipe))
    counts = df.groupBy("_reason").count().collect()
    by_reason = {r["_reason"]: r["count"] for r in counts}
    passed = by_reason.pop(None, 0)
    raw_rows = passed + sum(by_reason.values())

    # One shuffle: rows go to their output part (a hash of the dedup keys, so duplicates share
    # a part); dedup is then a hash aggregate inside each partition, with no second exchange.
    # Among duplicates the row with the smallest hash of all its values is kept: deterministic.
    cfg = recipe.filter
    key_hash = F.xxhash64(F.lit(cfg.seed), *[F.col(k) for k in cfg.dedup_keys])
    cols = list(CANONICAL_TYPES)
    rest = [c for c in cols if c not in cfg.dedup_keys]
    unique = (
        df.where(F.col("_reason").isNull())
        .withColumn("_order", key_hash if cfg.shuffle else F.monotonically_increasing_id())
        .withColumn("_part", F.pmod(key_hash, F.lit(cfg.num_parts)))
        .withColumn("_tiebreak", F.xxhash64(*cols))
        .repartition(cfg.num_parts, "_part")
        .groupBy("_part", *cfg.dedup_keys)
        .agg(F.min_by(F.struct(*rest, "_order"), "_tiebreak").alias("_row"))
        .select("_part", *cfg.dedup_keys, "_row.*")
    )
    tmp = f"{staged_dir or layout.filtered_metadata}/.tmp-{uuid.uuid4().hex[:8]}"
    (
        unique.sortWithinPartitions("_part", "_order")
        .select(*cols, "_part")
        .write.partitionBy("_part")
        .parquet(spark_path(tmp))
    )
    for stale in fs.ls(layout.filtered_metadata):  # a forced rerun may make fewer parts
        if part_id(stale) is not None:
            fs.rm(stale)
    parts: dict[int, int] = {}
    for part_dir in fs.ls(tmp):
        part = part_id(part_dir)  # Spark's ``_part=N`` folders
        if part is None:
            continue
        data = [p for p in fs.ls(part_dir) if p.endswith(".parquet")]
        if len(data) != 1:
            raise RuntimeError(f"expected one file for part {part}, got {data}")
        fs.move(data[0], layout.filtered_part(part))
    fs.rm(tmp, recursive=True)
    import pyarrow.parquet as pq

    for path in fs.ls(layout.filtered_metadata):
        if part_id(path) is not None:
            with fs.open(path) as fh:
                parts[part_id(path)] = pq.ParquetFile(fh).metadata.num_rows
    kept_rows = sum(parts.values())
    return {
        "stage": "filter",
        "raw_rows": raw_rows,
        "filtered": dict(sorted(by_reason.items())),
        "duplicates": passed - kept_rows,
        "kept": kept_rows,
        "parts": {str(k): v for k, v in sorted(parts.items())},
        "sources": [os.path.basename(p) for p in files],
    }


def run(recipe: Recipe, force: bool = False, master: str | None = "local[*]") -> dict:
    """CLI/in-process entry: start (or reuse) a session and run the job."""
    return run_spark(spark_session(master), recipe, force=force)
