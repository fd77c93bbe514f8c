"""The DuckDB filter engine (``filter.engine: duckdb``): the Spark engine's plan and SQL, in one
process with no JVM, under a memory limit with spilling, writing through the shared writer.

With the shuffle (the recipes' default), one unsorted scan of the raw files streams every
row into :mod:`laionflow.filtering.runs` (the map side: reasons counted, passing rows split by
part into run files), then each part is sorted and written on its own (the reduce side, the
same code the Spark engine runs). Without it, one scan counts rows per reason and one streams
the passing rows in input order into :func:`laionflow.filtering.writer.write_parts`.
"""

from __future__ import annotations

import codecs
import gzip
import os
import tempfile

from laionflow import fs
from laionflow.filtering import runs, sql
from laionflow.filtering.sql import DUCKDB
from laionflow.filtering.writer import BATCH_ROWS, write_parts
from laionflow.recipes import Recipe
from laionflow.schema import CANONICAL_TYPES

#: DuckDB's limit; with the writer's buffers and the result batches the process stays < 2 GB
MEMORY_LIMIT = os.environ.get("LAIONFLOW_DUCKDB_MEMORY", "1200MB")
#: what the sort may hold before it spills, leaving the rest of the limit to the scans and the
#: Arrow batches (README traps: DuckDB 2.0 and memory)
OPERATOR_MEMORY = os.environ.get("LAIONFLOW_DUCKDB_OPERATOR_MEMORY", "500MB")


def _kind(duck_type: str) -> str:
    t = duck_type.upper()
    if t == "VARCHAR":
        return "text"
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT") or t.startswith("U"):
        return "int"
    if t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL"):
        return "float"
    return "other"


