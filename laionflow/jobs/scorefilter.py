"""Stage ``score_filter``: keep the samples a score column favours, as DataComp's baselines do.

Reads every part's ``scores/part_NNNNN/scores.parquet`` and keeps the samples whose
``column`` (default ``clip-score``) is at or above ``threshold``, or the ``top_fraction`` with
the highest scores (ties broken by key, so the choice is deterministic). Writes
``scores/kept.parquet`` (``key, part, score``) and, with ``reshard``, the kept samples copied
into new webdataset shards ``scores/shards/NNNNN.tar`` under the key ``PPPPP_KEY`` (sample keys
repeat across parts), written by :class:`laionflow.shardwriter.Resharder` (temporary names,
renamed when complete), local or ``s3://``.
"""

from __future__ import annotations

import logging
import math

from laionflow import fs
from laionflow.layout import Layout, shard_path
from laionflow.recipes import Recipe
from laionflow.shards import shard_ids
from laionflow.shardwriter import Resharder

log = logging.getLogger(__name__)


def _scores(layout: Layout, column: str):
    import pandas as pd

    frames = []
    for part in layout.done_parts(layout.scores):
        path = layout.scores_part(part)
        with fs.open(f"{path}/scores.parquet") as fh:
            df = pd.read_parquet(fh)
        if column not in df.columns:
            raise KeyError(f"{path}: no score column {column!r}; columns: {list(df.columns)}")
        frames.append(df.assign(part=part)[["key", "part", column]])
    if not frames:
        raise FileNotFoundError(f"no finished scores under {layout.scores}")
    return pd.concat(frames, ignore_index=True).rename(columns={column: "score"})


def run(recipe: Recipe, force: bool = False) -> dict:
    if not recipe.scores:
        return {"stage": "score_filter", "skipped": "no scores config in the recipe"}
    cfg = recipe.score_filter
    layout = Layout(recipe.dataset_root)
    df = _scores(layout, cfg.column)
    if cfg.threshold is not None:
        kept = df[df["score"] >= cfg.threshold]
    else:
        n = math.ceil(cfg.top_fraction * len(df))
        kept = df.sort_values(["score", "key"], ascending=[False, True]).head(n)
    kept = kept.sort_values(["part", "key"]).reset_index(drop=True)
    with fs.atomic_write(layout.kept_scores) as fh:
        kept.to_parquet(fh, index=False)
    shards = _reshard(layout, kept, cfg.samples_per_shard) if cfg.reshard else 0
    summary = {
        "stage": "score_filter",
        "column": cfg.column,
        "rule": f">= {cfg.threshold}" if cfg.threshold is not None else f"top {cfg.top_fraction}",
        "scored": len(df),
        "kept": len(kept),
        "shards": shards,
    }
    fs.write_json(layout.kept_summary, summary)
    log.info("score_filter: kept %d of %d (%s)", len(kept), len(df), summary["rule"])
    return summary


def _reshard(layout: Layout, kept, per_shard: int) -> int:
    """Copy the kept samples, whole (every file of the sample), into new shards."""
    import webdataset as wds

    fs.rm(layout.score_shards, recursive=True)
    fs.makedirs(layout.score_shards)
    out = Resharder(layout.score_shards, per_shard)
    for part, keys in sorted((int(p), set(g["key"])) for p, g in kept.groupby("part")):
        folder = layout.images_part(part)
        tars = fs.webdataset_urls([shard_path(folder, sid, ".tar") for sid in shard_ids(folder)])
        for sample in wds.WebDataset(tars, shardshuffle=False, empty_check=False):
            if sample["__key__"] in keys:
                data = {k: v for k, v in sample.items() if not k.startswith("__")}
                # keys repeat across parts (each part's shards start at 0): qualify them
                out.write({"__key__": f"{part:05d}_{sample['__key__']}", **data})
    return out.close()
