"""What both filter engines do around their query: find the raw files, stage them when the
engine cannot read the root, publish the parts the shared writer made, and write the summary
(the ledger's filter rows) last, so a half-finished run is redone, never trusted."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable

from laionflow import fs
from laionflow.filtering import sql
from laionflow.layout import Layout, part_id
from laionflow.recipes import Recipe
from laionflow.schema import SchemaError

log = logging.getLogger(__name__)
#: ``compute(readable_files, tmp_out_dir) -> (by_reason, {part: rows})``; ``by_reason[None]``
#: is the number of rows that passed every rule
Compute = Callable[[list[str], str], tuple[dict, dict[int, int]]]


def raw_files(recipe: Recipe) -> list[str]:
    files = [
        p
        for p in fs.ls(Layout(recipe.dataset_root).raw_metadata)
        if not os.path.basename(p).startswith((".", "_"))
    ]
    if not files:
        raise FileNotFoundError(f"no metadata under {Layout(recipe.dataset_root).raw_metadata}")
    return sorted(files)


def file_columns(path: str) -> list[str]:
    """The column names of one raw file, from its footer (parquet) or header line (csv),
    without reading its rows; on remote storage too."""
    if path.endswith((".csv", ".csv.gz")):
        import csv
        import gzip
        import io

        with fs.open(path, "rb") as raw:
            handle = gzip.open(raw) if path.endswith(".gz") else raw
            line = io.TextIOWrapper(handle, encoding="utf-8", errors="replace").readline()
        return next(csv.reader([line]), [])
    if ".parquet" not in path:
        raise SchemaError(f"{path}: unknown metadata format (expected .parquet or .csv)")
    import pyarrow.parquet as pq

    with fs.open(path, "rb") as handle:
        return pq.read_schema(handle).names


def check_columns(recipe: Recipe, files: list[str]) -> None:
    """:class:`SchemaError` naming the file and column for the first file that lacks one the
    recipe needs: checked on the driver before any task starts."""
    needed = sql.needed_columns(recipe)
    for path in files:
        sql.source_columns(path, file_columns(path), recipe.columns, needed)


def run_stage(
    recipe: Recipe, force: bool, engine: str, compute: Compute, readable, staged_dir
) -> dict:
    """Run ``compute`` over the raw files (``readable`` maps a path to what the engine reads)
    and publish its parts; ``staged_dir`` is a local stand-in for a root the engine cannot
    reach (inputs copied there, parts written there, then moved)."""
    layout = Layout(recipe.dataset_root)
    started = time.time()
    files = raw_files(recipe)
    if staged_dir is not None:
        local = []
        for src in files:
            dest = os.path.join(staged_dir, "raw", os.path.basename(src))
            fs.download(src, dest)
            local.append(dest)
        inputs = local
    else:
        inputs = [readable(p) for p in files]
    tmp = f"{staged_dir or layout.filtered_metadata}/.tmp-{uuid.uuid4().hex[:8]}"
    by_reason, parts = compute(inputs, tmp)
    by_reason = dict(by_reason)
    passed = by_reason.pop(None, 0)
    for stale in fs.ls(layout.filtered_metadata):  # a forced rerun may make fewer parts
        if part_id(stale) is not None:
            fs.rm(stale)
    from laionflow.filtering.writer import part_name

    for part in sorted(parts):
        fs.move(f"{tmp}/{part_name(part)}", layout.filtered_part(part))
    if fs.exists(tmp):
        fs.rm(tmp, recursive=True)
    kept = sum(parts.values())
    summary = {
        "stage": "filter",
        "engine": engine,
        "raw_rows": passed + sum(by_reason.values()),
        "filtered": dict(sorted(by_reason.items())),
        "duplicates": passed - kept,
        "kept": kept,
        "parts": {str(k): v for k, v in sorted(parts.items())},
        # what placed the rows (sql.order_key): the same input gives the same parts for it
        "order": sql.order_function() if recipe.filter.shuffle else "input",
        "sources": [os.path.basename(p) for p in files],
        "seconds": round(time.time() - started, 2),
    }
    fs.write_json(layout.filter_stats, summary)  # written last: marks the stage done
    log.info(
        "filter (%s): %d raw -> %d kept in %d parts (%d duplicates, filtered %s)",
        engine,
        summary["raw_rows"],
        kept,
        len(parts),
        summary["duplicates"],
        summary["filtered"],
    )
    return summary


def done(recipe: Recipe, force: bool) -> dict | None:
    """The finished stage's summary, unless ``force``."""
    layout = Layout(recipe.dataset_root)
    if fs.exists(layout.filter_stats) and not force:
        log.info("filter: %s exists, skipping (use --force to redo)", layout.filter_stats)
        return fs.read_json(layout.filter_stats)
    return None
