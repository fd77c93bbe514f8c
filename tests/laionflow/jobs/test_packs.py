from pathlib import Path

import pandas as pd

from laionflow.jobs import packs
from laionflow.recipes import load_recipe
from laionflow.testing.packs import build_repo, malicious_pack


def test_malicious_members_are_refused_and_reported(tmp_path):
    names = malicious_pack(tmp_path / "evil.tar")
    dest = tmp_path / "box" / "target"
    dest.mkdir(parents=True)
    before = set(tmp_path.rglob("*"))
    report = packs.safe_extract(str(tmp_path / "evil.tar"), str(dest))
    assert sorted(r["member"] for r in report["rejected"]) == sorted(names)
    assert report["extracted"] == 0
    assert set(tmp_path.rglob("*")) - before == set()  # nothing written anywhere
    assert not Path("/tmp/laionflow-absolute.txt").exists()


def test_fetch_extract_index_against_the_hub_emulation(fixture_server, tmp_path):
    repo = build_repo(fixture_server.root, repo="t/packs-unit", images=30, packs=3)
    recipe = load_recipe(
        "laion6m",
        {
            "root": str(tmp_path),
            "source": "prepackaged",
            "prepackaged.repo": "t/packs-unit",
            "prepackaged.endpoint": fixture_server.base_url,
            "prepackaged.workers": 2,
        },
    )
    assert packs.fetch(recipe)["files"] == 3 + 1 + 3 + 1  # raw (+evil), captions, data.json
    extracted = packs.extract(recipe)
    assert {r["member"] for r in extracted["rejected"]} == set(repo["bad_members"])
    summary = packs.index(recipe)
    assert summary["entries"] == repo["entries"] and summary["balanced"]
    assert summary["ok"] == 30
    assert summary["problems"] == {"corrupt_image": 1, "missing_image": 1}
    index = pd.read_parquet(tmp_path / "laion6m" / "packs" / "index.parquet")
    assert len(index) == 30 and index["caption"].str.startswith("picture number").all()
    assert not (tmp_path / "laion6m" / "packs" / "escape.txt").exists()


def test_start_end_select_a_range_of_packs(fixture_server, tmp_path):
    build_repo(fixture_server.root, repo="t/packs-range", images=30, packs=3, malicious=False)
    recipe = load_recipe(
        "laion6m",
        {
            "root": str(tmp_path),
            "source": "prepackaged",
            "prepackaged.repo": "t/packs-range",
            "prepackaged.endpoint": fixture_server.base_url,
            "prepackaged.start": 1,
            "prepackaged.end": 2,
        },
    )
    assert packs.fetch(recipe)["files"] == 1 + 1 + 1
    packs.extract(recipe)
    summary = packs.index(recipe)
    assert summary["ok"] == 10  # only pack 1's images resolve
