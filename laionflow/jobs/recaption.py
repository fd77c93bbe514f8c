"""Stage ``recaption``: a new caption for every downloaded image of a part, from a
vision-language model (:mod:`laionflow.captioning.model`), scored against the image with the
recipe's CLIP model next to the alt text it may replace — Recap-DataComp's recipe, and how
OpenUni's laion6m was made.

``captions/part_NNNNN/captions.parquet``: one row per downloaded sample, sorted by key —
``key, shard, caption`` (the model's), ``model, prompt, clip_score, original_caption,
clip_score_original, kept`` (the gate's verdict) and ``selected_caption`` (the new caption when
kept, else the alt text: what a trainer reads). Work is published in chunks of
``recaption.chunk_size`` samples of a shard (``chunks/SSSSS_CCCCC.parquet``, atomic): a killed
part resumes from its finished chunks. Then the table is merged and checked against the
shards' downloads, every shard gets a ``KEY.recap.txt`` member (the selected caption; rewritten
atomically by the shard writer) and ``_done.json`` is written last, listing the shards. A
repair's new shards are captioned on the next run; nothing done is redone.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from laionflow import clip_model, failpoints, fs, samples
from laionflow.layout import Layout, part_name, shard_path
from laionflow.recipes import Recipe
from laionflow.shards import shard_ids
from laionflow.shardwriter import add_members

log = logging.getLogger(__name__)
STAGE = "recaption"


def schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("key", pa.string()),
            ("shard", pa.int32()),
            ("caption", pa.string()),
            ("model", pa.string()),
            ("prompt", pa.string()),
            ("clip_score", pa.float32()),
            ("original_caption", pa.string()),
            ("clip_score_original", pa.float32()),
            ("kept", pa.bool_()),
            ("selected_caption", pa.string()),
        ]
    )


def gate(cfg, new: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Whether each new caption is kept (``recaption.gate``)."""
    if cfg.gate == "original":
        return new >= original
    if cfg.gate == "threshold":
        return new >= cfg.min_score
    return np.ones(len(new), dtype=bool)


class _Models:
    """The captioner and the CLIP scorer, loaded on first use: a rerun whose chunks are all
    published loads neither."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.device = clip_model.pick_device(recipe.recaption.device)
        self._cap = self._clip = None

    def captioner(self):
        from laionflow.captioning import model

        if self._cap is None:
            self._cap = model.load(self.recipe.recaption, self.device)
        return self._cap

    def scorer(self):
        from laionflow.captioning.clipscore import ClipScorer

        if self._clip is None:
            self._clip = ClipScorer(
                self.recipe.clip, clip_model.pick_device(self.recipe.clip.device)
            )
        return self._clip


def _chunk_table(models: _Models, shard: int, chunk: list[dict]):
    import pyarrow as pa

    from laionflow.captioning.model import caption

    cfg = models.recipe.recaption
    images = [samples.open_image(samples.image_bytes(s)) for s in chunk]
    originals = [samples.caption(s) for s in chunk]
    new: list[str] = []
    for i in range(0, len(images), cfg.batch_size):
        new += caption(models.captioner(), images[i : i + cfg.batch_size])
    step = models.recipe.clip.batch_size
    scored = [
        models.scorer().scores(images[i : i + step], new[i : i + step], originals[i : i + step])
        for i in range(0, len(images), step)
    ]
    score_new = np.concatenate([s[0] for s in scored]).astype(np.float32)
    score_orig = np.concatenate([s[1] for s in scored]).astype(np.float32)
    kept = gate(cfg, score_new, score_orig)
    n = len(chunk)
    data = {
        "key": [s["__key__"] for s in chunk],
        "shard": [shard] * n,
        "caption": new,
        "model": [cfg.model] * n,
        "prompt": [cfg.prompt] * n,
        "clip_score": score_new,
        "original_caption": originals,
        "clip_score_original": score_orig,
        "kept": kept,
        "selected_caption": [c if k else o for c, o, k in zip(new, originals, kept, strict=True)],
    }
    return pa.table(data, schema=schema())


def _caption_shard(models: _Models, layout: Layout, part: int, shard: int) -> int:
    """Caption the chunks of ``shard`` that are not published yet; samples captioned."""
    import pyarrow.parquet as pq
    import webdataset as wds

    size = models.recipe.recaption.chunk_size
    published = {os.path.basename(p) for p in fs.ls(f"{layout.captions_part(part)}/chunks")}
    tar = fs.webdataset_urls([shard_path(layout.images_part(part), shard, ".tar")])
    buf: list[dict] = []
    captioned = 0

    def flush(chunk: int) -> None:
        nonlocal buf, captioned
        table = _chunk_table(models, shard, buf)
        with fs.atomic_write(layout.captions_chunk(part, shard, chunk)) as fh:
            pq.write_table(table, fh)
        captioned += len(buf)
        buf = []
        failpoints.hit("recaption.after_chunk")

    index = -1
    for index, sample in enumerate(wds.WebDataset(tar, shardshuffle=False, empty_check=False)):
        if os.path.basename(layout.captions_chunk(part, shard, index // size)) in published:
            continue
        buf.append(sample)
        if (index + 1) % size == 0:
            flush(index // size)
    if buf:
        flush(index // size)
    return captioned


def _downloaded_keys(folder: str, shards: list[int]) -> list[str]:
    import pyarrow.parquet as pq

    keys = []
    for sid in shards:
        with fs.open(shard_path(folder, sid, ".parquet")) as fh:
            t = pq.read_table(fh, columns=["key", "status"]).to_pydict()
        keys += [k for k, s in zip(t["key"], t["status"], strict=True) if s == "success"]
    return keys


def merged(layout: Layout, part: int, shards: list[int]):
    """Every published chunk of ``shards``, sorted by key, checked against the downloads:
    exactly one row per downloaded sample."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [schema().empty_table()]
    wanted = {f"{s:05d}" for s in shards}
    for path in sorted(fs.ls(f"{layout.captions_part(part)}/chunks")):
        name = os.path.basename(path)
        if not name.startswith(".") and name[:5] in wanted:
            with fs.open(path) as fh:
                tables.append(pq.read_table(fh).cast(schema()))
    table = pa.concat_tables(tables).sort_by("key")
    keys = table.column("key").to_pylist()
    expected = sorted(_downloaded_keys(layout.images_part(part), shards))
    if keys != expected:
        missing, extra = set(expected) - set(keys), len(keys) - len(set(keys))
        raise RuntimeError(
            f"recaption {part_name(part)}: captions do not match the downloads "
            f"({len(keys)} rows for {len(expected)} samples, {len(missing)} missing, "
            f"{extra} duplicated)"
        )
    return table


