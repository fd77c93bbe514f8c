"""The index stage's choice of faiss index (``laionflow.indexing``) and that what it chooses is
what gets built and what the readers search with."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from laionflow import indexing
from laionflow.indexing import index_choice, ivf_nlist, ivf_nprobe

AUTOFAISS = {"index_key": None, "index_param": None}


def _write_embeddings(layout, x: np.ndarray) -> None:
    """One published embedding part of ``x`` (image) and ``x`` reversed (text), as the embed
    stage leaves it."""
    files = layout.embedding_batch(0, 0)
    for path, arr in ((files["img"], x), (files["txt"], x[::-1].copy()), (files["meta"], None)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if arr is not None:
            np.save(path, arr)
    pd.DataFrame({"key": [f"{i:09d}" for i in range(len(x))]}).to_parquet(files["meta"])
    with open(layout.embeddings_done(0), "w") as fh:
        json.dump({"batches": [{"batch": 0}]}, fh)


def test_small_corpora_keep_autofaiss_choice():
    assert index_choice(1_000, 512, "4G") == AUTOFAISS
    assert index_choice(indexing.BIG_N - 1, 512, "4G") == AUTOFAISS


def test_from_big_n_an_ivf_flat_with_a_fixed_nprobe():
    assert index_choice(1_000_000, 512, "4G") == {
        "index_key": "IVF1024,Flat",
        "index_param": "nprobe=8",
    }
    assert index_choice(indexing.BIG_N, 512, "4G")["index_key"].startswith("IVF")
    assert index_choice(10_000_000, 512, "32G") == {
        "index_key": "IVF4096,Flat",
        "index_param": "nprobe=32",
    }


def test_sizes_and_probes():
    assert [ivf_nlist(n) for n in (20_000, 100_000, 1_000_000, 10_000_000)] == [
        128,
        256,
        1024,
        4096,
    ]
    assert ivf_nprobe(128) == indexing.MIN_NPROBE
    assert ivf_nprobe(4096) == 32


def test_over_budget_falls_back_to_autofaiss():
    # 1M x 512 float32 is 2 GB uncompressed: a 1G budget needs autofaiss's quantised index
    assert index_choice(1_000_000, 512, "1G") == AUTOFAISS
    assert index_choice(1_000_000, 512, "2100M")["index_key"] == "IVF1024,Flat"


def test_user_key_overrides_at_any_size():
    user = {"index_key": "HNSW64", "index_param": "efSearch=256"}
    assert index_choice(1_000, 512, "4G", **user) == user
    assert index_choice(1_000_000, 512, "1G", **user) == user
    assert index_choice(1_000_000, 512, "4G", index_key="HNSW64") == {
        "index_key": "HNSW64",
        "index_param": None,
    }
    # a param alone is no choice of index: ignored
    assert index_choice(1_000, 512, "4G", index_param="nprobe=8") == AUTOFAISS


def test_lowered_big_n_is_what_the_index_stage_builds_and_readers_apply(tmp_path, monkeypatch):
    import faiss

    from laionflow.jobs import index as index_job
    from laionflow.layout import Layout, index_files
    from laionflow.query import IndexReader, apply_search_params
    from laionflow.recipes import load_recipe

    monkeypatch.setattr(indexing, "BIG_N", 10_000)
    recipe = load_recipe(
        "laion400m",
        {
            "root": str(tmp_path),
            "index.max_index_memory_usage": "1G",
            "index.current_memory_available": "4G",
        },
    )
    n, dim = 20_000, 32
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, dim))[rng.integers(0, 64, n)] + 0.3 * rng.normal(size=(n, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    layout = Layout(recipe.dataset_root)
    _write_embeddings(layout, x)

    summary = index_job.run(recipe)

    assert summary["index_key"] == {"image": "IVF128,Flat", "text": "IVF128,Flat"}
    paths = index_files(layout.index)
    infos = json.load(open(paths["image_infos"]))
    assert infos["index_param"] == "nprobe=8"
    raw = faiss.read_index(paths["image"])
    assert faiss.extract_index_ivf(raw).nlist == 128
    raw.nprobe = 1  # as if the file did not carry it
    apply_search_params(raw, paths["image_infos"])
    assert raw.nprobe == 8
    reader = IndexReader(layout.index)
    assert faiss.extract_index_ivf(reader.image).nprobe == 8
    _, ids = reader.search(x[:200].astype(np.float32), k=1)
    assert np.mean(ids[:, 0] == np.arange(200)) >= 0.99


@pytest.mark.parametrize("key", ["HNSW16"])
def test_user_key_reaches_the_build(tmp_path, key):
    """An explicit key and param go through autofaiss into the infos json unchanged."""
    import faiss
    from autofaiss import build_index

    from laionflow.query import apply_search_params

    x = np.random.default_rng(1).normal(size=(2_000, 16)).astype(np.float32)
    choice = index_choice(len(x), 16, "1G", index_key=key, index_param="efSearch=77")
    _, info = build_index(
        embeddings=x,
        index_path=str(tmp_path / "i.index"),
        index_infos_path=str(tmp_path / "i.json"),
        max_index_memory_usage="1G",
        current_memory_available="2G",
        verbose=40,
        **choice,
    )
    assert (info["index_key"], info["index_param"]) == (key, "efSearch=77")
    index = faiss.read_index(str(tmp_path / "i.index"))
    index.hnsw.efSearch = 16
    apply_search_params(index, str(tmp_path / "i.json"))
    assert index.hnsw.efSearch == 77
