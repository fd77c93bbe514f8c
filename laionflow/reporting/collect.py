"""Gather what the report shows from the stages' own outputs (never from Airflow): the ledger
of ``summary.json``, the per-part download summaries, the shard parquets (original sizes,
captions), the embedding batches (CLIP image–text similarity) and every stage's timing."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from laionflow import fs
from laionflow.embeddings import embedding_batches, load_array
from laionflow.layout import Layout, part_id, shard_path
from laionflow.shards import shard_ids


def _read_json(path: str) -> dict | None:
    return fs.read_json(path) if fs.exists(path) else None


def part_ids(summary: dict) -> list[int]:
    return sorted(part_id(name) for name in summary.get("parts", {}))


def samples(layout: Layout, parts: list[int]) -> dict[str, np.ndarray]:
    """Original width/height and caption length of every downloaded sample."""
    import pyarrow.parquet as pq

    cols = {"original_width": [], "original_height": [], "caption_chars": []}
    for part in parts:
        folder = layout.images_part(part)
        if not fs.exists(folder):
            continue
        for sid in shard_ids(folder):
            with fs.open(shard_path(folder, sid, ".parquet")) as fh:
                table = pq.read_table(fh)
            names = set(table.column_names)
            df = table.select(
                [
                    c
                    for c in ("status", "original_width", "original_height", "caption")
                    if c in names
                ]
            ).to_pandas()
            ok = df[df["status"] == "success"]
            for col in ("original_width", "original_height"):
                if col in ok:
                    cols[col].append(ok[col].dropna().to_numpy(dtype=float))
            if "caption" in ok:
                cols["caption_chars"].append(ok["caption"].fillna("").str.len().to_numpy(float))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}


def clip_scores(layout: Layout) -> np.ndarray:
    """Cosine similarity of each sample's image and caption embeddings."""
    scores = []
    for batch in embedding_batches(layout):
        img = load_array(batch["img"]).astype(np.float32)
        txt = load_array(batch["txt"]).astype(np.float32)
        norms = np.linalg.norm(img, axis=1) * np.linalg.norm(txt, axis=1)
        scores.append((img * txt).sum(axis=1) / np.maximum(norms, 1e-12))
    return np.concatenate(scores) if scores else np.zeros(0)


def stage_seconds(layout: Layout, parts: list[int]) -> dict[str, float]:
    """Wall seconds per stage, from each stage's summary (per-part stages summed)."""
    out: dict[str, float] = {}
    for stage, path in (
        ("metadata", layout.metadata_stats),
        ("filter", layout.filter_stats),
        ("index", layout.index_summary),
        ("semdedup", layout.dedup_summary),
    ):
        data = _read_json(path)
        if data and data.get("seconds") is not None:
            out[stage] = float(data["seconds"])
    for stage, path_of in (
        ("download", layout.download_summary),
        ("embed", layout.embeddings_done),
    ):
        total = [(_read_json(path_of(p)) or {}).get("seconds") for p in parts]
        if any(t is not None for t in total):
            out[stage] = float(sum(t for t in total if t is not None))
    order = ["metadata", "filter", "download", "embed", "index", "semdedup"]
    return {k: round(out[k], 2) for k in order if k in out}


def collect(dataset_root: str, summary: dict) -> dict[str, Any]:
    layout = Layout(dataset_root)
    parts = part_ids(summary)
    per_part = []
    for part in parts:
        d = _read_json(layout.download_summary(part))
        if d:
            rate = d["successes"] / d["input_rows"] if d["input_rows"] else 0.0
            per_part.append({"part": part, "input_rows": d["input_rows"], "rate": rate, **{
                k: d[k] for k in ("successes", "failed_total", "seconds", "images_per_s")
            }})  # fmt: skip
    dedup = _read_json(layout.dedup_summary)
    led = summary["ledger"]
    embed = _read_json(layout.embeddings_done(parts[0])) if parts else None
    return {
        "parts": per_part,
        "failures": dict(sorted(led["failed"].items(), key=lambda kv: -kv[1])),
        "filtered": led["filtered"],
        "samples": samples(layout, parts),
        "clip_scores": clip_scores(layout),
        "dedup": {
            "exact duplicates (filter)": led["duplicates"],
            "semantic duplicates (semdedup)": (dedup or {}).get("removed", 0),
        },
        "dedup_groups": (dedup or {}).get("groups"),
        "stages": stage_seconds(layout, parts),
        "model": {k: (embed or {}).get(k) for k in ("model", "pretrained", "dim", "device")},
        "bytes": _bytes(layout.images),
    }


def _bytes(folder: str) -> int:
    fsys, path = fs.filesystem(folder)
    if not fsys.exists(path):
        return 0
    return int(fsys.du(path))


def redacted_pretrained(value: str | None) -> str | None:
    """A checkpoint path shown by its file name only (no local paths in a shared card)."""
    return os.path.basename(value) if value and ("/" in value or os.sep in value) else value
