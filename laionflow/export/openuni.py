"""Stage ``openuni_export``: the dataset as OpenUni's laion6m ships it once extracted, so its
``CaptionDataset`` reads laionflow's output as is (``cap_folder``, ``data_path``,
``image_folder``; OpenUni ``src/datasets/text2image/caption_datasets.py``)::

    export/openuni/raw/part_NNNNN/KEY.jpg          image_folder
    export/openuni/captions/part_NNNNN/KEY.json    cap_folder: {"caption": ..., ...}
    export/openuni/data.json                       data_path: [{"image", "annotation"}, ...]

``image``/``annotation`` are relative to ``image_folder``/``cap_folder``; ``caption`` (OpenUni's
default ``cap_source``) is the recaption stage's selected caption, and the json also carries
``recaption`` (the model's), ``original_caption``, both CLIP scores and ``kept`` — pick one with
``cap_source``. Parts are exported one by one (``parts/part_NNNNN.json`` written last marks a
part done, listing its shards and where its images came from); ``data.json`` is rebuilt from
them and published atomically.

With ``safety.blur_faces`` the images are the blur stage's copies (``blurred/part_NNNNN/``,
which runs before the export): an export of the downloaded shards would ship the faces the
dataset blurs. A part without a finished blur of its current shards stops the export.
"""

from __future__ import annotations

import json
import logging

from laionflow import fs, samples
from laionflow.jobs import blur
from laionflow.layout import Layout, part_name, shard_path

log = logging.getLogger(__name__)
STAGE = "openuni_export"


def _annotation(row: dict, part: int) -> dict:
    return {
        "caption": row["selected_caption"],
        "recaption": row["caption"],
        "original_caption": row["original_caption"],
        "clip_score": row["clip_score"],
        "clip_score_original": row["clip_score_original"],
        "kept": row["kept"],
        "model": row["model"],
        "key": row["key"],
        "part": part,
    }


def image_source(recipe, layout: Layout, part: int, shards: list[int]) -> str:
    """The folder of the part's shards the export reads: the face-blurred copies when the
    recipe blurs faces (they must cover ``shards``, the captioned ones), else the download's."""
    if not recipe.safety.blur_faces:
        return layout.images_part(part)
    folder = layout.blurred_part(part)
    blurred = blur.finished(layout, part)[1]
    if sorted(blurred) != sorted(shards):
        raise RuntimeError(
            f"openuni export: safety.blur_faces is on and {part_name(part)}'s captions cover "
            f"shards {sorted(shards)}, but its blurred copies ({folder}) cover "
            f"{sorted(blurred)}: run the blur stage for this part first"
        )
    return folder


def export_part(layout: Layout, part: int, folder: str) -> list[dict]:
    """Images (from the shards in ``folder``) and caption files of one captioned part; its
    ``data.json`` entries."""
    import pyarrow.parquet as pq
    import webdataset as wds

    done = fs.read_json(layout.captions_done(part))
    with fs.open(layout.captions_table(part)) as fh:
        rows = {r["key"]: r for r in pq.read_table(fh).to_pylist()}
    name, entries = part_name(part), []
    for sid in done["shards"]:
        tar = fs.webdataset_urls([shard_path(folder, sid, ".tar")])
        for sample in wds.WebDataset(tar, shardshuffle=False, empty_check=False):
            key = sample["__key__"]
            if key not in rows:
                raise RuntimeError(f"openuni export: {name}/{key} has no caption row")
            ext = next(e for e in samples.IMAGE_EXT if e in sample)
            image, annotation = f"{name}/{key}.{ext}", f"{name}/{key}.json"
            with fs.open(f"{layout.openuni('raw')}/{image}", "wb") as fh:
                fh.write(samples.image_bytes(sample))
            with fs.open(f"{layout.openuni('captions')}/{annotation}", "w") as fh:
                json.dump(_annotation(rows.pop(key), part), fh)
            entries.append({"image": image, "annotation": annotation})
    if rows:
        raise RuntimeError(f"openuni export: {len(rows)} caption rows of {name} have no image")
    return entries


def run(recipe, force: bool = False) -> dict:
    layout = Layout(recipe.dataset_root)
    if not (recipe.recaption.enabled and recipe.recaption.export_openuni):
        return {"stage": STAGE, "samples": 0, "skipped": "recaption or its export is off"}
    if force:
        fs.rm(layout.openuni(), recursive=True)
    entries: list[dict] = []
    parts = layout.done_parts(layout.captions)
    for part in parts:
        marker = f"{layout.openuni('parts')}/{part_name(part)}.json"
        shards = fs.read_json(layout.captions_done(part))["shards"]
        folder = image_source(recipe, layout, part, shards)
        if fs.exists(marker):
            done = fs.read_json(marker)
            if done["shards"] == shards and done.get("source") == folder:
                entries += done["entries"]
                continue
        for sub in ("raw", "captions"):  # a killed export's files of this part
            fs.rm(f"{layout.openuni(sub)}/{part_name(part)}", recursive=True)
            fs.makedirs(f"{layout.openuni(sub)}/{part_name(part)}")
        part_entries = export_part(layout, part, folder)
        fs.write_json(marker, {"shards": shards, "source": folder, "entries": part_entries})
        entries += part_entries
    with fs.atomic_write(layout.openuni("data.json"), "w") as fh:
        json.dump(entries, fh)
    summary = {
        "stage": STAGE,
        "samples": len(entries),
        "parts": [part_name(p) for p in parts],
        "image_folder": layout.openuni("raw"),
        "cap_folder": layout.openuni("captions"),
        "data_path": layout.openuni("data.json"),
        "faces_blurred": recipe.safety.blur_faces,
    }
    fs.write_json(layout.openuni("_summary.json"), summary)
    log.info(
        "openuni export: %d samples of %d parts -> %s", len(entries), len(parts), layout.openuni()
    )
    return summary