def utf8_csv(path: str, scratch: str) -> str:
    """``path``, or a copy with undecodable bytes replaced by U+FFFD where it has any: Spark's
    csv reader decodes so (then ``invalid_caption``); DuckDB's would stop the job."""
    opener = gzip.open if path.endswith(".gz") else open
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with opener(path, "rb") as fh:
            while chunk := fh.read(16 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        return path
    except UnicodeDecodeError:
        fixed = os.path.join(scratch, f"{len(os.listdir(scratch))}-{os.path.basename(path)}")
        fixed = fixed.removesuffix(".gz")
        with opener(path, "rb") as src, open(fixed, "w", encoding="utf-8") as dst:
            dst.write(src.read().decode("utf-8", errors="replace"))
        return fixed


def _source(
    con, index: int, path: str, recipe: Recipe, needed: set[str], scratch: str
) -> tuple[str, str | None, set[str]]:
    """One raw file: the select list of its canonical columns, the temporary table a csv is
    loaded into (``None`` for parquet, read in place), and the canonical columns the file
    has."""
    csv = path.endswith((".csv", ".csv.gz"))
    quoted = sql.literal(utf8_csv(path, scratch) if csv else path, DUCKDB)
    if csv:
        # numbered in file order while the order holds; the rest of the job runs unordered
        con.execute("SET preserve_insertion_order = true")
        con.execute(
            f"CREATE TEMP TABLE csv{index} AS SELECT *, row_number() OVER () - 1 AS "
            f"file_row_number FROM read_csv({quoted}, header=true, all_varchar=true, "
            "delim=',', quote='\"', escape='\"', auto_detect=true)"
        )
        con.execute("SET preserve_insertion_order = false")
        reader = f"csv{index}"
    elif ".parquet" in path:
        reader = f"read_parquet({quoted}, file_row_number=true)"
    else:
        raise sql.SchemaError(f"{path}: unknown metadata format (expected .parquet or .csv)")
    described = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
    types = {row[0]: row[1] for row in described if row[0] != "file_row_number"}
    by_canonical = sql.source_columns(path, list(types), recipe.columns, needed)
    kinds = {src: _kind(types[src]) for src in by_canonical.values()}
    exprs = ", ".join(sql.normalise(by_canonical, kinds, DUCKDB, csv=csv))
    return exprs, reader if csv else None, set(by_canonical)


def sources(
    con, files: list[tuple[int, str]], recipe: Recipe, needed: set[str], scratch: str
) -> tuple[str, set[str]]:
    """One query over every raw file (canonical columns, ``_src`` its index in ``files``,
    ``_pos`` its row) and the canonical columns any file has.

    Parquet files with the same select list are read by one ``read_parquet`` of them all:
    DuckDB 2.0 streaming a ``UNION ALL`` of eight file scans ran out of memory at 20M rows
    (three scans or one scan of all eight did not), so a union is left only where the files'
    columns differ."""
    groups: dict[tuple[str, str | None], list[tuple[int, str]]] = {}
    present: set[str] = set()
    for i, path in files:
        exprs, table, columns = _source(con, i, path, recipe, needed, scratch)
        present |= columns
        groups.setdefault((exprs, table), []).append((i, path))
    selects = []
    for (exprs, table), members in groups.items():
        if table is not None:  # a csv's own table
            ((index, _),) = members
            selects.append(f"SELECT {exprs}, {index} AS _src, file_row_number AS _pos FROM {table}")
            continue
        paths = "[" + ", ".join(sql.literal(p, DUCKDB) for _, p in members) + "]"
        indexes = "[" + ", ".join(str(i) for i, _ in members) + "]"
        src = f"{indexes}[list_position({paths}, filename)]"
        selects.append(
            f"SELECT {exprs}, {src} AS _src, file_row_number AS _pos "
            f"FROM read_parquet({paths}, file_row_number=true, filename=true)"
        )
    return " UNION ALL ".join(selects), present


def connect(spill_dir: str, threads: int | None = None):
    import duckdb

    con = duckdb.connect(
        config={
            "memory_limit": MEMORY_LIMIT,
            "temp_directory": spill_dir,
            "preserve_insertion_order": False,  # ORDER BY decides
            "threads": threads or os.cpu_count() or 1,
        }
    )
    con.execute(f"SET operator_memory_limit = '{OPERATOR_MEMORY}'")
    return con


def map_query(recipe: Recipe, absent: list[str]) -> str:
    """Every row, unsorted, as the shuffle's map side reads it (:mod:`.runs`): the canonical
    columns a file has, ``_reason``, the input position ``_k`` and, for a passing row, the
    order key ``_o``."""
    columns = ", ".join(c for c in CANONICAL_TYPES if c not in absent)
    return (
        f"SELECT {columns}, _reason, {sql.position(DUCKDB)} AS {runs.POSITION}, "
        f"CASE WHEN _reason IS NULL THEN {sql.order_key(recipe)} END AS {runs.ORDER} FROM src"
    )


def in_input_order_query(recipe: Recipe) -> str:
    """``filter.shuffle: false``: passing rows with ``_part``, parts in input order. The first
    row per key is found here, as duplicates are not adjacent: the smallest position per key
    (an aggregate of one integer), then a semi-join."""
    cfg = recipe.filter
    keys = ", ".join(cfg.dedup_keys)
    passed = f"SELECT *, {sql.position(DUCKDB)} AS _k FROM src WHERE _reason IS NULL"
    part = sql.part_of("_h", cfg.num_parts, DUCKDB)
    return (
        f"WITH passed AS ({passed}) "
        f"SELECT *, {part} AS _part FROM ("
        f"SELECT *, {sql.key_digest(recipe)} AS _h FROM passed WHERE _k IN ("
        f"SELECT min(_k) FROM passed GROUP BY {keys})) ORDER BY _part, _k"
    )


def _open_source(con, recipe: Recipe, files: list[tuple[int, str]], scratch: str) -> list[str]:
    """The view ``src`` over ``files`` (canonical columns, ``_src``, ``_pos``, ``_reason``);
    the canonical columns none of them has."""
    union, present = sources(con, files, recipe, sql.needed_columns(recipe), scratch)
    con.execute(
        f"CREATE TEMP VIEW src AS SELECT *, {sql.reason(recipe, DUCKDB)} AS _reason FROM ({union})"
    )
    return sql.absent_columns(present, recipe)


def map_files(
    recipe: Recipe, files: list[tuple[int, str]], run_dir: str, task: int, threads: int = 0
) -> dict[str | None, int]:
    """One map task of the shuffle: ``files`` (``(index, path)``, the index being the file's
    place among all the raw files, so positions are global) scanned once, unsorted, into
    run files under ``run_dir``; rows per reason (``None``: passed). A file on remote
    storage is copied next to the task first (DuckDB here reads local files only)."""
    with tempfile.TemporaryDirectory(prefix="laionflow-duckdb-") as scratch:
        local = []
        for index, path in files:
            if not fs.is_local(path):
                copy = os.path.join(scratch, f"{index}-{os.path.basename(path)}")
                fs.download(path, copy)
                path = copy
            local.append((index, path.removeprefix("file://")))
        con = connect(scratch, threads)
        try:
            absent = _open_source(con, recipe, local, scratch)
            reader = con.sql(map_query(recipe, absent)).to_arrow_reader(runs.MAP_BATCH_ROWS)
            return runs.map_task(reader, run_dir, task, recipe.filter.num_parts)
        finally:
            con.close()


def compute(recipe: Recipe, files: list[str], out_dir: str) -> tuple[dict, dict[int, int]]:
    """Per-reason counts of every raw row, and ``{part: rows}`` written under ``out_dir``.

    With the shuffle: one map task over every file, then a reduce per part on as many
    threads as cores. Without it: a counting scan, then the passing rows in input order
    into the writer."""
    cfg = recipe.filter
    if cfg.shuffle:
        with tempfile.TemporaryDirectory(prefix="laionflow-runs-") as run_dir:
            by_reason = map_files(recipe, list(enumerate(files)), run_dir, 0)
            keys = list(cfg.dedup_keys)
            parts = runs.reduce_all(run_dir, out_dir, cfg.num_parts, keys)[0]
        return by_reason, parts
    with tempfile.TemporaryDirectory(prefix="laionflow-duckdb-") as spill:
        con = connect(spill)
        try:
            _open_source(con, recipe, list(enumerate(files)), spill)
            counts = con.execute("SELECT _reason, count(*) FROM src GROUP BY ALL").fetchall()
            reader = con.sql(in_input_order_query(recipe)).to_arrow_reader(BATCH_ROWS)
            return {r: int(n) for r, n in counts}, write_parts(reader, out_dir)[0]
        finally:
            con.close()
