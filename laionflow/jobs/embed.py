"""Stage 5: CLIP image and text embeddings of one part, in clip-retrieval's layout.

``embeddings/part_NNNNN/{img_emb/img_emb_B.npy, text_emb/text_emb_B.npy,
metadata/metadata_B.parquet}`` — row i of the three files of batch B is the same sample.
Batch 0 holds the shards present at the first run; a repair's patch shards become batch 1, 2...
so only new samples are embedded. Shards are streamed with webdataset, decoded and
preprocessed in DataLoader workers; rows are sorted by sample key, so a rerun after a crash
produces the same files. Each file is published by an atomic rename; ``_done.json`` (listing
the batches and their shards) is written last: a batch it does not list is not there, and a
rerun removes its leftovers and recomputes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

import numpy as np

from laionflow import clip_model, failpoints, fs, gpu_decode, progress, samples
from laionflow.layout import Layout, part_name, shard_path
from laionflow.recipes import Recipe
from laionflow.shards import shard_ids

log = logging.getLogger(__name__)


class Collate:
    """Batches ``(keys, images, tokens, captions, metas)``: the images stacked (decoded in the
    workers) or left as encoded bytes (decoded on the device), the captions tokenized.

    The DataLoader runs it in its workers, so the tokenizer runs there, a batch per call.
    open_clip's BPE tokenizer is pure Python (~4,700 captions/s on one core here): in the
    main process it alone would cap the stage below the GPU goal of 8,000 samples/s."""

    def __init__(self, tokenizer, stack_images: bool) -> None:
        self.tokenizer, self.stack_images = tokenizer, stack_images

    def __call__(self, batch: list[tuple]) -> tuple:
        import torch

        keys, images, captions, metas = zip(*batch, strict=True)
        images = torch.stack(images) if self.stack_images else list(images)
        return list(keys), images, self.tokenizer(list(captions)), list(captions), list(metas)


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


def _with_buckets(layout: Layout, part: int, table):
    """The part's aspect-ratio buckets (``annotate`` wrote them when the recipe has
    ``buckets``) as columns ``bucket``/``stored_bucket``: the index metadata, built from
    these files, then carries them too."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = layout.part_buckets(part)
    if not fs.exists(path):
        return table
    with fs.open(path) as fh:
        found = pq.read_table(fh, columns=["key", "bucket", "stored_bucket"]).to_pydict()
    keys = table.column("key").to_pylist()
    for col in ("bucket", "stored_bucket"):
        by_key = dict(zip(found["key"], found[col], strict=True))
        table = table.append_column(col, pa.array([by_key.get(k) for k in keys], pa.string()))
    return table


@contextlib.contextmanager
def _cpu_threads_beside(workers: int, device: str):
    """On a CPU, the model's intra-op threads get the cores the DataLoader's decoding workers
    leave (at least one): both at full width oversubscribe the machine. On 2 cores with 2
    workers, 1 model thread instead of 2 gave 1,073 vs 849 samples/s (median of 3,
    ``bench/embed.py``'s tiny model); a GPU run is left alone."""
    import torch

    before = torch.get_num_threads()
    if device == "cpu" and workers > 0:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - workers))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cleanup(out: str, batches: list[dict]) -> None:
    """Remove what a killed run left: temporary files and batch files ``_done.json`` does not
    list (they are recomputed under the same number)."""
    known = {b["batch"] for b in batches}
    for sub in ("img_emb", "text_emb", "metadata"):
        for path in fs.ls(f"{out}/{sub}"):
            name = os.path.basename(path)
            number = name.rsplit("_", 1)[-1].split(".")[0]
            if name.startswith(".") or not number.isdigit() or int(number) not in known:
                fs.rm(path)


