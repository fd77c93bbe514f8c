"""The recaption stage and the OpenUni export on a real download, with a tiny BLIP captioner
built from a transformers config and loaded back through ``from_pretrained(path)``: one
caption row per downloaded sample, aligned with the shards and the embeddings; a kill mid-part
resumes without duplicates; the export reads back through OpenUni's documented fields."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pandas as pd
import pytest
import webdataset as wds
from PIL import Image

from laionflow import fs, samples
from laionflow.captioning.model import MissingModelError
from laionflow.captioning.tiny import save_tiny_captioner
from laionflow.export import openuni
from laionflow.jobs import annotate, blur, download, embed, recaption
from laionflow.layout import Layout
from laionflow.plan import write_run_config
from tests.helpers import part_recipe


def _overrides(model: str, checkpoint: str, **extra) -> dict:
    return {
        "download.number_sample_per_shard": 16,
        "recaption.enabled": True,
        "recaption.model": model,
        "recaption.device": "cpu",
        "recaption.batch_size": 4,
        "recaption.max_new_tokens": 6,
        "recaption.chunk_size": 6,
        "recaption.gate": "original",
        "clip.model": "laionflow-tiny",
        "clip.pretrained": checkpoint,
        "clip.device": "cpu",
        "clip.num_workers": 0,
        **extra,
    }


@pytest.fixture(scope="module")
def captioned(tmp_path_factory, corpus, checkpoint):
    """40 fixture URLs downloaded (some fail), re-captioned, embedded and exported."""
    work = tmp_path_factory.mktemp("recaption")
    model = save_tiny_captioner(work / "tiny-blip")
    urls = pd.read_parquet(corpus.metadata_files[0])["URL"].tolist()[:40]
    recipe = part_recipe(work, urls, **_overrides(model, checkpoint))
    download.run(recipe, 0)
    annotate.run(recipe, 0)
    out = {"recipe": recipe, "summary": recaption.run(recipe, 0)}
    out["embed"] = embed.run(recipe, 0)
    out["export"] = openuni.run(recipe)
    layout = Layout(recipe.dataset_root)
    out["captions"] = pd.read_parquet(layout.captions_table(0))
    return out


def _tar_samples(folder: str) -> dict[str, dict]:
    out = {}
    for tar in sorted(p for p in os.listdir(folder) if p.endswith(".tar")):
        for s in wds.WebDataset(f"file:{folder}/{tar}", shardshuffle=False, empty_check=False):
            assert s["__key__"] not in out
            out[s["__key__"]] = s
    return out


def test_one_caption_row_per_downloaded_sample_aligned_with_shards_and_embeddings(captioned):
    recipe, caps, summary = captioned["recipe"], captioned["captions"], captioned["summary"]
    layout = Layout(recipe.dataset_root)
    folder = layout.images_part(0)
    shard_rows = pd.concat(
        pd.read_parquet(f"{folder}/{p}")
        for p in sorted(os.listdir(folder))
        if p.endswith(".parquet")
    )
    downloaded = sorted(shard_rows.loc[shard_rows["status"] == "success", "key"])
    assert 0 < len(downloaded) < len(shard_rows)  # some URLs failed: they get no caption
    assert caps["key"].tolist() == downloaded and caps["key"].is_unique
    assert len(summary["shards"]) >= 2 and summary["rows"] == len(downloaded)
    assert (caps["model"] == recipe.recaption.model).all()
    assert (caps["prompt"] == recipe.recaption.prompt).all()
    assert caps["caption"].str.len().gt(0).all()
    assert caps[["clip_score", "clip_score_original"]].abs().le(1.0001).all().all()
    # the gate: a new caption is kept exactly when it scores at least the alt text
    assert (caps["kept"] == (caps["clip_score"] >= caps["clip_score_original"])).all()
    assert summary["kept"] + summary["rejected"] == summary["rows"]
    assert summary["kept"] == int(caps["kept"].sum())
    selected = caps["caption"].where(caps["kept"], caps["original_caption"])
    assert (caps["selected_caption"] == selected).all()
    tars = _tar_samples(folder)  # .recap.txt in the shards, next to the alt text
    assert sorted(tars) == downloaded
    by_key = caps.set_index("key")
    for key, s in tars.items():
        assert s["recap.txt"].decode() == by_key.loc[key, "selected_caption"]
        assert s["txt"].decode() == by_key.loc[key, "original_caption"]
    meta = pd.read_parquet(layout.embedding_batch(0, 0)["meta"])  # embeddings metadata column
    assert meta["key"].tolist() == downloaded
    assert meta["recaption"].tolist() == caps["selected_caption"].tolist()


def test_caption_row_is_rederived_from_its_key(captioned):
    """A sample's stored row equals a fresh caption of its image from the shard."""
    from laionflow.captioning import model as captioner
    from laionflow.captioning.clipscore import ClipScorer

    recipe, caps = captioned["recipe"], captioned["captions"]
    row = caps.iloc[len(caps) // 2]
    sample = _tar_samples(Layout(recipe.dataset_root).images_part(0))[row["key"]]
    image = Image.open(__import__("io").BytesIO(sample["jpg"])).convert("RGB")
    cap = captioner.load(recipe.recaption, "cpu")
    assert captioner.caption(cap, [image]) == [row["caption"]]
    new, orig = ClipScorer(recipe.clip, "cpu").scores(
        [image], [row["caption"]], [sample["txt"].decode()]
    )
    assert new[0] == pytest.approx(row["clip_score"], abs=1e-4)
    assert orig[0] == pytest.approx(row["clip_score_original"], abs=1e-4)


def _read_openuni(cap_folder: str, data_path: str, image_folder: str) -> list[dict]:
    """OpenUni's CaptionDataset reading, from its documented fields: ``data_path`` is a json
    list of ``{"image", "annotation"}``; the image is ``image_folder/image``, the caption
    ``json.load(cap_folder/annotation)["caption"]`` (its default ``cap_source``)."""
    with open(data_path) as fh:
        data_list = json.load(fh)
    out = []
    for item in data_list:
        image = Image.open(os.path.join(image_folder, item["image"]))
        with open(os.path.join(cap_folder, item["annotation"])) as fh:
            annotation = json.load(fh)
        out.append({"size": image.convert("RGB").size, **annotation})
    return out


def test_openuni_export_reads_back_through_its_documented_fields(captioned):
    recipe, caps, export = captioned["recipe"], captioned["captions"], captioned["export"]
    layout = Layout(recipe.dataset_root)
    assert export["image_folder"] == layout.openuni("raw")
    read = _read_openuni(export["cap_folder"], export["data_path"], export["image_folder"])
    assert export["samples"] == len(read) == len(caps)
    by_key = caps.set_index("key")
    assert sorted(r["key"] for r in read) == caps["key"].tolist()
    for r in read:
        assert r["caption"] == by_key.loc[r["key"], "selected_caption"]
        assert r["recaption"] == by_key.loc[r["key"], "caption"]
        assert min(r["size"]) > 0
    assert openuni.run(recipe)["samples"] == len(caps)  # a rerun reuses finished parts


def test_with_faces_blurred_the_export_ships_the_blurred_images(captioned, tmp_path):
    """The export reads the blur stage's copies when the recipe blurs faces (not before they
    exist), and the downloaded images again once blurring is off."""
    src = captioned["recipe"]
    safety = src.safety.model_copy(update={"blur_faces": True})
    recipe = src.model_copy(update={"root": str(tmp_path), "safety": safety})
    layout = Layout(recipe.dataset_root)
    shutil.copytree(Layout(src.dataset_root).images_part(0), layout.images_part(0))
    shutil.copytree(Layout(src.dataset_root).captions_part(0), layout.captions_part(0))
    keys = sorted(_tar_samples(layout.images_part(0)))
    faces = {k: [[0.0, 0.0, 24.0, 24.0]] if i % 3 == 0 else [] for i, k in enumerate(keys)}
    os.makedirs(layout.scores_part(0))
    pd.DataFrame({"key": keys, "face_boxes": [faces[k] for k in keys]}).to_parquet(
        f"{layout.scores_part(0)}/scores.parquet"
    )
    with pytest.raises(RuntimeError, match="run the blur stage"):
        openuni.run(recipe)
    blur.run(recipe, 0)
    export = openuni.run(recipe)
    assert export["faces_blurred"] and export["samples"] == len(keys)
    blurred, original = _tar_samples(layout.blurred_part(0)), _tar_samples(layout.images_part(0))

    def shipped(entries) -> dict[str, bytes]:
        raw = export["image_folder"]
        return {
            os.path.basename(e["image"]).rsplit(".", 1)[0]: open(f"{raw}/{e['image']}", "rb").read()
            for e in entries
        }

    with open(export["data_path"]) as fh:
        got = shipped(json.load(fh))
    assert got == {k: samples.image_bytes(blurred[k]) for k in keys}
    assert [k for k in keys if got[k] != samples.image_bytes(original[k])] == [
        k for k in keys if faces[k]
    ]
    plain = openuni.run(recipe.model_copy(update={"safety": src.safety}))  # blurring off
    with open(plain["data_path"]) as fh:
        assert shipped(json.load(fh)) == {k: samples.image_bytes(original[k]) for k in keys}


def test_killed_mid_part_resumes_without_duplicates(captioned, tmp_path):
    src = captioned["recipe"]
    recipe = src.model_copy(update={"root": str(tmp_path)})
    shutil.copytree(
        Layout(src.dataset_root).images_part(0), Layout(recipe.dataset_root).images_part(0)
    )
    config = write_run_config(recipe, "killed")
    cmd = [sys.executable, "-m", "laionflow", "run", "recaption", "--config", config, "--part", "0"]
    env = {**os.environ, "LAIONFLOW_FAILPOINTS": "recaption.after_chunk"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]
    layout = Layout(recipe.dataset_root)
    assert len(os.listdir(f"{layout.captions_part(0)}/chunks")) == 1
    assert not fs.exists(layout.captions_done(0))
    recaption.run(recipe, 0)  # the rerun, in-process
    summary = fs.read_json(layout.captions_done(0))
    assert summary["new_rows"] == summary["rows"] - recipe.recaption.chunk_size  # chunk 1 kept
    resumed = pd.read_parquet(layout.captions_table(0))
    pd.testing.assert_frame_equal(resumed, captioned["captions"])
    assert sorted(_tar_samples(layout.images_part(0))) == resumed["key"].tolist()


def test_local_model_path_is_never_sent_to_the_hub(captioned, tmp_path):
    from laionflow.captioning import model as captioner

    cfg = captioned["recipe"].recaption.model_copy(update={"model": str(tmp_path / "absent")})
    with pytest.raises(MissingModelError, match="absent"):
        captioner.load(cfg, "cpu")


def test_gate_threshold_needs_a_score():
    from laionflow.captioning.config import RecaptionConfig

    with pytest.raises(ValueError, match="min_score"):
        RecaptionConfig(gate="threshold")
    cfg = RecaptionConfig(gate="threshold", min_score=0.2)
    import numpy as np

    assert recaption.gate(cfg, np.array([0.1, 0.2, 0.3]), np.array([1, 1, 1])).tolist() == [
        False,
        True,
        True,
    ]
