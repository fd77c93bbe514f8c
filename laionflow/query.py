"""Answer text->image and image->image queries from a built index folder."""

from __future__ import annotations

import os

import numpy as np

from laionflow import fs
from laionflow.layout import index_files


def apply_search_params(index, infos_path: str) -> None:
    """Re-apply the search hyperparameters autofaiss tuned for its latency target (e.g.
    ``efSearch``, ``nprobe``): a saved index does not always carry them, and without them
    recall drops (0.93 instead of 0.98 on 1M vectors in ``bench/index.py``)."""
    import faiss

    if fs.exists(infos_path):
        param = fs.read_json(infos_path).get("index_param")
        if param:
            faiss.ParameterSpace().set_index_parameters(index, param)


def _local(path: str) -> str:
    """A local file faiss can memory-map: ``path`` itself, or for an object store a copy in
    ``$LAIONFLOW_CACHE`` (default ``~/.cache/laionflow``) keyed by path, size and mtime."""
    if fs.is_local(path):
        return path.removeprefix("file://")
    import hashlib

    fsys, p = fs.filesystem(path)
    info = fsys.info(p)
    stamp = f"{path}|{info.get('size')}|{info.get('LastModified') or info.get('mtime')}"
    cache = os.environ.get("LAIONFLOW_CACHE") or os.path.expanduser("~/.cache/laionflow")
    local = os.path.join(cache, "index", hashlib.sha1(stamp.encode()).hexdigest()[:20])
    if not os.path.exists(local):
        fs.download(path, local + ".part")
        os.replace(local + ".part", local)
    return local


class IndexReader:
    """Memory-mapped image/text indices plus the aligned metadata of ``index/``."""

    def __init__(self, index_dir: str):
        import faiss
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.dir = index_dir.rstrip("/")
        paths = index_files(self.dir)
        self.info = fs.read_json(paths["model"])
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
        self.image = faiss.read_index(_local(paths["image"]), flags)
        self.text = faiss.read_index(_local(paths["text"]), flags)
        for kind, index in (("image", self.image), ("text", self.text)):
            apply_search_params(index, paths[f"{kind}_infos"])
        files = [p for p in fs.ls(paths["metadata"]) if p.endswith(".parquet")]
        tables = []
        for path in files:
            with fs.open(path) as fh:
                tables.append(pq.read_table(fh))
        self.metadata = pa.concat_tables(tables)
        if self.metadata.num_rows != self.image.ntotal:
            raise ValueError(
                f"{index_dir}: {self.metadata.num_rows} metadata rows but "
                f"{self.image.ntotal} vectors"
            )

    def search(self, vectors: np.ndarray, k: int = 5, which: str = "image"):
        index = self.image if which == "image" else self.text
        return index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)

    def rows(self, ids) -> list[dict]:
        return self.metadata.take([int(i) for i in ids if i >= 0]).to_pylist()

    def _model(self):
        """The CLIP model the vectors came from (``model.json``), loaded once, on CPU."""
        if not hasattr(self, "_loaded"):
            from laionflow import clip_model
            from laionflow.recipes.schema import ClipConfig

            cfg = ClipConfig(
                model=self.info["model"], pretrained=self.info["pretrained"], device="cpu"
            )
            self._loaded = clip_model.load(cfg, "cpu")
        return self._loaded

    def encode_text(self, text: str) -> np.ndarray:
        import torch

        model, _, tokenizer = self._model()
        with torch.inference_mode():
            emb = model.encode_text(tokenizer([text]))
        return torch.nn.functional.normalize(emb, dim=-1).numpy()

    def encode_image(self, image: str | bytes) -> np.ndarray:
        """An image file's (or its bytes') normalised embedding."""
        import io

        import torch
        from PIL import Image

        model, preprocess, _ = self._model()
        src = io.BytesIO(image) if isinstance(image, bytes) else image
        with torch.inference_mode():
            emb = model.encode_image(preprocess(Image.open(src).convert("RGB"))[None])
        return torch.nn.functional.normalize(emb, dim=-1).numpy()

    def nearest(
        self, text: str | None = None, image: str | bytes | None = None, k: int = 5
    ) -> list[dict]:
        """The ``k`` nearest images to a text or an image: id, distance, key, part, url,
        caption. Ids of -1 (fewer than ``k`` vectors in the index) are dropped."""
        vec = self.encode_image(image) if image is not None else self.encode_text(text or "")
        dist, ids = self.search(vec, k, "image")
        hits = [(int(i), float(d)) for i, d in zip(ids[0], dist[0], strict=True) if i >= 0]
        rows = self.rows([i for i, _ in hits])
        fields = ("key", "part", "url", "caption")
        return [
            {"id": i, "distance": d, **{f: row.get(f) for f in fields}}
            for (i, d), row in zip(hits, rows, strict=True)
        ]


def query(
    index_dir: str, text: str | None = None, image: str | None = None, k: int = 5
) -> list[dict]:
    """One query against ``index_dir`` (what ``laionflow query`` runs)."""
    return IndexReader(index_dir).nearest(text=text, image=image, k=k)


__all__ = ["IndexReader", "query"]
