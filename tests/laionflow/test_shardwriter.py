"""Tar shards written whole or not at all, rolled over at the shard size, readable by
webdataset."""

from __future__ import annotations

import webdataset as wds

from laionflow.shardwriter import Resharder, TarShardWriter


def test_a_shard_appears_only_when_closed(tmp_path):
    writer = TarShardWriter(4, str(tmp_path))
    writer.write({"__key__": "a", "txt": b"x"})
    assert not (tmp_path / "00004.tar").exists()
    assert [p.name.startswith(".00004.tar.tmp") for p in tmp_path.iterdir()] == [True]
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["00004.tar"]


def test_resharder_rolls_over_and_keeps_every_sample(tmp_path):
    out = Resharder(str(tmp_path / "shards"), per_shard=3)
    for i in range(7):
        out.write({"__key__": f"{i:03d}", "txt": str(i).encode(), "json": b"{}"})
    assert out.close() == 3
    tars = sorted((tmp_path / "shards").iterdir())
    assert [t.name for t in tars] == ["00000.tar", "00001.tar", "00002.tar"]
    got = [
        (s["__key__"], s["txt"])
        for t in tars
        for s in wds.WebDataset(f"file:{t}", shardshuffle=False, empty_check=False)
    ]
    assert got == [(f"{i:03d}", str(i).encode()) for i in range(7)]
    assert Resharder(str(tmp_path / "none"), per_shard=3).close() == 0
