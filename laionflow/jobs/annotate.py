"""Stage 4: per-part annotation files, as the SD 2.1 preparation guides produce them.

* webdataset/tfrecord/parquet output: ``images/part_NNNNN_stats.csv`` — one row per shard,
  ``tar_path,samples`` (the shard file and how many samples it holds);
* files output: ``images/part_NNNNN.csv`` — one row per image, ``image_path,caption``.

Counts come from the shard parquet (one row per input sample, with its status) rather than
from a separate pass over the tars.
"""

from __future__ import annotations

import csv
import logging

from laionflow import failpoints, fs
from laionflow.layout import Layout, part_name, shard_path
from laionflow.recipes import Recipe
from laionflow.shards import shard_ids

log = logging.getLogger(__name__)
SHARD_EXT = {"webdataset": "tar", "tfrecord": "tfrecord", "parquet": "parquet"}


def run(recipe: Recipe, part: int, force: bool = False) -> dict:
    import pyarrow.parquet as pq

    layout = Layout(recipe.dataset_root)
    failpoints.hit("annotate.start", key=layout.images_part(part))
    folder = layout.images_part(part)
    fmt = recipe.download.output_format
    target = layout.part_files_csv(part) if fmt == "files" else layout.part_stats_csv(part)
    # always rewritten (cheap: shard parquet only), so it follows repairs of the part
    rows: list[list] = []
    total = 0
    sized: list[dict] = []  # successes with their sizes, for the aspect-ratio buckets
    for sid in shard_ids(folder):
        with fs.open(shard_path(folder, sid, ".parquet")) as fh:
            table = pq.read_table(fh, columns=_columns(fh, recipe))
        if recipe.buckets is not None:
            sized += [r for r in table.to_pylist() if r["status"] == "success"]
        ok = [
            (k, c)
            for k, c, s in zip(
                *(table.column(n).to_pylist() for n in ("key", "caption", "status")), strict=True
            )
            if s == "success"
        ]
        total += len(ok)
        if fmt == "files":
            ext = recipe.download.encode_format
            rows.extend([shard_path(folder, sid, f"/{key}.{ext}"), cap] for key, cap in ok)
        else:
            rows.append([shard_path(folder, sid, f".{SHARD_EXT[fmt]}"), len(ok)])
    header = ["image_path", "caption"] if fmt == "files" else ["tar_path", "samples"]
    with fs.atomic_write(target, "w") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    log.info("annotate %s: %d samples -> %s", part_name(part), total, target)
    out = {"stage": "annotate", "part": part, "samples": total, "path": target, "rows": len(rows)}
    if recipe.buckets is not None:
        out["buckets"] = _write_buckets(layout, part, sized, recipe)
    return out


def _columns(fh, recipe: Recipe) -> list[str]:
    """The shard-parquet columns annotate reads (sizes only when buckets are on)."""
    import pyarrow.parquet as pq

    wanted = ["key", "caption", "status"]
    if recipe.buckets is not None:
        names = pq.ParquetFile(fh).schema_arrow.names
        fh.seek(0)
        sizes = ("url", "width", "height", "original_width", "original_height")
        wanted += [c for c in sizes if c in names]
    return wanted


def _write_buckets(layout: Layout, part: int, sized: list[dict], recipe: Recipe) -> dict:
    """``images/part_NNNNN_buckets.parquet`` (key, sizes, bucket, stored_bucket); the count
    per bucket, which the report sums."""
    from collections import Counter

    import pandas as pd

    from laionflow.safety.buckets import assign

    assert recipe.buckets is not None
    table = pd.DataFrame(
        assign(sized, recipe.buckets),
        columns=[
            "key",
            "url",
            "width",
            "height",
            "original_width",
            "original_height",
            "bucket",
            "stored_bucket",
        ],
    )
    with fs.atomic_write(layout.part_buckets(part)) as fh:
        table.sort_values("key").to_parquet(fh, index=False)
    return dict(sorted(Counter(b for b in table["bucket"] if b).items()))
