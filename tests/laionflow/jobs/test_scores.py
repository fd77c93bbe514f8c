"""The scores stage: a YAML with CLIP score, a CLIP-embedding head and a custom python model
produces the declared columns and npz features, aligned with the embeddings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from laionflow.clip_model import MissingWeightsError
from laionflow.jobs import scores
from laionflow.scoring.config import load_config

CUSTOM = """
import torch

class CaptionLength(torch.nn.Module):
    name = "caption-length"
    raw_inputs = ["text"]
    preprocessors = ["raw-captions"]
    dependencies = []
    to_device = False

    def __init__(self, device):
        super().__init__()

    def forward(self, captions):
        return torch.tensor([len(c) for c in captions])

model_lookup = {"caption-length": CaptionLength}
preprocessor_lookup = {"raw-captions": lambda captions: captions}
text_preprocessors = {"raw-captions"}
postprocess_parquet_lookup = {"caption-chars": lambda out: out["caption-length"].tolist()}
postprocess_feature_lookup = {}
"""


def _yaml(tmp_path, weights="head.pt") -> str:
    (tmp_path / "custom.py").write_text(CUSTOM)
    (tmp_path / "scores.yaml").write_text(
        f"""
models: [clip, aesthetic, phash, caption-length]
heads:
  aesthetic: {{weights: {weights}, input: image}}
