"""The filter's shuffle through files, shared by both engines: map tasks split their rows by
part into run files, then one reduce task per part sorts that part's runs and writes it
through the shared writer.

A part is small (a 16th of the kept rows at 10M raw rows: ~300k), so its sort is a numpy sort
of one integer in memory, where a global ``ORDER BY`` or a Spark exchange + sort moved every
column of every row through a sort that spills. The map side is the engine's scan, streamed;
the reduce side is this module, the same code on both engines.

A map task's batches carry the canonical columns, ``_reason`` (null when the row passed every
rule), :data:`ORDER` (:func:`~laionflow.filtering.sql.order_key`: where the row goes and
where it sorts) and :data:`POSITION` (the input position: which duplicate is kept). Run
files are Arrow IPC streams named ``<runs>/<part>/<task>.arrow``, written under a temporary
name and renamed when the task ends, so a re-run task replaces its own runs and a failed one
leaves none that count.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, Queue

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laionflow import fs
from laionflow.filtering.writer import BATCH_ROWS, ROW_GROUP, equal_or_both_null, write_parts

#: a passing row's 60-bit order value (BIGINT, ``sql.order_key``): its part is the top 32
#: bits modulo the parts
ORDER = "_o"
REASON = "_reason"
#: the input position (file index * 2^40 + row in file): which duplicate is kept
POSITION = "_k"
#: rows per batch the engines stream into the map side: nothing sorts beside the scan, and
#: fewer, larger batches cost the scan and the run writer less (10M-row bench, DuckDB: the
#: map side 6.2 s -> 5.0 s against one row group)
MAP_BATCH_ROWS = 4 * ROW_GROUP


def part_of_order(order: np.ndarray, num_parts: int) -> np.ndarray:
    """The part of each row: the order value's top 32 bits modulo ``num_parts``."""
    return ((order >> 28) % num_parts).astype(np.int32)


class RunWriter:
    """One map task's output: counts rows per reason, appends each passing row to its part's
    run file. ``write(batch)`` per batch, then ``close() -> {reason or None: rows}``."""

    def __init__(self, run_dir: str, task: int, num_parts: int) -> None:
        self.run_dir, self.task, self.num_parts = run_dir, task, num_parts
        self.counts: dict[str | None, int] = {}
        self._open: dict[int, tuple[str, object, pa.ipc.RecordBatchStreamWriter]] = {}

    def write(self, batch: pa.RecordBatch) -> None:
        reasons = batch.column(REASON)
        for item in pc.value_counts(reasons).to_pylist():
            self.counts[item["values"]] = self.counts.get(item["values"], 0) + item["counts"]
        batch = batch.drop_columns([REASON])
        order = batch.column(ORDER)
        if order.null_count == len(order):
            return
        # one take of the passing rows grouped by part; a failed row has no order (null):
        # part ``num_parts``, after every real one, and cut off. The parts are sorted as
        # 16-bit numbers where they fit: numpy's stable sort of those is a radix sort
        # (10M-row bench: 0.45 s -> 0.1 s over the 40 batches against int32's merge sort)
        parts = part_of_order(order.fill_null(-1).to_numpy(), self.num_parts)
        parts[order.is_null().to_numpy(zero_copy_only=False)] = self.num_parts
        if self.num_parts < np.iinfo(np.uint16).max:
            parts = parts.astype(np.uint16)
        by_part = np.argsort(parts, kind="stable")
        rows = np.bincount(parts, minlength=self.num_parts + 1)[: self.num_parts]
        bounds = np.concatenate([[0], np.cumsum(rows)])
        batch = batch.take(pa.array(by_part[: bounds[-1]]))
        for part in np.flatnonzero(rows):
            lo, hi = int(bounds[part]), int(bounds[part + 1])
            self._stream(int(part), batch.schema).write_batch(batch.slice(lo, hi - lo))

    def _stream(self, part: int, schema: pa.Schema) -> pa.ipc.RecordBatchStreamWriter:
        if part not in self._open:
            folder = f"{self.run_dir}/{part:05d}"
            fs.makedirs(folder)
            tmp = f"{folder}/.{self.task:05d}-{uuid.uuid4().hex[:8]}.arrow"
            handle = fs.open(tmp, "wb")
            self._open[part] = (tmp, handle, pa.ipc.new_stream(handle, schema))
        return self._open[part][2]

    def close(self) -> dict[str | None, int]:
        for part, (tmp, handle, stream) in sorted(self._open.items()):
            stream.close()
            handle.close()
            fs.move(tmp, f"{self.run_dir}/{part:05d}/{self.task:05d}.arrow")
        self._open.clear()
        return self.counts


