import numpy as np
import pandas as pd
import pytest
import webdataset as wds

from laionflow.clip_model import MissingWeightsError
from laionflow.jobs import embed
from laionflow.query import IndexReader, query
from laionflow.recipes import load_recipe
from laionflow.samples import Decode
from laionflow.shards import shard_ids


def test_embeddings_are_aligned_with_metadata_and_tars(pipeline):
    root = pipeline["recipe"].dataset_root
    for part, summary in pipeline["embed"].items():
        base = f"{root}/embeddings/part_{part:05d}"
        img = np.load(f"{base}/img_emb/img_emb_0.npy")
        txt = np.load(f"{base}/text_emb/text_emb_0.npy")
        meta = pd.read_parquet(f"{base}/metadata/metadata_0.parquet")
        assert len(img) == len(txt) == len(meta) == summary["rows"]
        assert summary["rows"] == pipeline["download"][part]["successes"]
        assert np.allclose(np.linalg.norm(img.astype(np.float32), axis=1), 1, atol=1e-2)
        folder = f"{root}/images/part_{part:05d}"
        tars = [f"file:{folder}/{sid:05d}.tar" for sid in shard_ids(folder)]
        captions = {
            s["__key__"]: s["txt"].decode()
            for s in wds.WebDataset(tars, shardshuffle=False, empty_check=False)
        }
        assert dict(zip(meta["key"], meta["caption"], strict=True)) == captions


def test_image_index_returns_each_sample_first(pipeline):
    root = pipeline["recipe"].dataset_root
    reader = IndexReader(f"{root}/index")
    emb = np.concatenate(
        [
            np.load(f"{root}/embeddings/part_{p:05d}/img_emb/img_emb_0.npy")
            for p in sorted(pipeline["embed"])
        ]
    ).astype(np.float32)
    assert reader.image.ntotal == len(emb) == pipeline["index"]["size"]
    _, ids = reader.search(emb, k=1)
    hit_rate = float(np.mean(ids[:, 0] == np.arange(len(emb))))
    assert hit_rate >= 0.99
    meta = pd.concat(
        pd.read_parquet(f"{root}/embeddings/part_{p:05d}/metadata/metadata_0.parquet")
        for p in sorted(pipeline["embed"])
    ).reset_index(drop=True)
    rows = reader.rows(range(len(meta)))
    assert [r["key"] for r in rows] == list(meta["key"])
    assert [r["caption"] for r in rows] == list(meta["caption"])


def test_text_query_answers_from_the_index(pipeline):
    root = pipeline["recipe"].dataset_root
    hits = query(f"{root}/index", text="red cat", k=5)
    assert len(hits) == 5
    assert all(h["caption"] and h["url"].startswith("http://127.0.0.1") for h in hits)
    assert hits == sorted(hits, key=lambda h: -h["distance"])


def test_missing_checkpoint_fails_before_work_naming_the_path(pipeline, tmp_path):
    recipe = load_recipe(
        "laion400m",
        {
            "root": str(tmp_path),
            "clip.model": "laionflow-tiny",
            "clip.pretrained": "/nowhere/tiny.pt",
        },
    )
    with pytest.raises(MissingWeightsError, match="/nowhere/tiny.pt"):
        embed.run(recipe, 0)


def test_query_with_k_larger_than_the_index_returns_every_vector_once(pipeline):
    root = pipeline["recipe"].dataset_root
    size = pipeline["index"]["size"]
    hits = query(f"{root}/index", text="anything", k=size + 10)
    assert len(hits) == size and len({h["id"] for h in hits}) == size


def test_recomputed_embedding_of_sampled_tar_samples_equals_the_stored_row(pipeline):
    """Alignment: embedding a sample straight from its tar, one at a time in float32, with the
    job's own decoder (PIL, JPEG draft scaling, the model's preprocess) gives the stored
    float16 row, within 2e-3 per component."""

    import torch

    from laionflow import clip_model

    recipe = pipeline["recipe"]
    root = recipe.dataset_root
    model, preprocess, _ = clip_model.load(recipe.clip, "cpu")
    base = f"{root}/embeddings/part_00001"
    img = np.load(f"{base}/img_emb/img_emb_0.npy").astype(np.float32)
    meta = pd.read_parquet(f"{base}/metadata/metadata_0.parquet")
    row_of = {k: i for i, k in enumerate(meta["key"])}
    folder = f"{root}/images/part_00001"
    samples = list(
        wds.WebDataset(
            [f"file:{folder}/{sid:05d}.tar" for sid in shard_ids(folder)],
            shardshuffle=False,
            empty_check=False,
        )
    )
    for s in samples[:: max(1, len(samples) // 12)]:
        with torch.inference_mode():
            x = Decode(preprocess, min(model.visual.image_size))(s)[1][None]
            emb = torch.nn.functional.normalize(model.encode_image(x), dim=-1)[0].numpy()
        i = row_of[s["__key__"]]
        np.testing.assert_allclose(img[i], emb, atol=2e-3)
        assert meta["caption"][i] == s["txt"].decode() and meta["url"][i]


def test_tuned_search_params_are_applied_when_an_index_is_loaded(tmp_path):
    import json

    import faiss

    from laionflow.query import apply_search_params

    index = faiss.IndexHNSWFlat(8, 4)
    index.add(np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32))
    assert index.hnsw.efSearch != 77
    (tmp_path / "infos.json").write_text(json.dumps({"index_param": "efSearch=77"}))
    apply_search_params(index, str(tmp_path / "infos.json"))
    assert index.hnsw.efSearch == 77


def test_cpu_model_threads_leave_the_decoding_workers_their_cores(monkeypatch):
    """On a CPU the model gets the cores the DataLoader workers leave, at least one, and the
    thread count is restored afterwards; with no workers, or on a GPU, nothing changes."""
    import torch

    from laionflow.jobs.embed import _cpu_threads_beside

    before = torch.get_num_threads()
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    with _cpu_threads_beside(3, "cpu"):
        assert torch.get_num_threads() == 1
    with _cpu_threads_beside(1, "cpu"):
        assert torch.get_num_threads() == 3
    with _cpu_threads_beside(8, "cpu"):
        assert torch.get_num_threads() == 1
    for workers, device in ((0, "cpu"), (2, "cuda")):
        with _cpu_threads_beside(workers, device):
            assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before
