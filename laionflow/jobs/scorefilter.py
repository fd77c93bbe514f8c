"""Stage ``score_filter``: keep the samples a score column favours, as DataComp's baselines do.

Reads every part's ``scores/part_NNNNN/scores.parquet`` and keeps the samples whose
``column`` (default ``clip-score``) is at or above ``threshold``, or the ``top_fraction`` with
the highest scores (ties broken by key, so the choice is deterministic). Writes
``scores/kept.parquet`` (``key, part, score``) and, with ``reshard``, the kept samples copied
into new webdataset shards ``scores/shards/NNNNN.tar`` under the key ``PPPPP_KEY`` (sample keys
repeat across parts), written under temporary names and renamed when complete.
"""

from __future__ import annotations

import logging
import math
import os

from laionflow import fs
from laionflow.shards import shard_ids
from laionflow.layout import Layout
from laionflow.recipes import Recipe

log = logging.getLogger(__name__)


def _scores(layout: Layout, column: str):
    import pandas as pd

    frames = []
    for path in sorted(fs.ls(f"{layout.root}/scores")):
        name = os.path.basename(path)
        if name.startswith("part_") and fs.exists(f"{path}/_done.json"):
            with fs.open(f"{path}/scores.parquet") as fh:
                df = pd.read_parquet(fh)
            if column not in df.columns:
                raise KeyError(f"{path}: no score column {column!r}; columns: {list(df.columns)}")
            frames.append(df.assign(part=int(name[5:]))[["key", "part", column]])
    if not frames:
        raise FileNotFoundError(f"no finished scores under {layout.root}/scores")
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
    out = f"{layout.root}/scores"
    with fs.atomic_write(f"{out}/kept.parquet") as fh:
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
    fs.write_json(f"{out}/_kept_summary.json", summary)
    log.info("score_filter: kept %d of %d (%s)", len(kept), len(df), summary["rule"])
    return summary


def _reshard(layout: Layout, kept, per_shard: int) -> int:
    """Copy the kept samples, whole (every file of the sample), into new shards."""
    import webdataset as wds

    target = f"{layout.root}/scores/shards"
    fs.rm(target, recursive=True)
    os.makedirs(target, exist_ok=True)
    wanted = {p: set(g["key"]) for p, g in kept.groupby("part")}
    count, shard, writer = 0, 0, None

    def close() -> None:
        if writer is not None:
            writer.close()
            fs.rename(f"{target}/.{shard:05d}.tar.tmp", f"{target}/{shard:05d}.tar")

    for part, keys in sorted(wanted.items()):
        folder = layout.images_part(int(part))
        for sid in shard_ids(folder):
            src = wds.WebDataset(
                f"file:{folder}/{sid:05d}.tar", shardshuffle=False, empty_check=False
            )
            for sample in src:
                if sample["__key__"] not in keys:
                    continue
                if writer is None or count == per_shard:
                    close()
                    shard += writer is not None
                    writer = wds.TarWriter(f"{target}/.{shard:05d}.tar.tmp")
                    count = 0
                data = {k: v for k, v in sample.items() if not k.startswith("__")}
                # keys repeat across parts (each part's shards start at 0): qualify them
                writer.write({"__key__": f"{int(part):05d}_{sample['__key__']}", **data})
                count += 1
    close()
    return shard + (writer is not None)