def map_task(
    batches: Iterable[pa.RecordBatch], run_dir: str, task: int, num_parts: int
) -> dict[str | None, int]:
    """Split ``batches`` into run files; rows per reason (``None``: passed)."""
    writer = RunWriter(run_dir, task, num_parts)
    for batch in _prefetched(batches):
        writer.write(batch)
    return writer.close()


def _prefetched(batches: Iterable[pa.RecordBatch], ahead: int = 2) -> Iterator[pa.RecordBatch]:
    """``batches``, pulled by a thread of their own so the engine produces the next ones
    while this thread splits the last (both release the GIL). If the consumer stops early,
    the puller is unblocked and stops too."""
    queue: Queue = Queue(maxsize=ahead)
    stop = threading.Event()

    def pull() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                queue.put(batch)
            queue.put(None)
        except BaseException as err:  # handed over, raised in the consumer
            queue.put(err)

    thread = threading.Thread(target=pull, name="laionflow-map-fetch", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # a puller waiting on a full queue
            try:
                queue.get(timeout=0.1)
            except Empty:
                pass


def unique_order(table: pa.Table, keys: Sequence[str]) -> tuple[np.ndarray, bool]:
    """Indices ordering ``table`` by ``(ORDER, keys, POSITION)``, and whether duplicates are
    already dropped from them.

    A numpy sort of one integer, ``ORDER``. Rows sharing an order value almost always share
    their keys too: duplicates, of which the one with the smallest ``POSITION`` is kept (a
    per-group minimum, no second sort: a lexsort of both integers, or of the tied rows,
    cost more than the rest of the reduce's sorting at the bench's third of duplicates).
    Each dropped row's keys are compared with its kept row's; only if two different keys
    share the 60 bits does the exact multi-column sort run, leaving the duplicates to the
    writer."""
    order, position = table.column(ORDER).to_numpy(), table.column(POSITION).to_numpy()
    if not keys:
        return np.lexsort([position, order]), True
    idx = np.argsort(order)
    sorted_order = order[idx]
    starts = np.flatnonzero(np.concatenate([[True], sorted_order[1:] != sorted_order[:-1]]))
    if len(starts) == len(idx):
        return idx, True
    sizes = np.diff(np.append(starts, len(idx)))
    at = position[idx]
    first = at == np.repeat(np.minimum.reduceat(at, starts), sizes)
    kept = idx[first]
    if _equal_keys(table, keys, np.repeat(kept, sizes)[~first], idx[~first]):
        return kept, True
    sort_keys = [(c, "ascending") for c in (ORDER, *keys, POSITION)]
    return pc.sort_indices(table, sort_keys).to_numpy(), False


def _equal_keys(table: pa.Table, keys: Sequence[str], a: np.ndarray, b: np.ndarray) -> bool:
    """Rows ``a[i]`` and ``b[i]`` have equal keys, for every ``i``."""
    first, second = pa.array(a), pa.array(b)
    for key in keys:
        column = table.column(key)
        if not pc.all(equal_or_both_null(column.take(first), column.take(second))).as_py():
            return False
    return True


def reduce_part(run_dir: str, part: int, out_dir: str, keys: Sequence[str]) -> tuple[int, int]:
    """Part ``part``'s runs, sorted, deduplicated on ``keys`` and written under ``out_dir``;
    ``(rows written, rows received)``, ``(0, 0)`` when no task sent it a row. The runs stay
    until the stage's folder goes, so a re-run of this task (its result lost with an
    executor) finds them again and writes the same part.

    Runs of more than :data:`IN_MEMORY_BYTES` are sorted by DuckDB under its memory limit,
    spilling to disk (one such part at a time per process), so a part larger than memory
    still sorts; the order and the bytes are the same."""
    paths = _run_files(f"{run_dir}/{part:05d}")
    if not paths:
        return 0, 0
    if sum(size for _, size in paths) > IN_MEMORY_BYTES:
        with _OUT_OF_CORE:
            return _reduce_out_of_core([p for p, _ in paths], part, out_dir, keys)
    # tasks whose files lack a column sent none: nulls here. The take gathers straight from
    # the runs' chunks, memory-mapped where they are local: no copy before the sorted one
    tables = [_read_run(path) for path, _ in paths]
    table = pa.concat_tables(tables, promote_options="default")
    idx, unique = unique_order(table, keys)
    kept = table.take(pa.array(idx)).drop_columns([ORDER, POSITION])
    rows = write_parts(
        _with_part(kept.to_batches(BATCH_ROWS), part), out_dir, () if unique else keys
    )
    return rows[0].get(part, 0), table.num_rows


#: run bytes of one part sorted in memory (about 3x that at the peak, per reduce thread)
IN_MEMORY_BYTES = int(os.environ.get("LAIONFLOW_FILTER_REDUCE_IN_MEMORY_MB", "256")) << 20
_OUT_OF_CORE = threading.Lock()


def _read_run(path: str) -> pa.Table:
    """One run file as a table: memory-mapped when local, read whole otherwise."""
    if fs.is_local(path):
        return pa.ipc.open_stream(pa.memory_map(path.removeprefix("file://"))).read_all()
    with fs.open(path, "rb") as handle:
        return pa.ipc.open_stream(handle).read_all()


def _run_files(folder: str) -> list[tuple[str, int]]:
    """The finished run files of one part (hidden ones are a task's unfinished attempt) and
    their sizes."""
    fsys, _ = fs.filesystem(folder)
    found = [p for p in fs.ls(folder) if not os.path.basename(p).startswith(".")]
    return [(p, int(fsys.size(p))) for p in found]


def _with_part(batches: Iterable[pa.RecordBatch], part: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield batch.append_column("_part", pa.array(np.full(batch.num_rows, part, np.int32)))


def _reduce_out_of_core(
    paths: list[str], part: int, out_dir: str, keys: Sequence[str]
) -> tuple[int, int]:
    """:func:`reduce_part` through DuckDB's sort (spilling under its memory limit), the
    duplicates dropped by the writer."""
    import tempfile

    from laionflow.filtering import duck

    schemas = []
    for path in paths:
        with fs.open(path, "rb") as handle:
            schemas.append(pa.ipc.open_stream(handle).schema)
    schema = pa.unify_schemas(schemas)
    received = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal received
        for path in paths:
            with fs.open(path, "rb") as handle:
                for batch in pa.ipc.open_stream(handle):
                    received += batch.num_rows
                    columns = [
                        batch.column(f.name)
                        if f.name in batch.schema.names
                        else pa.nulls(batch.num_rows, f.type)
                        for f in schema
                    ]
                    yield pa.record_batch(columns, schema=schema)

    order = ", ".join([ORDER, *keys, POSITION])
    with tempfile.TemporaryDirectory(prefix="laionflow-reduce-") as spill:
        con = duck.connect(spill)
        try:
            con.register("runs", pa.RecordBatchReader.from_batches(schema, batches()))
            query = f"SELECT * EXCLUDE ({ORDER}, {POSITION}) FROM runs ORDER BY {order}"
            reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
            rows = write_parts(_with_part(reader, part), out_dir, keys)[0]
        finally:
            con.close()
    return rows.get(part, 0), received


def reduce_all(
    run_dir: str, out_dir: str, num_parts: int, keys: Sequence[str]
) -> tuple[dict[int, int], int]:
    """Every part, on as many threads as cores (the sort, take and parquet encoding release
    the GIL); ``({part: rows}, rows received)``."""
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        done = list(pool.map(lambda p: reduce_part(run_dir, p, out_dir, keys), range(num_parts)))
    return {p: rows for p, (rows, _) in enumerate(done) if rows}, sum(r for _, r in done)
