"""Stage 5: CLIP image and text embeddings of one part, in clip-retrieval's layout.

``embeddings/part_NNNNN/{img_emb/img_emb_0.npy, text_emb/text_emb_0.npy,
metadata/metadata_0.parquet}`` — row i of each file is the same sample. Shards are streamed
with webdataset; images are decoded and preprocessed in DataLoader workers; rows are sorted by
sample key before writing, so a rerun (after a crash, with other worker timing) produces the
same files. The three files are published by atomic renames, then ``_done.json``; a part
without ``_done.json`` is recomputed from scratch.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time

import numpy as np

from laionflow import clip_model, fs
from laionflow.jobs.shards import shard_ids
from laionflow.layout import Layout, part_name
from laionflow.recipes import Recipe

log = logging.getLogger(__name__)
IMAGE_EXT = ("jpg", "jpeg", "png", "webp")


class _Decode:
    """Picklable sample decoder for DataLoader workers: (key, pixel tensor, caption, meta)."""

    def __init__(self, preprocess):
        self.preprocess = preprocess

    def __call__(self, sample: dict):
        from PIL import Image

        ext = next(e for e in IMAGE_EXT if e in sample)
        image = Image.open(io.BytesIO(sample[ext])).convert("RGB")
        caption = sample.get("txt", b"").decode("utf-8")
        meta = json.loads(sample["json"]) if "json" in sample else {}
        return sample["__key__"], self.preprocess(image), caption, meta


def _collate(batch):
    import torch

    keys, images, captions, metas = zip(*batch, strict=True)
    return list(keys), torch.stack(images), list(captions), list(metas)


def _metadata_table(part: int, keys, captions, metas):
    import pyarrow as pa

    skip = {"key", "caption", "status", "error_message", "exif"}
    columns = sorted(
        {
            k
            for m in metas
            for k, v in m.items()
            if k not in skip and (v is None or isinstance(v, (str, int, float, bool)))
        }
    )
    data = {"key": keys, "caption": captions, "part": [part] * len(keys)}
    for col in columns:
        data[col] = [m.get(col) for m in metas]
    return pa.table(data)


def run(recipe: Recipe, part: int, force: bool = False) -> dict:
    import pyarrow.parquet as pq
    import torch
    import webdataset as wds

    layout = Layout(recipe.dataset_root)
    out = layout.embeddings_part(part)
    done = f"{out}/_done.json"
    if fs.exists(done) and not force:
        return fs.read_json(done)
    if recipe.download.output_format != "webdataset":
        reason = (
            f"embeddings read webdataset shards; output_format is {recipe.download.output_format}"
        )
        log.warning("embed %s skipped: %s", part_name(part), reason)
        return {"stage": "embed", "part": part, "rows": 0, "skipped": reason}
    folder = layout.images_part(part)
    tars = [f"{folder}/{sid:05d}.tar" for sid in shard_ids(folder)]
    cfg = recipe.clip
    device = clip_model.pick_device(cfg.device)
    model, preprocess, tokenizer = clip_model.load(cfg, device)
    started = time.time()
    keys: list[str] = []
    captions: list[str] = []
    metas: list[dict] = []
    img_chunks, txt_chunks = [], []
    if tars:
        urls = [t if "://" in t else f"file:{t}" for t in tars]
        dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False).map(
            _Decode(preprocess)
        )
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            num_workers=min(cfg.num_workers, len(tars)),
            collate_fn=_collate,
            pin_memory=device == "cuda",
        )
        autocast = (
            torch.autocast("cuda", dtype=torch.float16)
            if device == "cuda"
            else contextlib.nullcontext()
        )
        with torch.inference_mode():
            for bkeys, images, bcaps, bmetas in loader:
                images = images.to(device, non_blocking=True)
                tokens = tokenizer(bcaps).to(device, non_blocking=True)
                with autocast:
                    img, txt = model.encode_image(images), model.encode_text(tokens)
                img_chunks.append(torch.nn.functional.normalize(img.float(), dim=-1).cpu().numpy())
                txt_chunks.append(torch.nn.functional.normalize(txt.float(), dim=-1).cpu().numpy())
                keys += bkeys
                captions += bcaps
                metas += bmetas
    dim = model.visual.output_dim if hasattr(model.visual, "output_dim") else 0
    img_emb = np.concatenate(img_chunks) if img_chunks else np.zeros((0, dim), np.float32)
    txt_emb = np.concatenate(txt_chunks) if txt_chunks else np.zeros((0, dim), np.float32)
    order = np.argsort(np.array(keys, dtype=object), kind="stable") if keys else np.array([], int)
    keys = [keys[i] for i in order]
    captions = [captions[i] for i in order]
    metas = [metas[i] for i in order]
    img_emb, txt_emb = img_emb[order].astype(np.float16), txt_emb[order].astype(np.float16)
    for sub, arr in (("img_emb/img_emb_0.npy", img_emb), ("text_emb/text_emb_0.npy", txt_emb)):
        with fs.atomic_write(f"{out}/{sub}") as fh:
            np.save(fh, arr)
    with fs.atomic_write(f"{out}/metadata/metadata_0.parquet") as fh:
        pq.write_table(_metadata_table(part, keys, captions, metas), fh)
    seconds = time.time() - started
    summary = {
        "stage": "embed",
        "part": part,
        "rows": len(keys),
        "dim": int(img_emb.shape[1]),
        "model": cfg.model,
        "pretrained": cfg.pretrained,
        "device": device,
        "seconds": round(seconds, 2),
        "samples_per_s": round(len(keys) / seconds, 1) if seconds else None,
    }
    fs.write_json(done, summary)
    log.info(
        "embed %s: %d samples on %s, %.1f samples/s",
        part_name(part),
        len(keys),
        device,
        summary["samples_per_s"] or 0,
    )
    return summary
