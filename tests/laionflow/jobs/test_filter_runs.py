"""The filter's shuffle through run files (both engines' map and reduce sides): a re-run map
task replaces its own runs, an unfinished one counts for nothing, and the order and the
duplicates are exact even when different keys share the 60-bit order value."""

from __future__ import annotations

import glob
import os

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laionflow.filtering import runs, sql
from laionflow.recipes import load_recipe


def _batch(rows: list[tuple]) -> pa.RecordBatch:
    """``rows`` of (url, caption, hash, reason, position, order): ``hash`` names the row."""
    names = ["url", "caption", "hash", runs.REASON, runs.POSITION, runs.ORDER]
    types = [pa.string()] * 4 + [pa.int64(), pa.int64()]
    return pa.record_batch(
        [pa.array([r[i] for r in rows], t) for i, t in enumerate(types)], names=names
    )


def _written(out_dir) -> list[list[str]]:
    """The ``hash`` column of each written part, in part order."""
    files = sorted(glob.glob(f"{out_dir}/part-*.parquet"))
    return [pq.read_table(f).column("hash").to_pylist() for f in files]


def test_a_rerun_task_replaces_its_runs_and_an_unfinished_one_counts_for_nothing(tmp_path):
    run_dir, out = str(tmp_path / "runs"), str(tmp_path / "out")
    # order values put rows in parts (order >> 28) % 2: 0 -> part 0, 1 << 28 -> part 1
    p0, p1 = 0, 1 << 28
    task0 = [
        ("u1", "a", "k5", None, 5, p0 + 7),
        ("u1", "a", "k2", None, 2, p0 + 7),  # the same keys, earlier: kept
        ("u2", "b", "k1", None, 1, p1 + 3),
        ("bad", "c", "k0", "invalid_url", 0, None),
    ]
    task1 = [("u3", "c", "k9", None, 9, p0 + 1), ("u1", "a", "k8", None, 8, p0 + 7)]
    assert runs.map_task([_batch(task0)], run_dir, 0, 2) == {None: 3, "invalid_url": 1}
    # task 0 again (Spark retrying it): its runs are replaced, not added to
    assert runs.map_task([_batch(task0)], run_dir, 0, 2) == {None: 3, "invalid_url": 1}
    runs.map_task([_batch(task1)], run_dir, 1, 2)
    # an attempt that died before its rename leaves a hidden file: ignored
    with open(f"{run_dir}/00000/.00002-dead.arrow", "wb") as fh:
        fh.write(b"half a file")
    assert sorted(os.listdir(f"{run_dir}/00000")) == [
        ".00002-dead.arrow",
        "00000.arrow",
        "00001.arrow",
    ]
    parts, received = runs.reduce_all(run_dir, out, 2, ["url", "caption"])
    assert received == 5 and parts == {0: 2, 1: 1}
    # part 0 in order-value order (u3's 1 before u1's 7); of u1's three rows the first in input
    assert _written(out) == [["k9", "k2"], ["k1"]]
    # a reduce task run again (its result lost with an executor) writes the same parts
    first = open(f"{out}/part-00000.parquet", "rb").read()
    assert runs.reduce_all(run_dir, out, 2, ["url", "caption"]) == (parts, received)
    assert open(f"{out}/part-00000.parquet", "rb").read() == first


def test_different_keys_sharing_an_order_value_are_still_sorted_and_deduplicated(tmp_path):
    run_dir, out = str(tmp_path / "runs"), str(tmp_path / "out")
    rows = [
        ("B", "x", "B-k1", None, 1, 5),
        ("A", "x", "A-k3", None, 3, 5),
        ("A", "x", "A-k0", None, 0, 5),
        ("B", "x", "B-k2", None, 2, 5),
        ("C", "x", "C-k4", None, 4, 1),
        (None, "x", "null-k7", None, 7, 5),
        (None, "x", "null-k6", None, 6, 5),
    ]
    table = pa.Table.from_batches([_batch(rows)])
    idx, unique = runs.unique_order(table, ["url", "caption"])
    assert not unique  # a tie between different keys: the exact sort, duplicates left in
    assert table.column("hash").take(pa.array(idx)).to_pylist() == [
        "C-k4",
        "A-k0",
        "A-k3",
        "B-k1",
        "B-k2",
        "null-k6",
        "null-k7",
    ]
    runs.map_task([_batch(rows)], run_dir, 0, 1)
    assert runs.reduce_all(run_dir, out, 1, ["url", "caption"]) == ({0: 4}, 7)
    assert _written(out) == [["C-k4", "A-k0", "B-k1", "null-k6"]]
    # ties of equal keys only (the common case): dropped by the sort itself
    same = pa.Table.from_batches([_batch([r for r in rows if r[0] == "A"])])
    idx, unique = runs.unique_order(same, ["url", "caption"])
    assert unique and same.column("hash").take(pa.array(idx)).to_pylist() == ["A-k0"]
    # without dedup keys every row stays, ties in input order
    idx, unique = runs.unique_order(table, [])
    assert unique and table.column("hash").take(pa.array(idx)).to_pylist() == [
        "C-k4",
        "A-k0",
        "B-k1",
        "B-k2",
        "A-k3",
        "null-k6",
        "null-k7",
    ]


