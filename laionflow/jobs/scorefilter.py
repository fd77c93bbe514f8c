"""Stage ``score_filter``: keep the samples a score column favours, as DataComp's baselines do.

Reads every part's ``scores/part_NNNNN/scores.parquet`` and keeps the samples whose
``column`` (default ``clip-score``) is at or above ``threshold``, or the ``top_fraction`` with
the highest scores (ties broken by key, so the choice is deterministic), after the
``rules`` (``nsfw_image <= 0.5``, ``faces == 0``, ``text_area <= 0.2``: any column, all must
hold; a dropped sample is counted under the first rule it fails, in ``filtered``). Writes
``scores/kept.parquet`` (``key, part, score``) and, with ``reshard``, the kept samples copied
into new webdataset shards ``scores/shards/NNNNN.tar`` under the key ``PPPPP_KEY`` (sample keys
repeat across parts), written by :class:`laionflow.shardwriter.Resharder` (temporary names,
renamed when complete), local or ``s3://``.
"""

from __future__ import annotations

import logging
import math
import operator

from laionflow import fs
from laionflow.layout import Layout, shard_path
from laionflow.recipes import Recipe
from laionflow.shards import shard_ids
from laionflow.shardwriter import Resharder

log = logging.getLogger(__name__)


_OPS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


def _scores(layout: Layout, columns: list[str]):
    import pandas as pd

    frames = []
    for part in layout.done_parts(layout.scores):
        path = layout.scores_part(part)
        with fs.open(f"{path}/scores.parquet") as fh:
            df = pd.read_parquet(fh)
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise KeyError(f"{path}: no score column {missing}; columns: {list(df.columns)}")
        frames.append(df.assign(part=part)[["key", "part", *columns]])
    if not frames:
        raise FileNotFoundError(f"no finished scores under {layout.scores}")
    return pd.concat(frames, ignore_index=True)


def apply_rules(df, rules) -> tuple:
    """``(kept rows, {rule: rows it dropped})``: each dropped row counted under the first
    rule it fails, in order (a missing value fails every rule but ``!=``)."""
    counts = {}
    for rule in rules:
        col = df[rule.column]
        ok = _OPS[rule.op](col, rule.value) & (col.notna() | (rule.op == "!="))
        counts[rule.name] = int((~ok).sum())
        df = df[ok]
    return df, counts


def run(recipe: Recipe, force: bool = False) -> dict:
    if not recipe.scores or recipe.download.output_format != "webdataset":
        return {"stage": "score_filter", "skipped": "no scores (config, or webdataset shards)"}
    cfg = recipe.score_filter
    layout = Layout(recipe.dataset_root)
    ranked = cfg.threshold is not None or cfg.top_fraction is not None
    columns = list(dict.fromkeys([r.column for r in cfg.rules] + ([cfg.column] if ranked else [])))
    df = _scores(layout, columns)
    kept, by_rule = apply_rules(df, cfg.rules)
    if ranked:
        kept = kept.rename(columns={cfg.column: "score"})
    if cfg.threshold is not None:
        kept = kept[kept["score"] >= cfg.threshold]
    elif cfg.top_fraction is not None:
        n = math.ceil(cfg.top_fraction * len(df))
        kept = kept.sort_values(["score", "key"], ascending=[False, True]).head(n)
    if ranked:
        by_rule[f"{cfg.column}_rank"] = len(df) - sum(by_rule.values()) - len(kept)
    kept = kept[["key", "part", "score"] if ranked else ["key", "part"]]
    kept = kept.sort_values(["part", "key"]).reset_index(drop=True)
    with fs.atomic_write(layout.kept_scores) as fh:
        kept.to_parquet(fh, index=False)
    shards = _reshard(layout, kept, cfg.samples_per_shard) if cfg.reshard else 0
    summary = {
        "stage": "score_filter",
        "column": cfg.column,
        "rule": _describe(cfg),
        "rules": [r.model_dump() for r in cfg.rules],
        "scored": len(df),
        "kept": len(kept),
        "filtered": by_rule,
        "shards": shards,
    }
    fs.write_json(layout.kept_summary, summary)
    log.info("score_filter: kept %d of %d (%s)", len(kept), len(df), summary["rule"])
    return summary


def _describe(cfg) -> str:
    parts = [f"{r.column} {r.op} {r.value}" for r in cfg.rules]
    if cfg.threshold is not None:
        parts.append(f"{cfg.column} >= {cfg.threshold}")
    elif cfg.top_fraction is not None:
        parts.append(f"{cfg.column} top {cfg.top_fraction}")
    return " and ".join(parts)


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
