"""Stage 6: autofaiss image and text indices in the layout ``clip back`` loads.

``index/{image.index, text.index, metadata/metadata_NNNNN.parquet, model.json}`` — row i of
the concatenated metadata (files in name order) is vector i of both indices. The whole folder
is built under a temporary name and swapped in by rename, so a crash leaves either the old
index or the new one, never a mix.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid

import numpy as np

from laionflow import fs
from laionflow.embeddings import embedded_parts, embedding_batches, load_array
from laionflow.indexing import index_choice
from laionflow.layout import Layout, index_files, index_metadata, part_name
from laionflow.recipes import Recipe

log = logging.getLogger(__name__)


def run(recipe: Recipe, force: bool = False) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from autofaiss import build_index

    layout = Layout(recipe.dataset_root)
    parts = embedded_parts(layout)
    if not parts:
        if recipe.download.output_format != "webdataset":
            return {"stage": "index", "size": 0, "skipped": "no embeddings for this output format"}
        raise FileNotFoundError(f"no finished embeddings under {layout.embeddings}")
    started = time.time()
    img, txt, meta = [], [], {part: [] for part in parts}
    for batch in embedding_batches(layout):
        img.append(load_array(batch["img"]))
        txt.append(load_array(batch["txt"]))
        meta[batch["part"]].append(batch["meta"])
    img_emb = np.concatenate(img).astype(np.float32)
    txt_emb = np.concatenate(txt).astype(np.float32)
    if len(img_emb) == 0:
        raise ValueError("no embeddings to index (every download failed?)")
    local = "://" not in layout.index
    work = fs.tmp_name(layout.index) if local else tempfile.mkdtemp(prefix="laionflow-index-")
    files = index_files(work)
    os.makedirs(files["metadata"], exist_ok=True)
    opts = recipe.index
    infos = {}
    for kind, emb in (("image", img_emb), ("text", txt_emb)):
        choice = index_choice(
            len(emb),
            emb.shape[1],
            opts.max_index_memory_usage,
            index_key=opts.index_key,
            index_param=opts.index_param,
        )
        _, info = build_index(
            embeddings=emb,
            index_path=files[kind],
            index_infos_path=files[f"{kind}_infos"],
            max_index_memory_usage=opts.max_index_memory_usage,
            current_memory_available=opts.current_memory_available,
            metric_type=opts.metric_type,
            min_nearest_neighbors_to_retrieve=opts.min_nearest_neighbors_to_retrieve,
            save_on_disk=True,
            verbose=logging.WARNING,
            **choice,
        )
        if info is None:  # autofaiss logs why (memory) and returns nothing
            raise RuntimeError(f"autofaiss could not build the {kind} index with {choice}")
        infos[kind] = info
    for part in parts:  # one metadata file per part, rows in vector order
        tables = []
        for src in meta[part]:
            with fs.open(src) as fh:
                tables.append(pq.read_table(fh))
        merged = pa.concat_tables(tables, promote_options="permissive")
        pq.write_table(merged, index_metadata(work, part))
    fs.write_json(
        files["model"],
        {
            "model": recipe.clip.model,
            "pretrained": recipe.clip.pretrained,
            "metric_type": opts.metric_type,
            "parts": parts,
        },
    )
    summary = {
        "stage": "index",
        "size": int(len(img_emb)),
        "parts": [part_name(p) for p in parts],
        "index_key": {k: (v or {}).get("index_key") for k, v in infos.items()},
        "seconds": round(time.time() - started, 2),
    }
    fs.write_json(files["summary"], summary)
    _publish(work, layout.index, local)
    log.info("index: %d vectors, %s", summary["size"], summary["index_key"])
    return summary


def _publish(work: str, target: str, local: bool) -> None:
    import shutil

    if local:
        old = f"{target}.old-{uuid.uuid4().hex[:8]}"
        if os.path.exists(target):
            os.replace(target, old)
        os.replace(work, target)
        shutil.rmtree(old, ignore_errors=True)
        return
    fsys, path = fs.filesystem(target)
    if fsys.exists(path):
        fsys.rm(path, recursive=True)
    fsys.put(work, path, recursive=True)
    shutil.rmtree(work, ignore_errors=True)