def _compute(recipe: Recipe, part: int, tars: list[str], total: int | None = None):
    """Embeddings of every sample of ``tars``, rows sorted by sample key."""
    import torch
    import webdataset as wds

    cfg = recipe.clip
    device = clip_model.pick_device(cfg.device)
    model, preprocess, tokenizer = clip_model.load(cfg, device)
    keys: list[str] = []
    captions: list[str] = []
    metas: list[dict] = []
    img_chunks, txt_chunks = [], []
    use_tensor = cfg.decode == "tensor" or (
        cfg.decode == "auto" and device.startswith("cuda") and gpu_decode.available(device)
    )
    urls = fs.webdataset_urls(tars)
    draft = min(model.visual.image_size)
    read = samples.Bytes() if use_tensor else samples.Decode(preprocess, draft)
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False).map(read)
    workers = min(cfg.num_workers, len(tars))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=gpu_decode.batch_size_for(model, device, cfg.batch_size),
        num_workers=workers,
        collate_fn=Collate(tokenizer, stack_images=not use_tensor),
        pin_memory=device == "cuda" and not use_tensor,
    )
    log.info("embed: %s decode on %s", "batched tensor" if use_tensor else "PIL", device)
    if not tars:  # every download of the part failed: an empty batch, still aligned
        loader = []
    autocast = (
        torch.autocast("cuda", dtype=torch.float16)
        if device == "cuda"
        else contextlib.nullcontext()
    )
    loop_started = time.time()
    prog = progress.Progress(f"embed {part_name(part)}", total, log)
    with torch.inference_mode(), _cpu_threads_beside(workers, device):
        for bkeys, images, btokens, bcaps, bmetas in loader:
            prog.update(len(keys))
            if use_tensor:
                decoded = gpu_decode.decode(images, device)
                images = gpu_decode.preprocess(decoded, model.visual.preprocess_cfg)
            images = images.to(device, non_blocking=True)
            tokens = btokens.to(device, non_blocking=True)
            with autocast:
                img, txt = model.encode_image(images), model.encode_text(tokens)
            img_chunks.append(torch.nn.functional.normalize(img.float(), dim=-1).cpu().numpy())
            txt_chunks.append(torch.nn.functional.normalize(txt.float(), dim=-1).cpu().numpy())
            keys += bkeys
            captions += bcaps
            metas += bmetas
    prog.update(len(keys), force=True)
    dim = model.visual.output_dim if hasattr(model.visual, "output_dim") else 0
    img_emb = np.concatenate(img_chunks) if img_chunks else np.zeros((0, dim), np.float32)
    txt_emb = np.concatenate(txt_chunks) if txt_chunks else np.zeros((0, dim), np.float32)
    order = np.argsort(np.array(keys, dtype=object), kind="stable") if keys else np.array([], int)
    table = _metadata_table(
        part, [keys[i] for i in order], [captions[i] for i in order], [metas[i] for i in order]
    )
    timing = {"device": device, "loop_seconds": time.time() - loop_started}
    return table, img_emb[order].astype(np.float16), txt_emb[order].astype(np.float16), timing


def run(recipe: Recipe, part: int, force: bool = False) -> dict:
    import pyarrow.parquet as pq

    layout = Layout(recipe.dataset_root)
    out = layout.embeddings_part(part)
    done_path = layout.embeddings_done(part)
    if recipe.download.output_format != "webdataset":
        reason = (
            f"embeddings read webdataset shards; output_format is {recipe.download.output_format}"
        )
        log.warning("embed %s skipped: %s", part_name(part), reason)
        return {"stage": "embed", "part": part, "rows": 0, "skipped": reason}
    if force:
        fs.rm(out, recursive=True)
    done = fs.read_json(done_path) if fs.exists(done_path) else {"batches": []}
    _cleanup(out, done["batches"])
    folder = layout.images_part(part)
    embedded = {s for b in done["batches"] for s in b["shards"]}
    pending = [sid for sid in shard_ids(folder) if sid not in embedded]
    if not pending and done["batches"]:
        return done
    started = time.time()
    batch = len(done["batches"])
    expected = sum(fs.read_json(shard_path(folder, s, "_stats.json"))["successes"] for s in pending)
    table, img_emb, txt_emb, timing = _compute(
        recipe, part, [shard_path(folder, sid, ".tar") for sid in pending], expected
    )
    table = _with_buckets(layout, part, table)
    files = layout.embedding_batch(part, batch)
    for key, arr in (("img", img_emb), ("txt", txt_emb)):
        with fs.atomic_write(files[key]) as fh:
            np.save(fh, arr)
    failpoints.hit("embed.before_done")
    with fs.atomic_write(files["meta"]) as fh:
        pq.write_table(table, fh)
    seconds = time.time() - started
    rows = len(table)
    batches = [*done["batches"], {"batch": batch, "shards": pending, "rows": rows}]
    summary = {
        "stage": "embed",
        "part": part,
        "rows": sum(b["rows"] for b in batches),
        "new_rows": rows,
        "batches": batches,
        "dim": int(img_emb.shape[1]),
        "model": recipe.clip.model,
        "pretrained": recipe.clip.pretrained,
        "device": timing["device"],
        "seconds": round(seconds, 2),
        "samples_per_s": round(rows / seconds, 1) if seconds else None,
        # decode + preprocess + model, from the first batch requested to the last computed
        "inference_samples_per_s": round(rows / timing["loop_seconds"], 1)
        if timing["loop_seconds"]
        else None,
    }
    fs.write_json(done_path, summary)  # the batch is visible from here on
    log.info(
        "embed %s: %d new samples (batch %d) on %s, %.1f samples/s",
        part_name(part),
        rows,
        batch,
        timing["device"],
        summary["samples_per_s"] or 0,
    )
    return summary
