"""Stage ``semdedup``: semantic near-duplicate removal from the image embeddings.

Every embedded sample is searched against all others with faiss (``k`` nearest, inner product
on normalised vectors — exact ``IndexFlatIP``); pairs at or above ``threshold`` are joined into
groups (union-find), and each group keeps one sample: the largest original image, then the
smallest key. ``dedup/semantic_duplicates.parquet`` lists every member of every group
(``key, part, url, group, kept``); ``dedup/_summary.json`` holds the counts. Nothing is deleted:
training loaders skip the ``kept == False`` keys.

``center`` (default on) subtracts the dataset's mean embedding first: CLIP-like embeddings share
a large common component, which squeezes all similarities towards 1 and makes a fixed threshold
mean different things on different datasets; centring spreads them out again.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from laionflow import fs
from laionflow.embeddings import embedding_batches, load_array
from laionflow.layout import Layout
from laionflow.recipes import Recipe

log = logging.getLogger(__name__)


def _load(layout: Layout):
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors, tables = [], []
    for batch in embedding_batches(layout):
        vectors.append(load_array(batch["img"]).astype(np.float32))
        with fs.open(batch["meta"]) as fh:
            tables.append(pq.read_table(fh))
    if not vectors:
        return np.zeros((0, 0), np.float32), []
    meta = pa.concat_tables(tables, promote_options="permissive").to_pylist()
    return np.concatenate(vectors), meta


def groups(emb: np.ndarray, threshold: float, k: int = 16, center: bool = True) -> list[list[int]]:
    """Indices of near-duplicate groups (≥ 2 members), each sorted, in order of first member."""
    import faiss

    x = emb.astype(np.float32)
    if center and len(x) > 1:
        x = x - x.mean(axis=0, keepdims=True)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(np.ascontiguousarray(x))
    sims, ids = index.search(x, min(k, len(x)))
    parent = list(range(len(x)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (row_s, row_i) in enumerate(zip(sims, ids, strict=True)):
        for s, j in zip(row_s, row_i, strict=True):
            if j >= 0 and j != i and s >= threshold:
                parent[find(i)] = find(int(j))
    members: dict[int, list[int]] = {}
    for i in range(len(x)):
        members.setdefault(find(i), []).append(i)
    return sorted((sorted(m) for m in members.values() if len(m) > 1), key=lambda m: m[0])


def run(recipe: Recipe, force: bool = False) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cfg = recipe.dedup
    layout = Layout(recipe.dataset_root)
    started = time.time()
    emb, meta = _load(layout)
    found = groups(emb, cfg.threshold, cfg.k, cfg.center) if len(emb) else []
    rows = []
    for gid, members in enumerate(found):

        def rank(i: int) -> tuple:
            m = meta[i]
            area = (m.get("original_width") or 0) * (m.get("original_height") or 0)
            return (-area, m["key"])

        keep = min(members, key=rank)
        for i in members:
            m = meta[i]
            rows.append(
                {
                    "key": m["key"],
                    "part": m.get("part"),
                    "url": m.get("url"),
                    "group": gid,
                    "kept": i == keep,
                }
            )
    schema = pa.schema(
        [
            ("key", pa.string()),
            ("part", pa.int64()),
            ("url", pa.string()),
            ("group", pa.int64()),
            ("kept", pa.bool_()),
        ]
    )
    with fs.atomic_write(f"{layout.dedup}/semantic_duplicates.parquet") as fh:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), fh)
    summary = {
        "stage": "semdedup",
        "samples": len(meta),
        "groups": len(found),
        "removed": sum(len(g) - 1 for g in found),
        "threshold": cfg.threshold,
        "center": cfg.center,
        "seconds": round(time.time() - started, 2),
    }
    fs.write_json(layout.dedup_summary, summary)
    log.info(
        "semdedup: %d groups, %d near-duplicates of %d samples",
        summary["groups"],
        summary["removed"],
        len(meta),
    )
    return summary
