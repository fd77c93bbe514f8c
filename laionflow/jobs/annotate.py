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
    for sid in shard_ids(folder):
        with fs.open(shard_path(folder, sid, ".parquet")) as fh:
            table = pq.read_table(fh, columns=["key", "caption", "status"])
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
    return {"stage": "annotate", "part": part, "samples": total, "path": target, "rows": len(rows)}
