"""The one writer of filtered parts, whichever engine computed the rows.

It takes Arrow batches sorted by ``(_part, order)`` — how an engine chunks them does not
matter — and writes ``part-NNNNN.parquet`` files with fixed settings and row groups of exactly
:data:`ROW_GROUP` rows (the last one shorter), each row group one contiguous array per column.
So the bytes depend only on the rows and their order: the Spark executors and the DuckDB
engine write identical files, and memory stays at about one row group per open part.

With ``dedup`` keys the writer also drops exact duplicates delivered adjacent (sorted by the
digest of the keys, then the keys, then input position): a row whose keys equal the previous
row's is dropped, so the first in input order is kept. The shuffle's reduce
(:mod:`laionflow.filtering.runs`) usually drops them itself while sorting and asks for this
only when two different keys share its order value.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from laionflow import fs
from laionflow.schema import CANONICAL_TYPES

ROW_GROUP = 65_536
#: rows per batch the engines hand over. Larger batches cost the writer a little less (10M-row
#: bench, DuckDB engine: 11.1-11.3 s at 262,144 against 11.9-12.1 s), but DuckDB builds them
#: inside its memory limit, beside the sort: kept at one row group
BATCH_ROWS = ROW_GROUP
_ARROW = {"string": pa.string(), "int": pa.int32(), "double": pa.float64()}
SCHEMA = pa.schema([(name, _ARROW[typ]) for name, typ in CANONICAL_TYPES.items()])
#: pinned so a pyarrow default changing between versions cannot change one engine's bytes.
#: Dictionaries only where values repeat: for URLs, captions and per-row ids pyarrow builds a
#: dictionary, outgrows the page limit and falls back to plain, which cost a third of the
#: writer's time (10M-row bench: 3.9 s -> 2.7 s without them)
OPTIONS = dict(
    compression="snappy",
    use_dictionary=["nsfw", "license", "language"],
    write_statistics=True,
    version="2.6",
    data_page_size=1 << 20,
    write_batch_size=1024,
    dictionary_pagesize_limit=1 << 20,
    store_schema=False,
)


def part_name(part: int) -> str:
    return f"part-{part:05d}.parquet"


def _same_as_previous(column: pa.Array, last: pa.Array) -> pa.Array:
    """Per row: equal to the row before it; ``last`` is the previous batch's final value
    (empty before the first batch, whose first row has no predecessor). Two nulls are equal,
    as in a SQL ``GROUP BY``."""
    first = last.cast(column.type) if len(last) else pa.nulls(1, column.type)
    before = pa.concat_arrays([first, column.slice(0, len(column) - 1)])
    same = equal_or_both_null(column, before)
    if not len(last):
        same = pa.concat_arrays([pa.array([False]), same.slice(1)])
    return same


def equal_or_both_null(a: pa.Array, b: pa.Array) -> pa.Array:
    """Per row: ``a == b``, two nulls counting as equal (as in a SQL ``GROUP BY``)."""
    return pc.or_(pc.fill_null(pc.equal(a, b), False), pc.and_(pc.is_null(a), pc.is_null(b)))


def _canonical(batch: pa.RecordBatch) -> pa.Table:
    """The batch's canonical columns in :data:`SCHEMA`'s order and types; a column the
    engine did not send (one no input file has: always null) is written as nulls."""
    n, names = batch.num_rows, set(batch.schema.names)
    columns = [
        batch.column(f.name).cast(f.type) if f.name in names else pa.nulls(n, f.type)
        for f in SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


class PartWriter:
    """Streams sorted batches into one file per ``_part`` under ``out_dir``; with ``dedup``
    keys, drops each row whose keys equal the previous row's."""

    def __init__(self, out_dir: str, dedup: Sequence[str] = ()) -> None:
        self.out_dir = out_dir
        self.dedup = list(dedup)
        self.rows: dict[int, int] = {}
        self.received = 0  # rows before dedup: the engine's count of passing rows
        self._last: dict[str, pa.Array] = {}
        self._part: int | None = None
        self._file = None
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        # encoding and compression (GIL released) run on one thread, in order, while the
        # caller fetches the next batches from its engine; a few row groups in flight at most
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._inflight: deque[Future] = deque()

    def _submit(self, fn, *args) -> None:
        self._inflight.append(self._pool.submit(fn, *args))
        while len(self._inflight) > 4 or (self._inflight and self._inflight[0].done()):
            self._inflight.popleft().result()

    def _drain(self) -> None:
        while self._inflight:
            self._inflight.popleft().result()

    def _unique(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` without the rows equal (on the dedup keys) to their predecessor."""
        dup = None
        for key in self.dedup:
            column = batch.column(key)
            same = _same_as_previous(column, self._last.get(key, column.slice(0, 0)))
            dup = same if dup is None else pc.and_(dup, same)
            self._last[key] = column.slice(len(column) - 1)
        return batch if dup is None else batch.filter(pc.invert(dup))

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.received += batch.num_rows
        batch = self._unique(batch)
        parts = batch.column("_part").to_numpy(zero_copy_only=False)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(parts)) + 1, [len(parts)]])
        data = _canonical(batch)
        for lo, hi in zip(starts[:-1], starts[1:], strict=True):
            part = int(parts[lo])
            if part != self._part:
                self._finish()
                self._open(part)
            self._pending.append(data.slice(lo, hi - lo))
            self._pending_rows += int(hi - lo)
            self._flush(final=False)

    def close(self) -> dict[int, int]:
        try:
            self._finish()
            self._drain()
        finally:
            self._pool.shutdown(wait=True)
        return self.rows

    def _open(self, part: int) -> None:
        if part in self.rows:
            raise RuntimeError(f"part {part} arrived twice: batches must be sorted by _part")
        self._part = part
        self.rows[part] = 0
        fs.makedirs(self.out_dir)
        self._file = fs.open(f"{self.out_dir}/{part_name(part)}", "wb")
        self._writer = pq.ParquetWriter(self._file, SCHEMA, **OPTIONS)
        self._drain()  # the previous part's file is complete before the next one starts

    def _flush(self, final: bool) -> None:
        while self._pending_rows >= ROW_GROUP or (final and self._pending_rows):
            table = pa.concat_tables(self._pending)
            n = min(ROW_GROUP, table.num_rows)
            group = table.slice(0, n).combine_chunks()
            self._submit(self._writer.write_table, group, ROW_GROUP)
            self.rows[self._part] += n
            rest = table.slice(n)
            self._pending = [rest] if rest.num_rows else []
            self._pending_rows = rest.num_rows

    def _finish(self) -> None:
        if self._writer is None:
            return
        self._flush(final=True)
        self._submit(self._writer.close)
        self._submit(self._file.close)
        self._drain()
        self._writer = self._file = None
        self._part = None


def write_parts(
    batches: Iterable[pa.RecordBatch], out_dir: str, dedup: Sequence[str] = ()
) -> tuple[dict[int, int], int]:
    """Write every part found in ``batches``; ``({part: rows}, rows received)``."""
    writer = PartWriter(out_dir, dedup)
    for batch in batches:
        writer.write(batch)
    return writer.close(), writer.received


#: what each Spark writer task returns: its parts' rows (``filter.shuffle: false``)
SPARK_RESULT = "part int, rows long"
_RESULT_SCHEMA = pa.schema([("part", pa.int32()), ("rows", pa.int64())])


def spark_writer(out_dir: str):
    """The ``mapInArrow`` function of the Spark engine's input-order path: each task writes
    the parts of its partition and yields ``(part, rows)`` for the summary."""

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows = write_parts(batches, out_dir)[0]
        parts = list(rows) or [None]
        yield pa.RecordBatch.from_pydict(
            {"part": parts, "rows": [rows.get(p, 0) for p in parts]}, schema=_RESULT_SCHEMA
        )

    return write