postprocess_columns: [clip-score, aesthetic-score, phash, caption-chars]
postprocess_features: [clip-image, clip-text]
additional_fields: [url, caption]
custom_pypath: custom.py
batch_size: 64
"""
    )
    return str(tmp_path / "scores.yaml")


def test_registry_yaml_produces_declared_columns_and_features(pipeline, tmp_path):
    root = pipeline["recipe"].dataset_root
    dim = np.load(f"{root}/embeddings/part_00000/img_emb/img_emb_0.npy").shape[1]
    torch.manual_seed(0)
    head = torch.nn.Linear(dim, 1)
    torch.save(head.state_dict(), tmp_path / "head.pt")
    recipe = pipeline["recipe"].model_copy(update={"scores": _yaml(tmp_path)})
    summary = scores.run(recipe, 0, force=True)
    table = pd.read_parquet(f"{root}/scores/part_00000/scores.parquet")
    feats = np.load(f"{root}/scores/part_00000/features.npz")
    assert list(table.columns) == [
        "key",
        "url",
        "caption",
        "clip-score",
        "aesthetic-score",
        "phash",
        "caption-chars",
    ]
    assert summary["rows"] == len(table) == pipeline["download"][0]["successes"]
    assert table["key"].is_monotonic_increasing and table["key"].is_unique
    assert table["clip-score"].dtype == np.float64 and table["aesthetic-score"].dtype == np.float64
    assert table["caption-chars"].dtype == np.int64
    assert table["caption-chars"].tolist() == [len(c) for c in table["caption"]]
    assert table["phash"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert feats["clip-image"].dtype == np.float16 and feats["clip-image"].shape == (
        len(table),
        dim,
    )
    # aligned with the embed stage's rows (same keys, same order; float16 storage tolerance)
    meta = pd.read_parquet(f"{root}/embeddings/part_00000/metadata/metadata_0.parquet")
    img = np.load(f"{root}/embeddings/part_00000/img_emb/img_emb_0.npy").astype(np.float32)
    txt = np.load(f"{root}/embeddings/part_00000/text_emb/text_emb_0.npy").astype(np.float32)
    assert list(meta["key"]) == list(table["key"])
    np.testing.assert_allclose(table["clip-score"], (img * txt).sum(1), atol=2e-3)
    np.testing.assert_allclose(feats["clip-image"].astype(np.float32), img, atol=2e-3)
    with torch.no_grad():
        want = head(torch.from_numpy(feats["clip-image"].astype(np.float32)))[:, 0].numpy()
    np.testing.assert_allclose(table["aesthetic-score"], want, atol=5e-3)


def test_missing_weights_fail_before_work_naming_the_path(pipeline, tmp_path):
    path = _yaml(tmp_path, weights="nowhere/aesthetic.pt")
    with pytest.raises(MissingWeightsError, match="nowhere/aesthetic.pt"):
        load_config(path)
    recipe = pipeline["recipe"].model_copy(update={"scores": path, "root": str(tmp_path / "x")})
    with pytest.raises(MissingWeightsError):
        scores.run(recipe, 0)
    assert not (tmp_path / "x").exists()


def test_unknown_names_are_refused(pipeline, tmp_path):
    from laionflow.scoring.registry import build

    (tmp_path / "s.yaml").write_text("models: [clip]\npostprocess_columns: [clip-scor]\n")
    with pytest.raises(ValueError, match="clip-scor"):
        build(load_config(str(tmp_path / "s.yaml")), pipeline["recipe"].clip)
    (tmp_path / "s.yaml").write_text("models: [clipp]\n")
    with pytest.raises(ValueError, match="unknown model 'clipp'"):
        build(load_config(str(tmp_path / "s.yaml")), pipeline["recipe"].clip)


def test_score_filter_threshold_top_fraction_and_reshard(pipeline, tmp_path):
    import glob
    import math

    import webdataset as wds

    from laionflow.jobs import scorefilter

    (tmp_path / "clip.yaml").write_text("models: [clip]\npostprocess_columns: [clip-score]\n")
    recipe = pipeline["recipe"].model_copy(update={"scores": str(tmp_path / "clip.yaml")})
    for part in (0, 1):
        scores.run(recipe, part, force=True)
    root = recipe.dataset_root
    all_scores = pd.concat(
        pd.read_parquet(f"{root}/scores/part_{p:05d}/scores.parquet") for p in (0, 1)
    )
    median = float(all_scores["clip-score"].median())
    by_threshold = recipe.model_copy(
        update={"score_filter": recipe.score_filter.model_copy(update={"threshold": median})}
    )
    summary = scorefilter.run(by_threshold)
    kept = pd.read_parquet(f"{root}/scores/kept.parquet")
    assert summary["kept"] == len(kept) == int((all_scores["clip-score"] >= median).sum())
    assert sorted(kept["score"]) == sorted(
        all_scores[all_scores["clip-score"] >= median]["clip-score"]
    )

    top = recipe.model_copy(
        update={
            "score_filter": recipe.score_filter.model_copy(
                update={
                    "threshold": None,
                    "top_fraction": 0.25,
                    "reshard": True,
                    "samples_per_shard": 20,
                }
            )
        }
    )
    summary = scorefilter.run(top)
    kept = pd.read_parquet(f"{root}/scores/kept.parquet")
    n = math.ceil(0.25 * len(all_scores))
    assert len(kept) == n == summary["kept"]
    assert kept["score"].min() >= all_scores["clip-score"].nlargest(n).min()
    tars = sorted(glob.glob(f"{root}/scores/shards/*.tar"))
    assert len(tars) == summary["shards"] == math.ceil(n / 20)
    keys = [
        s["__key__"]
        for t in tars
        for s in wds.WebDataset(f"file:{t}", shardshuffle=False, empty_check=False)
    ]
    want = [f"{p:05d}_{k}" for p, k in zip(kept["part"], kept["key"], strict=True)]
    assert sorted(keys) == sorted(want) and len(keys) == len(set(keys))


def test_detoxify_is_optional_and_its_absence_is_a_clear_error(tmp_path):
    import importlib.util

    (tmp_path / "d.yaml").write_text(
        "models: [detoxify]\npostprocess_columns: [detoxify-toxicity]\n"
    )
    if importlib.util.find_spec("detoxify") is None:
        with pytest.raises(ImportError, match="pip install detoxify"):
            load_config(str(tmp_path / "d.yaml"))
    else:
        with pytest.raises(MissingWeightsError, match="detoxify_checkpoint"):
            load_config(str(tmp_path / "d.yaml"))


def test_a_part_is_scored_again_when_its_shards_change(pipeline, tmp_path):
    """A finished part is not scored twice; a repair's patch shard (here: one shard that
    becomes complete later) makes the stage score the part again, so the scores cover exactly
    the part's complete shards."""
    import glob
    import os
    import shutil

    from laionflow.shards import shard_ids

    (tmp_path / "scores.yaml").write_text(
        "models: [clip]\npostprocess_columns: [clip-score]\nadditional_fields: [url]\n"
    )
    recipe = pipeline["recipe"].model_copy(
        update={"root": str(tmp_path / "copy"), "scores": str(tmp_path / "scores.yaml")}
    )
    folder = f"{recipe.dataset_root}/images/part_00000"
    shutil.copytree(f"{pipeline['recipe'].dataset_root}/images/part_00000", folder)
    sids = shard_ids(folder)
    assert len(sids) >= 2
    last = sorted(glob.glob(f"{folder}/*_stats.json"))[-1]
    os.rename(last, last + ".later")  # the last shard is not complete yet
    first = scores.run(recipe, 0)
    assert first["shards"] == sids[:-1]
    assert scores.run(recipe, 0) == first  # same shards: the finished part is kept as it is
    os.rename(last + ".later", last)  # ... now it is (as a repair's patch shard would be)
    second = scores.run(recipe, 0)
    assert second["shards"] == sids
    table = pd.read_parquet(f"{recipe.dataset_root}/scores/part_00000/scores.parquet")
    assert second["rows"] == len(table) == pipeline["download"][0]["successes"] > first["rows"]
