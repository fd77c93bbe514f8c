"""Writing webdataset tar shards, local or ``s3://``, in img2dataset's writer shape:
``TarShardWriter(shard_id, output_folder)``, ``write(sample)``, ``close()``.

A shard is written under a hidden temporary name and renamed into place by ``close()``, so a
reader (or a rerun) never sees half a tar. Every stage that writes tars uses this: the score
filter's reshard now, later reshards (blur, quarantine) the same way.
"""

from __future__ import annotations

from typing import IO

from laionflow import fs


class TarShardWriter:
    """One shard ``{output_folder}/{shard_id:05d}.tar``; samples are webdataset dicts
    (``__key__`` plus one entry per file extension)."""

    def __init__(self, shard_id: int, output_folder: str) -> None:
        import webdataset as wds

        self.shard_id = shard_id
        self.path = f"{output_folder}/{shard_id:05d}.tar"
        self.count = 0
        fs.makedirs(output_folder)
        self._tmp = fs.tmp_name(self.path)
        self._stream: IO = fs.open(self._tmp, "wb")
        self._tar = wds.TarWriter(self._stream)

    def write(self, sample: dict) -> None:
        self._tar.write(sample)
        self.count += 1

    def close(self) -> None:
        self._tar.close()
        self._stream.close()
        fs.rename(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the unpublished temporary file (the shard in place, if any, stays as it was)."""
        self._stream.close()
        fs.rm(self._tmp)


def add_members(folder: str, shard_id: int, extra: dict[str, dict[str, bytes]]) -> int:
    """Rewrite shard ``shard_id`` of ``folder`` with ``extra[key]`` entries added to sample
    ``key`` (e.g. ``{"recap.txt": b"..."}``, replacing a same-named one), every other entry and
    the sample order unchanged; published atomically like any shard, so rerunning it is
    harmless. The number of samples written."""
    import webdataset as wds

    src = f"{folder}/{shard_id:05d}.tar"
    writer = TarShardWriter(shard_id, folder)
    try:
        for sample in wds.WebDataset(
            fs.webdataset_urls([src]), shardshuffle=False, empty_check=False
        ):
            writer.write({**sample, **extra.get(sample["__key__"], {})})
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return writer.count


class Resharder:
    """Samples in, shards of ``per_shard`` samples out (``00000.tar``, ``00001.tar``…)."""

    def __init__(self, output_folder: str, per_shard: int) -> None:
        self.output_folder = output_folder
        self.per_shard = per_shard
        self.shards = 0
        self._writer: TarShardWriter | None = None

    def write(self, sample: dict) -> None:
        if self._writer is not None and self._writer.count == self.per_shard:
            self._writer.close()
            self._writer = None
        if self._writer is None:
            self._writer = TarShardWriter(self.shards, self.output_folder)
            self.shards += 1
        self._writer.write(sample)

    def close(self) -> int:
        """Publish the last shard; the number of shards written."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.shards
