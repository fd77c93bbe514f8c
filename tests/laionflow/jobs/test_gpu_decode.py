"""The batched tensor decode path (the GPU path, run here on CPU): the same pixels and nearly
the same preprocessing as open_clip's PIL transform, and the same embeddings within tolerance."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pandas as pd
import torch
import webdataset as wds
from PIL import Image

from laionflow import clip_model, gpu_decode
from laionflow.jobs import embed
from laionflow.recipes import load_recipe
from tests.helpers import small_overrides


def _samples(pipeline, n=16):
    folder = f"{pipeline['recipe'].dataset_root}/images/part_00000"
    return list(wds.WebDataset(f"file:{folder}/00000.tar", shardshuffle=False, empty_check=False))[
        :n
    ]


def test_batch_decode_and_preprocess_match_open_clips_transform(pipeline):
    model, preprocess, _ = clip_model.load(pipeline["recipe"].clip, "cpu")
    samples = _samples(pipeline)
    blobs = [s["jpg"] for s in samples]
    decoded = gpu_decode.decode(blobs, "cpu")
    for img, blob in zip(decoded, blobs, strict=True):
        pil = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")).transpose(2, 0, 1)
        assert img.shape == pil.shape
        assert np.abs(img.numpy().astype(int) - pil.astype(int)).max() <= 2  # same libjpeg
    batch = gpu_decode.preprocess(decoded, model.visual.preprocess_cfg)
    want = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])
    assert batch.shape == want.shape
    assert (batch - want).abs().mean() < 0.02


def test_tensor_path_embeddings_agree_with_the_pil_path(pipeline, corpus, checkpoint, tmp_path):
    recipe = load_recipe(
        "laion400m", small_overrides(tmp_path, corpus, checkpoint, **{"clip.decode": "tensor"})
    )
    src = pipeline["recipe"].dataset_root
    shutil.copytree(f"{src}/images/part_00000", f"{recipe.dataset_root}/images/part_00000")
    embed.run(recipe, 0)
    mine = f"{recipe.dataset_root}/embeddings/part_00000"
    theirs = f"{src}/embeddings/part_00000"
    assert list(pd.read_parquet(f"{mine}/metadata/metadata_0.parquet")["key"]) == list(
        pd.read_parquet(f"{theirs}/metadata/metadata_0.parquet")["key"]
    )
    a = np.load(f"{mine}/img_emb/img_emb_0.npy").astype(np.float32)
    b = np.load(f"{theirs}/img_emb/img_emb_0.npy").astype(np.float32)
    cos = (a * b).sum(1)
    assert cos.min() > 0.995, cos.min()


def test_batch_size_grows_with_free_memory_and_never_below_the_configured_one():
    mib = 1 << 20
    assert gpu_decode.fit_batch_size(80_000 * mib, 4 * mib, floor=256) == 4096  # capped
    assert gpu_decode.fit_batch_size(8_000 * mib, 4 * mib, floor=256) == 512  # half of free
    assert gpu_decode.fit_batch_size(100 * mib, 4 * mib, floor=256) == 256  # floor
    assert gpu_decode.batch_size_for(None, "cpu", 128) == 128  # CPU: as configured


def test_the_loaders_collate_tokenizes_each_batch_where_it_runs():
    """The DataLoader runs the collate in its workers: it carries the tokenizer (picklable,
    for spawned workers) and hands the main process the batch's tokens with the bytes."""
    import pickle

    import open_clip

    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    collate = pickle.loads(pickle.dumps(embed.Collate(tokenizer, stack_images=False)))
    batch = [("k1", b"jpeg-1", "a red cat", {"a": 1}), ("k2", b"jpeg-2", "a dog", {"a": 2})]
    keys, images, tokens, captions, metas = collate(batch)
    assert keys == ["k1", "k2"] and images == [b"jpeg-1", b"jpeg-2"]
    assert torch.equal(tokens, tokenizer(["a red cat", "a dog"])) and tokens.shape == (2, 77)
    assert captions == ["a red cat", "a dog"] and metas == [{"a": 1}, {"a": 2}]
    stacked = embed.Collate(tokenizer, stack_images=True)([("k", torch.zeros(3, 2, 2), "x", {})])
    assert stacked[1].shape == (1, 3, 2, 2)
