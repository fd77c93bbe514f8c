"""The DuckDB filter engine (``filter.engine: duckdb``): the same SQL as the Spark job, in one
process with no JVM, under a memory limit with spilling, writing through the shared writer.

Two scans of the raw files: one counts rows per reason (DuckDB reads only the columns the
rules need), one streams the kept, deduplicated rows sorted by ``(part, digest, keys)`` into
:func:`laionflow.filtering.writer.write_parts`.
"""

from __future__ import annotations

import os
import tempfile

from laionflow.filtering import sql
from laionflow.filtering.sql import DUCKDB
from laionflow.filtering.writer import write_parts
from laionflow.recipes import Recipe
from laionflow.schema import CANONICAL_TYPES

#: DuckDB's limit; with the writer's buffers and the result batches the process stays < 2 GB
MEMORY_LIMIT = os.environ.get("LAIONFLOW_DUCKDB_MEMORY", "1200MB")
BATCH_ROWS = 65_536


def _kind(duck_type: str) -> str:
    t = duck_type.upper()
    if t == "VARCHAR":
        return "text"
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT") or t.startswith("U"):
        return "int"
    if t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL"):
        return "float"
    return "other"


def _source(con, index: int, path: str, recipe: Recipe, needed: set[str]) -> str:
    quoted = sql.literal(path, DUCKDB)
    csv = path.endswith((".csv", ".csv.gz"))
    if csv:
        reader = (
            f"read_csv({quoted}, header=true, all_varchar=true, delim=',', quote='\"', "
            "escape='\"', auto_detect=true)"
        )
        position = "row_number() OVER ()"
    elif ".parquet" in path:
        reader = f"read_parquet({quoted}, file_row_number=true)"
        position = "file_row_number"
    else:
        raise sql.SchemaError(f"{path}: unknown metadata format (expected .parquet or .csv)")
    described = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
    types = {row[0]: row[1] for row in described if row[0] != "file_row_number"}
    by_canonical = sql.source_columns(path, list(types), recipe.columns, needed)
    kinds = {src: _kind(types[src]) for src in by_canonical.values()}
    exprs = sql.normalise(by_canonical, kinds, DUCKDB, csv=csv)
    if recipe.filter.shuffle:
        position = "0"  # the order is the digest; no input position needed
    return f"SELECT {', '.join(exprs)}, {index} AS _src, {position} AS _pos FROM {reader}"


def connect(spill_dir: str):
    import duckdb

    return duckdb.connect(
        config={
            "memory_limit": MEMORY_LIMIT,
            "temp_directory": spill_dir,
            "preserve_insertion_order": True,
            "threads": os.cpu_count() or 1,
        }
    )


def kept_query(recipe: Recipe) -> str:
    """Deduplicated passing rows with ``_part``, sorted as the writer needs them."""
    cfg = recipe.filter
    keys = list(cfg.dedup_keys)
    rest = [c for c in CANONICAL_TYPES if c not in keys]
    order = ["_h", *keys] if cfg.shuffle else ["_src", "_pos"]
    carried = rest if cfg.shuffle else [*rest, "_src", "_pos"]
    group = ["_part", "_h", *keys]
    digest = sql.key_digest(recipe)
    row = sql.smallest_row(carried, DUCKDB)
    fields = ", ".join(f"_row.{c} AS {c}" for c in carried)
    return (
        f"SELECT _part, {', '.join(group[1:])}, {fields} FROM ("
        f"SELECT {', '.join(group)}, min({row}) AS _row FROM ("
        f"SELECT *, {sql.part_of('_h', cfg.num_parts, DUCKDB)} AS _part FROM ("
        f"SELECT *, {digest} AS _h FROM src WHERE _reason IS NULL)) "
        f"GROUP BY {', '.join(group)}) ORDER BY _part, {', '.join(order)}"
    )


def compute(recipe: Recipe, files: list[str], out_dir: str) -> tuple[dict, dict[int, int]]:
    """Per-reason counts of every raw row, and ``{part: rows}`` written under ``out_dir``."""
    needed = sql.needed_columns(recipe)
    with tempfile.TemporaryDirectory(prefix="laionflow-duckdb-") as spill:
        con = connect(spill)
        try:
            union = " UNION ALL ".join(
                _source(con, i, p, recipe, needed) for i, p in enumerate(files)
            )
            con.execute(
                f"CREATE TEMP VIEW src AS SELECT *, {sql.reason(recipe, DUCKDB)} AS _reason "
                f"FROM ({union})"
            )
            counts = con.execute("SELECT _reason, count(*) FROM src GROUP BY _reason").fetchall()
            by_reason = {reason: int(n) for reason, n in counts}
            reader = con.sql(kept_query(recipe)).to_arrow_reader(BATCH_ROWS)
            parts = write_parts(reader, out_dir)
        finally:
            con.close()
    return by_reason, parts
