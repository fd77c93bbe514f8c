"""The known-bad hash gate around the download of one part.

* :func:`pre_download` — rows of the filtered part whose URL (or URL hash) is listed are
  dropped before img2dataset sees them; the rest go to ``metadata/gated/part-NNNNN.parquet``
  and the count becomes the ledger's ``blocked_hashlist``.
* :func:`quarantine` — after the download, every stored image whose MD5/SHA-256 or PDQ
  (Hamming ≤ ``pdq_distance``) is listed is moved to ``quarantine/part_NNNNN/`` (the image,
  its json and ``reason``), its shard-parquet row gets status ``quarantined`` and the tar is
  rewritten without it through :class:`laionflow.shardwriter.TarShardWriter` (same shard
  name, same keys). The parquet and stats are rewritten first and the tar last, so a crash
  leaves a state a rerun finishes (the tar is scanned again). Annotations, embeddings, the
  index and the kept list only ever read the rewritten shards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from laionflow import fs, samples
from laionflow.layout import Layout, part_name, shard_path
from laionflow.safety.hashlists import Lists
from laionflow.shards import shard_ids

log = logging.getLogger(__name__)
STATUS = "quarantined"
MESSAGE = "laionflow: quarantined (known-bad {list} hash)"


def pre_download(layout: Layout, part: int, src: str, lists: Lists) -> tuple[str, int]:
    """``(input of the download, rows blocked)``; the input is ``src`` itself when none is."""
    import pyarrow.parquet as pq

    with fs.open(src) as fh:
        table = pq.read_table(fh)
    blocked = [lists.url_blocked(u) for u in table.column("url").to_pylist()]
    n = sum(blocked)
    if not n:
        return src, 0
    import pyarrow as pa

    kept = table.filter(pa.array([not b for b in blocked]))
    out = layout.gated_part(part)
    with fs.atomic_write(out) as fh:
        pq.write_table(kept, fh)
    log.info("hash gate %s: %d of %d URLs blocked", part_name(part), n, len(blocked))
    return out, n


def _pdq_of(raw: bytes) -> tuple[str, int]:
    import numpy as np

    from laionflow.safety.detectors import pdq_hash

    return pdq_hash(np.asarray(samples.open_image(raw)))


def quarantine(layout: Layout, part: int, lists: Lists, shards: Iterable[int] | None = None) -> int:
    """Quarantine the listed images of a downloaded webdataset part (or of its ``shards``
    only: a repair's new patch shards); how many were."""
    import webdataset as wds

    folder, total = layout.images_part(part), 0
    for sid in shard_ids(folder) if shards is None else sorted(shards):
        tar = shard_path(folder, sid, ".tar")
        matched: dict[str, str] = {}
        kept = []
        for sample in wds.WebDataset(
            fs.webdataset_urls([tar]), shardshuffle=False, empty_check=False
        ):
            raw = samples.image_bytes(sample) if samples.has_image(sample) else None
            pdq = _pdq_of(raw)[0] if raw is not None and len(lists.pdq) else None
            reason = lists.image_match(raw, pdq) if raw is not None else None
            if reason:
                matched[sample["__key__"]] = reason
                _keep_for_review(layout, part, sample, reason)
            else:
                kept.append(sample)
        if matched:
            _mark_rows(folder, sid, matched)
            _rewrite_tar(folder, sid, kept)
            total += len(matched)
    if total:
        log.warning("hash gate %s: %d samples quarantined", part_name(part), total)
    return total


def _keep_for_review(layout: Layout, part: int, sample: dict, reason: str) -> None:
    base = f"{layout.quarantine_part(part)}/{sample['__key__']}"
    fs.makedirs(layout.quarantine_part(part))
    for ext, data in sample.items():
        if not ext.startswith("__"):
            with fs.atomic_write(f"{base}.{ext}") as fh:
                fh.write(data)
    fs.write_json(f"{base}.reason.json", {"key": sample["__key__"], "list": reason})


def _mark_rows(folder: str, sid: int, matched: dict[str, str]) -> None:
    """Parquet rows → ``quarantined``, then the stats (successes less the quarantined)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = shard_path(folder, sid, ".parquet")
    with fs.open(path) as fh:
        table = pq.read_table(fh)
    keys = table.column("key").to_pylist()
    status = table.column("status").to_pylist()
    message = table.column("error_message").to_pylist()
    for i, key in enumerate(keys):
        if key in matched:
            status[i], message[i] = STATUS, MESSAGE.format(list=matched[key])
    table = table.set_column(table.schema.get_field_index("status"), "status", pa.array(status))
    idx = table.schema.get_field_index("error_message")
    table = table.set_column(idx, "error_message", pa.array(message, pa.string()))
    with fs.atomic_write(path) as fh:
        pq.write_table(table, fh)
    stats_path = shard_path(folder, sid, "_stats.json")
    stats = fs.read_json(stats_path)
    stats["successes"] = sum(1 for s in status if s == "success")
    stats[STATUS] = sum(1 for s in status if s == STATUS)
    fs.write_json(stats_path, stats)


def _rewrite_tar(folder: str, sid: int, kept: list[dict]) -> None:
    from laionflow.shardwriter import TarShardWriter

    writer = TarShardWriter(sid, folder)
    for sample in kept:
        writer.write({k: v for k, v in sample.items() if k == "__key__" or not k.startswith("__")})
    writer.close()
