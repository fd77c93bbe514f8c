"""Stage ``scores``: per-sample model outputs of one part, dataset2metadata style.

Reads the part's webdataset shards, runs the models of the recipe's scores YAML
(``recipe.scores``; see :mod:`laionflow.scoring.config`) and writes
``scores/part_NNNNN/{scores.parquet, features.npz, _done.json}``: one parquet row per sample,
sorted by key (``key``, the ``additional_fields``, then each ``postprocess_columns`` entry),
and one npz array per ``postprocess_features`` entry in the same row order. Files are
published atomically, ``_done.json`` last. The job imports no Airflow.
"""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np

from laionflow import clip_model, fs, samples
from laionflow.layout import Layout, part_name, shard_path
from laionflow.recipes import Recipe
from laionflow.shards import shard_ids

log = logging.getLogger(__name__)


def _collate(batch):
    import torch

    keys, preps, captions, metas = zip(*batch, strict=True)
    stacked = {}
    for name in preps[0]:
        values = [p[name] for p in preps]
        stacked[name] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return list(keys), stacked, list(captions), list(metas)


def _draft_size(models: dict, image_preps: dict) -> int | None:
    """Decode JPEGs at reduced scale (as the embed stage does) only when every image
    preprocessor is a built-in one that reads no more than the CLIP input size."""
    if "clip" not in models or set(image_preps) - {"clip-aug", "phash-gray"}:
        return None
    return min(models["clip"].model.visual.image_size)


def run(recipe: Recipe, part: int, force: bool = False) -> dict:
    if not recipe.scores:
        return {"stage": "scores", "part": part, "skipped": "no scores config in the recipe"}
    if recipe.download.output_format != "webdataset":
        return {"stage": "scores", "part": part, "skipped": "scores read webdataset shards"}
    import torch

    from laionflow.scoring.config import load_config
    from laionflow.scoring.registry import build, order

    cfg = load_config(recipe.scores)  # fails on a missing weights file, before any work
    reg = build(cfg, recipe.clip)
    layout = Layout(recipe.dataset_root)
    out = layout.scores_part(part)
    folder = layout.images_part(part)
    current = shard_ids(folder)
    if fs.exists(f"{out}/_done.json") and not force:
        done = fs.read_json(f"{out}/_done.json")
        if done.get("shards") == current:
            return done  # a repair's patch shards make it score the part again
    started = time.time()
    device = clip_model.pick_device(recipe.clip.device)
    models = {}
    for name in order(cfg, reg):
        cls = reg.models[name]
        models[name] = cls(device if cls.to_device else "cpu").eval()
        if name == "clip":  # its preprocessors come with the loaded model
            reg.preprocessors["clip-aug"] = models[name].preprocess
            reg.preprocessors["clip-tokens"] = models[name].tokenizer
    needed = {p for m in models.values() for p in m.preprocessors}
    image_preps = {n: reg.preprocessors[n] for n in needed if n not in reg.text}
    tars = fs.webdataset_urls([shard_path(folder, sid, ".tar") for sid in current])
    keys: list[str] = []
    extra: dict[str, list] = {f: [] for f in cfg.additional_fields}
    columns: dict[str, list] = {c: [] for c in cfg.postprocess_columns}
    features: dict[str, list] = {f: [] for f in cfg.postprocess_features}
    if tars:
        import webdataset as wds

        # decoded once per sample, every image preprocessor the models need applied to it
        prepare = samples.Decode(samples.Each(image_preps), _draft_size(models, image_preps))
        data = wds.WebDataset(tars, shardshuffle=False, empty_check=False).map(prepare)
        loader = torch.utils.data.DataLoader(
            data,
            batch_size=cfg.batch_size,
            num_workers=min(cfg.num_workers, len(tars)),
            collate_fn=_collate,
        )
        autocast = (
            torch.autocast("cuda", dtype=torch.float16)
            if device == "cuda"
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            for bkeys, preps, captions, metas in loader:
                outputs: dict = {}
                for name, model in models.items():
                    args = []
                    for raw, prep in zip(model.raw_inputs, model.preprocessors, strict=True):
                        if raw == "text":
                            value = reg.preprocessors[prep](captions)
                        else:
                            value = preps[prep]
                        if isinstance(value, torch.Tensor) and model.to_device:
                            value = value.to(device, non_blocking=True)
                        args.append(value)
                    args += [outputs[d] for d in model.dependencies]
                    outputs[name] = model(*args)
                keys += bkeys
                for f in cfg.additional_fields:
                    extra[f] += [m.get(f) for m in metas]
                for c in cfg.postprocess_columns:
                    columns[c] += list(reg.columns[c](outputs))
                for f in cfg.postprocess_features:
                    features[f].append(np.asarray(reg.features[f](outputs)))
    summary = _publish(out, part, keys, extra, columns, features, cfg, started, device)
    summary["shards"] = current
    fs.write_json(f"{out}/_done.json", summary)  # written last: marks the part done
    log.info("scores %s: %d samples, columns %s", part_name(part), len(keys), list(columns))
    return summary


def _publish(out, part, keys, extra, columns, features, cfg, started, device) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    idx = sorted(range(len(keys)), key=keys.__getitem__)
    data = {"key": [keys[i] for i in idx]}
    for name, values in [*extra.items(), *columns.items()]:
        data[name] = [values[i] for i in idx]
    # fixed types for the safety columns, so an all-empty batch still has the contract's type
    types = {
        "nsfw_classes": pa.list_(pa.string()),
        "face_boxes": pa.list_(pa.list_(pa.float32())),
        "faces": pa.int32(),
        "pdq_quality": pa.int32(),
        "nsfw_image": pa.float32(),
        "text_area": pa.float32(),
        "text": pa.string(),
        "pdq": pa.string(),
    }
    cols = {k: pa.array(v, types.get(k)) for k, v in data.items()}
    with fs.atomic_write(f"{out}/scores.parquet") as fh:
        pq.write_table(pa.table(cols), fh)
    arrays = {
        name: np.concatenate(chunks)[idx] if chunks else np.zeros((0,), np.float16)
        for name, chunks in features.items()
    }
    with fs.atomic_write(f"{out}/features.npz") as fh:
        np.savez(fh, **arrays)
    seconds = time.time() - started
    summary = {
        "stage": "scores",
        "part": part,
        "rows": len(keys),
        "models": cfg.models,
        "columns": list(columns),
        "features": list(features),
        "device": device,
        "seconds": round(seconds, 2),
        "samples_per_s": round(len(keys) / seconds, 1) if seconds else None,
    }
    return summary
