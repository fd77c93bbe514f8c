"""The one writer of filtered parts, whichever engine computed the rows.

It takes Arrow batches sorted by ``(_part, order)`` — how an engine chunks them does not
matter — and writes ``part-NNNNN.parquet`` files with fixed settings and row groups of exactly
:data:`ROW_GROUP` rows (the last one shorter), each row group one contiguous array per column.
So the bytes depend only on the rows and their order: the Spark executors and the DuckDB
engine write identical files, and memory stays at about one row group per open part.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from laionflow import fs
from laionflow.schema import CANONICAL_TYPES

ROW_GROUP = 65_536
_ARROW = {"string": pa.string(), "int": pa.int32(), "double": pa.float64()}
SCHEMA = pa.schema([(name, _ARROW[typ]) for name, typ in CANONICAL_TYPES.items()])
#: pinned so a pyarrow default changing between versions cannot change one engine's bytes
OPTIONS = dict(
    compression="snappy",
    use_dictionary=True,
    write_statistics=True,
    version="2.6",
    data_page_size=1 << 20,
    write_batch_size=1024,
    dictionary_pagesize_limit=1 << 20,
    store_schema=False,
)


def part_name(part: int) -> str:
    return f"part-{part:05d}.parquet"


class PartWriter:
    """Streams sorted batches into one file per ``_part`` under ``out_dir``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.rows: dict[int, int] = {}
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

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        parts = batch.column("_part").to_numpy(zero_copy_only=False)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(parts)) + 1, [len(parts)]])
        data = pa.Table.from_batches([batch]).select(SCHEMA.names).cast(SCHEMA)
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


def write_parts(batches: Iterable[pa.RecordBatch], out_dir: str) -> dict[int, int]:
    """Write every part found in ``batches``; ``{part: rows}``."""
    writer = PartWriter(out_dir)
    for batch in batches:
        writer.write(batch)
    return writer.close()


def spark_writer(out_dir: str):
    """The ``mapInArrow`` function of the Spark engine: each task writes the parts of its
    partition and yields ``(part, rows)`` for the summary."""

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows = write_parts(batches, out_dir)
        yield pa.RecordBatch.from_pydict(
            {"part": list(rows), "rows": list(rows.values())},
            schema=pa.schema([("part", pa.int32()), ("rows", pa.int64())]),
        )

    return write