def _cleanup(layout: Layout, part: int) -> None:
    """What a kill left: temporary chunk files and half-rewritten shard copies."""
    for path in fs.ls(f"{layout.captions_part(part)}/chunks"):
        if os.path.basename(path).startswith("."):
            fs.rm(path)
    for path in fs.ls(layout.images_part(part)):
        name = os.path.basename(path)
        if name.startswith(".") and ".tar.tmp-" in name:
            fs.rm(path)


def run(recipe: Recipe, part: int, force: bool = False) -> dict:
    import pyarrow.parquet as pq

    cfg, layout = recipe.recaption, Layout(recipe.dataset_root)
    base = {"stage": STAGE, "part": part, "rows": 0}
    if not cfg.enabled:
        return {**base, "skipped": "recaption.enabled is false"}
    if recipe.download.output_format != "webdataset":
        return {**base, "skipped": "recaption reads webdataset shards"}
    if force:
        fs.rm(layout.captions_part(part), recursive=True)
    done_path = layout.captions_done(part)
    done = fs.read_json(done_path) if fs.exists(done_path) else {"shards": []}
    shards = shard_ids(layout.images_part(part))
    if fs.exists(done_path) and set(done["shards"]) == set(shards):
        return done
    _cleanup(layout, part)
    started, models = time.time(), _Models(recipe)
    new_rows = sum(_caption_shard(models, layout, part, sid) for sid in shards)
    seconds = time.time() - started
    table = merged(layout, part, shards)
    with fs.atomic_write(layout.captions_table(part)) as fh:
        pq.write_table(table, fh)
    pairs = zip(*(table.column(c).to_pylist() for c in ("key", "selected_caption")), strict=True)
    extra = {k: {samples.RECAP_EXT: v.encode()} for k, v in pairs}
    for sid in (s for s in shards if s not in done["shards"]):
        add_members(layout.images_part(part), sid, extra)
    failpoints.hit("recaption.before_done")
    kept = int(sum(table.column("kept").to_pylist()))
    summary = {
        **base,
        "rows": len(table),
        "new_rows": new_rows,
        "kept": kept,
        "rejected": len(table) - kept,
        "gate": cfg.gate,
        "shards": shards,
        "model": cfg.model,
        "prompt": cfg.prompt,
        "device": models.device,
        "seconds": round(seconds, 2),
        "samples_per_s": round(new_rows / seconds, 2) if new_rows and seconds else None,
    }
    fs.write_json(done_path, summary)
    log.info(
        "recaption %s: %d captions (%d new), %d kept by the gate",
        part_name(part),
        len(table),
        new_rows,
        kept,
    )
    return summary
