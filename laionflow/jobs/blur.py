"""Stage ``blur``: face-blurred copies of one part's shards, from the scores' ``face_boxes``.

Recipe switch ``safety.blur_faces`` (off by default). Writes ``blurred/part_NNNNN/NNNNN.tar``
with the same shard names and sample keys as ``images/part_NNNNN/`` (each tar through
:class:`laionflow.shardwriter.TarShardWriter`: complete or absent), then
``blurred/part_NNNNN_stats.csv`` (``tar_path,samples,blurred``: the index of blurred shards,
like the annotations' stats csv) and ``_done.json`` listing every shard and how many of its
samples were blurred, which the report shows. Boxes are in stored-image pixels (the scores
stage reads the stored images).
"""

from __future__ import annotations

import csv
import logging
import time

from laionflow import fs
from laionflow.layout import Layout, part_name, shard_path
from laionflow.recipes import Recipe
from laionflow.shards import shard_ids

log = logging.getLogger(__name__)


def face_boxes(layout: Layout, part: int) -> dict[str, list]:
    """``key -> boxes`` from the part's scores (which must have the ``face_boxes`` column)."""
    import pyarrow.parquet as pq

    path = f"{layout.scores_part(part)}/scores.parquet"
    if not fs.exists(path):
        raise FileNotFoundError(f"blur needs the scores of {part_name(part)}: {path}")
    with fs.open(path) as fh:
        table = pq.read_table(fh)
    if "face_boxes" not in table.column_names:
        raise KeyError(f"{path}: no face_boxes column (add `faces` and `face_boxes` to scores)")
    return dict(
        zip(table.column("key").to_pylist(), table.column("face_boxes").to_pylist(), strict=True)
    )


def finished(layout: Layout, part: int) -> tuple[dict | None, list[int]]:
    """The stage's summary of ``part`` (``None`` before it ran) and the shards it blurred."""
    path = layout.blurred_done(part)
    done = fs.read_json(path) if fs.exists(path) else None
    return done, [int(s["shard"]) for s in done["shards"]] if done else []


def run(recipe: Recipe, part: int, force: bool = False) -> dict:
    if not recipe.safety.blur_faces:
        return {"stage": "blur", "part": part, "skipped": "safety.blur_faces is off"}
    import webdataset as wds

    from laionflow.safety.blur import blur_sample
    from laionflow.shardwriter import TarShardWriter

    layout = Layout(recipe.dataset_root)
    out = layout.blurred_part(part)
    folder = layout.images_part(part)
    current = shard_ids(folder)
    done, blurred = finished(layout, part)
    if done is not None and blurred == current and not force:
        return done  # a repair's patch shards make it redo the part (faces from scores)
    started = time.time()
    boxes = face_boxes(layout, part)
    shards = []
    for sid in current:
        tar = fs.webdataset_urls([shard_path(folder, sid, ".tar")])
        writer = TarShardWriter(sid, out)
        blurred = 0
        for sample in wds.WebDataset(tar, shardshuffle=False, empty_check=False):
            found = boxes.get(sample["__key__"]) or []
            blurred += bool(found)
            writer.write(blur_sample(sample, found, recipe.safety.blur_radius))
        writer.close()
        shards.append({"shard": f"{sid:05d}", "samples": writer.count, "blurred": blurred})
    summary = {
        "stage": "blur",
        "part": part,
        "path": out,
        "shards": shards,
        "samples": sum(s["samples"] for s in shards),
        "blurred": sum(s["blurred"] for s in shards),
        "seconds": round(time.time() - started, 2),
    }
    with fs.atomic_write(f"{out}_stats.csv", "w") as fh:  # the shard index, SD-guide style
        writer = csv.writer(fh)
        writer.writerow(["tar_path", "samples", "blurred"])
        writer.writerows(
            [shard_path(out, int(s["shard"]), ".tar"), s["samples"], s["blurred"]] for s in shards
        )
    summary["stats_csv"] = f"{out}_stats.csv"
    fs.write_json(layout.blurred_done(part), summary)
    log.info(
        "blur %s: %d of %d samples blurred", part_name(part), summary["blurred"], summary["samples"]
    )
    return summary
