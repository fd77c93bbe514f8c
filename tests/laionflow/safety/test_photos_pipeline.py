"""The safety models and the hash gate on real photographs (scikit-image's), downloaded from
the fixture server: faces, text area, NSFW, PDQ, blurring, a blocked URL hash and a
quarantined PDQ near-copy. One download and one scores run shared by every test here."""

import hashlib

import numpy as np
import pandas as pd
import pytest
import webdataset as wds

from laionflow import fs, samples
from laionflow.jobs import blur, download, scores
from laionflow.safety.blur import box_region
from laionflow.safety.detectors import pdq_hash
from laionflow.testing import photos
from tests.helpers import part_recipe

SHOWN = ("astronaut", "camera", "chelsea", "coffee", "page", "text")
COLUMNS = [
    "nsfw_image",
    "nsfw_classes",
    "faces",
    "face_boxes",
    "text_area",
    "text",
    "pdq",
    "pdq_quality",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory, fixture_server, session_tmp):
    site = session_tmp / "fixture" / "photos-gate"
    photos.write_photos(site, SHOWN)
    # the known-bad image is the rocket; the corpus only has a resized, re-encoded copy
    (site / "rocket_copy.jpg").write_bytes(photos.near_copy(photos.photo("rocket")))
    (site / "blocked.png").write_bytes((site / "chelsea.png").read_bytes())
    lists = tmp_path_factory.mktemp("lists")
    base = f"{fixture_server.base_url}/photos-gate"
    urls = {n: f"{base}/{n}.png" for n in SHOWN}
    urls["rocket_copy"] = f"{base}/rocket_copy.jpg"
    urls["blocked"] = f"{base}/blocked.png"
    blocked = hashlib.sha256(urls["blocked"].encode()).hexdigest()
    other = hashlib.sha256(b"https://example.com/unrelated.jpg").hexdigest()
    (lists / "url_sha256.txt").write_text(f"# Re-LAION style list\n{other}\n\n{blocked}\n")
    bad_pdq = pdq_hash(np.asarray(photos.photo("rocket")))[0]
    (lists / "pdq.txt").write_text(f"{bad_pdq},100\n{'0' * 64}\n")
    root = tmp_path_factory.mktemp("photos-run")
    recipe = part_recipe(
        root,
        list(urls.values()),
        **{
            "download.image_size": 512,
            "download.resize_mode": "keep_ratio",
            "download.resize_only_if_bigger": True,
            "clip.device": "cpu",
            "safety.hashlists.url_hashes": str(lists / "url_sha256.txt"),
            "safety.hashlists.pdq": str(lists / "pdq.txt"),
            "safety.blur_faces": True,
        },
    )
    done = download.run(recipe, 0)
    cfg = root / "scores.yaml"
    cfg.write_text(
        "models: [nsfw-image, faces, text-area, pdq]\n"
        f"postprocess_columns: [{', '.join(COLUMNS)}]\n"
        "additional_fields: [url]\nbatch_size: 4\n"
    )
    recipe = recipe.model_copy(update={"scores": str(cfg)})
    assert scores.run(recipe, 0)["rows"] == len(SHOWN)
    table = pd.read_parquet(f"{recipe.dataset_root}/scores/part_00000/scores.parquet")
    by_name = {
        n: table[table["url"] == u].iloc[0] for n, u in urls.items() if u in set(table["url"])
    }
    return {"recipe": recipe, "download": done, "table": table, "rows": by_name, "urls": urls}


def test_faces_found_in_astronaut_and_cameraman_only(run):
    rows = run["rows"]
    assert rows["astronaut"]["faces"] == 1 and rows["camera"]["faces"] == 1
    for name in ("chelsea", "coffee", "page", "text"):
        assert rows[name]["faces"] == 0 and len(rows[name]["face_boxes"]) == 0, name
    x0, y0, x1, y1 = rows["astronaut"]["face_boxes"][0]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512  # pixels of the stored image


def test_text_area_high_on_text_images_and_zero_on_the_cat(run):
    rows = run["rows"]
    assert rows["page"]["text_area"] > 0.3 and "segmentation" in rows["page"]["text"]
    assert rows["text"]["text_area"] > 0.05
    assert rows["chelsea"]["text_area"] == 0 and rows["coffee"]["text_area"] == 0
    assert rows["chelsea"]["text"] == ""


def test_nsfw_low_on_every_photo_and_pdq_is_a_hash_with_quality(run):
    table = run["table"]
    assert (table["nsfw_image"] < 0.2).all(), table[["url", "nsfw_image"]]
    assert all(len(c) == 0 for c in table["nsfw_classes"])
    assert table["pdq"].str.fullmatch("[0-9a-f]{64}").all()
    assert (table["pdq_quality"] >= 50).all()


def test_planted_url_hash_blocked_and_pdq_near_copy_quarantined_nothing_else(run):
    done, recipe = run["download"], run["recipe"]
    assert done["blocked_hashlist"] == 1 and done["quarantined"] == 1
    assert done["successes"] == len(SHOWN) and done["failed_total"] == 0
    assert set(run["rows"]) == set(SHOWN)  # neither reaches the scores (nor anything later)
    quarantine = f"{recipe.dataset_root}/quarantine/part_00000"
    reasons = [fs.read_json(p) for p in fs.ls(quarantine) if p.endswith(".reason.json")]
    assert [r["list"] for r in reasons] == ["pdq"]
    shard = pd.read_parquet(f"{recipe.dataset_root}/images/part_00000/00000.parquet")
    assert shard["url"].tolist().count(run["urls"]["blocked"]) == 0
    q = shard[shard["status"] == "quarantined"]
    assert q["url"].tolist() == [run["urls"]["rocket_copy"]]


def test_blurred_shards_differ_only_inside_face_boxes(run):
    recipe, rows = run["recipe"], run["rows"]
    summary = blur.run(recipe, 0)
    assert summary["blurred"] == 2 and summary["samples"] == len(SHOWN)
    index = open(summary["stats_csv"]).read().splitlines()
    assert index[0] == "tar_path,samples,blurred" and index[1].endswith(f",{len(SHOWN)},2")
    root = recipe.dataset_root

    def read(path):
        return {s["__key__"]: s for s in wds.WebDataset(f"file:{path}", shardshuffle=False)}

    original = read(f"{root}/images/part_00000/00000.tar")
    blurred = read(f"{root}/blurred/part_00000/00000.tar")
    assert set(original) == set(blurred)
    for name, row in rows.items():
        a = np.asarray(samples.open_image(samples.image_bytes(original[row["key"]])), np.int16)
        b = np.asarray(samples.open_image(samples.image_bytes(blurred[row["key"]])), np.int16)
        inside = np.zeros(a.shape[:2], bool)
        for box in row["face_boxes"]:
            x0, y0, x1, y1 = box_region(box, (a.shape[1], a.shape[0]))
            inside[y0:y1, x0:x1] = True
        changed = np.abs(a - b).sum(-1) > 0
        assert not (changed & ~inside).any(), name
        assert changed[inside].mean() > 0.5 if inside.any() else not changed.any(), name