def test_of_many_duplicate_groups_each_keeps_its_first_row_in_order_value_order():
    """Groups of one to many rows sharing an order value (and keys), shuffled: one row per
    group, the one earliest in input, groups by order value."""
    rng = np.random.default_rng(7)
    order = rng.integers(0, 300, size=5000) * (1 << 20)
    position = rng.permutation(5000)
    rows = [
        (f"u{o}", "c", f"k{p}", None, int(p), int(o)) for o, p in zip(order, position, strict=True)
    ]
    table = pa.Table.from_batches([_batch(rows)])
    idx, unique = runs.unique_order(table, ["url", "caption"])
    expected = [f"k{position[order == o].min()}" for o in sorted(set(order.tolist()))]
    assert unique and table.column("hash").take(pa.array(idx)).to_pylist() == expected


def _orders(tmp_path, seed: int) -> np.ndarray:
    """:func:`sql.order_key` of 2000 rows (every fifth caption null, rows 1000+ repeating
    rows 0-999) under ``seed``."""
    recipe = load_recipe(
        "laion400m", {"root": str(tmp_path), "filter.num_parts": 7, "filter.seed": seed}
    )
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT 'https://h/' || (i % 1000) AS url, CASE WHEN i % 5 = 0 "
        "THEN NULL ELSE 'caption ' || (i % 1000) END AS caption FROM range(2000) r(i) ORDER BY i"
    )
    return con.execute(f"SELECT {sql.order_key(recipe)} AS o FROM t").fetchnumpy()["o"]


def test_the_order_key_places_duplicates_together_and_the_seed_reshuffles(tmp_path):
    """60 bits, equal for equal keys, spread over every part; another seed gives another
    order and other parts (not the same groups of rows under other part numbers)."""
    first, again, other = _orders(tmp_path, 0), _orders(tmp_path, 0), _orders(tmp_path, 1)
    assert (first == again).all()
    assert (first >= 0).all() and (first < 2**60).all()
    assert (first[:1000] == first[1000:]).all() and len(set(first[:1000].tolist())) == 1000
    parts, reseeded = runs.part_of_order(first, 7), runs.part_of_order(other, 7)
    assert sorted(set(parts.tolist())) == list(range(7))
    assert not (np.argsort(first[:1000]) == np.argsort(other[:1000])).all()
    assert len(set(reseeded[:1000][parts[:1000] == 0].tolist())) == 7


def test_map_tasks_with_another_order_function_stop_the_job():
    """Executors with another DuckDB would place one key's duplicates in different parts:
    the driver refuses their runs before any reduce."""
    from laionflow.jobs.filter import same_order_function

    same_order_function([sql.order_function()] * 3)
    with pytest.raises(RuntimeError, match="same DuckDB version"):
        same_order_function([sql.order_function(), "duckdb-hash-0.0.1"])


def test_a_part_too_large_for_memory_is_sorted_by_duckdb_into_the_same_bytes(tmp_path, monkeypatch):
    """Runs above ``IN_MEMORY_BYTES`` go through DuckDB's spilling sort: the same parts, byte
    for byte, also with a tie between different keys and tasks whose files lack a column."""
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 400, size=3000)
    rows = [
        (f"u{i}", "c", f"row{n}", None, n, int(i) * 0x9E3779B97F4A7C1 % (1 << 60))
        for n, i in enumerate(ids)
    ]
    rows += [("X", "c", "X-late", None, 5001, 7), ("Y", "c", "Y-tie", None, 5000, 7)]
    rows += [("X", "c", "X-first", None, 4999, 7), ("bad", "c", "b", "nsfw", 5002, None)]
    with_width = _batch(rows[:1500]).append_column("width", pa.array(range(1500), pa.int32()))
    written = {}
    for mode, limit in (("memory", runs.IN_MEMORY_BYTES), ("duckdb", 1)):
        monkeypatch.setattr(runs, "IN_MEMORY_BYTES", limit)
        run_dir, out = str(tmp_path / mode / "runs"), str(tmp_path / mode / "out")
        runs.map_task([with_width], run_dir, 0, 3)
        runs.map_task([_batch(rows[1500:])], run_dir, 1, 3)
        parts, received = runs.reduce_all(run_dir, out, 3, ["url", "caption"])
        assert received == len(rows) - 1 and sum(parts.values()) == len(set(ids)) + 2
        written[mode] = {
            os.path.basename(f): open(f, "rb").read() for f in glob.glob(f"{out}/part-*")
        }
    assert len(written["duckdb"]) == 3 and written["duckdb"] == written["memory"]
    kept = pa.concat_tables(
        pq.read_table(tmp_path / "duckdb" / "out" / n) for n in written["duckdb"]
    )
    assert {"X-first", "Y-tie"} <= set(kept.column("hash").to_pylist())
    # the first task's rows carry their width (its position), the second task's have none
    for name, width in zip(
        kept.column("hash").to_pylist(), kept.column("width").to_pylist(), strict=True
    ):
        n = int(name[3:]) if name.startswith("row") else 1500
        assert width == (n if n < 1500 else None)
