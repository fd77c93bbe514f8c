"""Fast checks of the safety pieces that need no model: list formats, the missing-model
error, score rules counted per rule, bucket choice, the recipe switches' defaults."""

import hashlib

import pandas as pd
import pytest

from laionflow.jobs.scorefilter import apply_rules
from laionflow.recipes import load_recipe
from laionflow.recipes.schema import ScoreRule
from laionflow.safety import detectors
from laionflow.safety.buckets import nearest
from laionflow.safety.config import SD2_BUCKETS, SDXL_BUCKETS, HashLists
from laionflow.safety.hashlists import load
from laionflow.scoring.config import load_config


def test_lists_read_plain_text_with_comments_and_mixed_url_digests(tmp_path):
    url = "https://example.com/a.jpg"
    (tmp_path / "u.txt").write_text(
        f"# comment\n{hashlib.md5(url.encode()).hexdigest()}\n\n"
        f"{hashlib.sha256(b'https://other/b.jpg').hexdigest()}  # trailing\n"
    )
    lists = load(HashLists(url_hashes=str(tmp_path / "u.txt")))
    assert lists.sizes()["url_hashes"] == 2
    assert lists.url_blocked(url) and lists.url_blocked("https://other/b.jpg")
    assert not lists.url_blocked("https://example.com/a.jpg?x")


def test_a_bad_entry_fails_naming_file_and_line_but_not_the_entry(tmp_path):
    (tmp_path / "pdq.txt").write_text(f"{'a' * 64}\nsecret-entry\n")
    with pytest.raises(ValueError) as err:
        load(HashLists(pdq=str(tmp_path / "pdq.txt")))
    assert "pdq.txt: entry 2" in str(err.value) and "secret-entry" not in str(err.value)


def test_md5_and_pdq_distance_matching(tmp_path):
    data = b"image bytes"
    (tmp_path / "md5.txt").write_text(hashlib.md5(data).hexdigest() + "\n")
    near = "f" * 62 + "00"  # 8 bits from all ones
    (tmp_path / "pdq.txt").write_text("f" * 64 + ",90\n")
    lists = load(HashLists(md5=str(tmp_path / "md5.txt"), pdq=str(tmp_path / "pdq.txt")))
    assert lists.image_match(data) == "md5"
    assert lists.image_match(b"other", near) == "pdq"
    lists.pdq_distance = 7
    assert lists.image_match(b"other", near) is None


def test_a_missing_package_or_weights_file_fails_when_the_yaml_loads(tmp_path, monkeypatch):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("models: [pdq]\npostprocess_columns: [pdq]\n")
    monkeypatch.setitem(detectors.REQUIREMENTS, "pdq", ("no_such_pkg", "no-such-pkg==1", None))
    with pytest.raises(detectors.MissingModelError, match="pip install no-such-pkg==1"):
        load_config(str(cfg))
    cfg.write_text("models: [faces]\nfaces_detector: nudenet\n")
    monkeypatch.setitem(detectors.REQUIREMENTS, "faces:nudenet", ("nudenet", "x", "gone.onnx"))
    with pytest.raises(detectors.MissingModelError, match="gone.onnx"):
        load_config(str(cfg))


def test_score_rules_count_each_dropped_sample_under_its_first_failing_rule():
    df = pd.DataFrame(
        {
            "nsfw_image": [0.1, 0.9, 0.9, 0.2, None],
            "faces": [0, 1, 0, 2, 0],
            "text_area": [0.0, 0.5, 0.1, 0.3, 0.0],
        }
    )
    rules = [
        ScoreRule(name="max_nsfw", column="nsfw_image", op="<=", value=0.5),
        ScoreRule(name="no_faces", column="faces", op="==", value=0),
        ScoreRule(name="max_text", column="text_area", op="<=", value=0.2),
    ]
    kept, counts = apply_rules(df, rules)
    assert counts == {"max_nsfw": 3, "no_faces": 1, "max_text": 0}  # a null fails
    assert kept.index.tolist() == [0]


def test_buckets_by_aspect_ratio_and_recipe_defaults():
    assert nearest(512, 512, SD2_BUCKETS) == "512x512"
    assert nearest(1920, 1080, SDXL_BUCKETS) == "1344x768"
    assert nearest(100, 1000, SD2_BUCKETS) == "256x1024" and nearest(0, 5, SD2_BUCKETS) is None
    sd21, laion400m = load_recipe("laion2b_en_sd21"), load_recipe("laion400m")
    assert sd21.buckets is not None and laion400m.buckets is None
    assert not sd21.safety.blur_faces and not sd21.safety.hashlists.pre_download
    assert [r.column for r in sd21.score_filter.rules] == ["nsfw_image"]
    assert load_config(sd21.scores).models == ["nsfw-image", "faces", "text-area", "pdq"]
