"""The seed guides' real sources, by name, on the fixture server's Hub emulation: laion6m's
prepackaged repo ``wusize/laion6m``, the SD 2.1 guide's 64 metadata parts and its already
filtered set ``jasonhuang23/laion2b_en_sd2.1base`` (``metadata.prefiltered``)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from laionflow.jobs import metadata, packs
from laionflow.recipes import load_recipe
from laionflow.testing.server import FixtureServer

SD21 = "ChristophSchuhmann/improved_aesthetics_4.5plus"
SD21_FILTERED = "jasonhuang23/laion2b_en_sd2.1base"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A Hub emulation of its own (these repos carry the real names) as the deployment's
    ``HF_ENDPOINT``."""
    with FixtureServer(tmp_path / "hub") as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.base_url)
        monkeypatch.setenv("LAIONFLOW_FETCH_ALLOW", srv.allow_entry)
        yield srv


def test_laion6m_prepackaged_without_a_repo_fetches_wusize_laion6m(hub, tmp_path):
    from laionflow.testing.packs import build_repo

    repo = build_repo(hub.root, repo="wusize/laion6m", images=6, packs=2, malicious=False)
    recipe = load_recipe("laion6m", {"root": str(tmp_path / "data"), "source": "prepackaged"})
    assert recipe.prepackaged.repo == "wusize/laion6m" and recipe.prepackaged.endpoint is None
    fetched = packs.fetch(recipe)
    assert fetched == {"stage": "pack_fetch", "files": 2 + 2 + 1, "repo": "wusize/laion6m"}
    packs.extract(recipe)
    summary = packs.index(recipe)
    assert summary["balanced"] and summary["entries"] == repo["entries"]


def test_sd21_metadata_is_the_guides_64_parts_in_order(hub):
    repo = hub.root / "hf" / SD21
    repo.mkdir(parents=True)
    for name in [f"2B-en-4.5_{i}.parquet" for i in range(1, 65)] + ["README.md", "other.parquet"]:
        (repo / name).write_bytes(b"")
    urls = metadata.resolve_urls(load_recipe("laion2b_en_sd21").metadata.urls)
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"2B-en-4.5_{i}.parquet" for i in range(1, 65)]
    assert all(f"/datasets/{SD21}/resolve/" in u for u in urls)
    (repo / "2B-en-4.5_7.parquet").unlink()
    with pytest.raises(metadata.MetadataDownloadError, match=r"2B-en-4\.5_7\.parquet"):
        metadata.resolve_urls(load_recipe("laion2b_en_sd21").metadata.urls)


@pytest.mark.parametrize("engine", ["spark", "duckdb"])
def test_sd21_prefiltered_skips_the_filter_and_keeps_the_ledger(hub, engine, request, tmp_path):
    """Both filter engines honour it: the recipe, not the engine, turns the rules off."""
    from laionflow.jobs.filter import run_duckdb, run_spark
    from laionflow.reporting.ledger import build_summary
    from laionflow.testing.corpus import CorpusSpec, build_corpus

    spec = CorpusSpec(
        rows=80, parts=2, seed=5, flavour="laion2b_aesthetics", min_side=300, max_side=760,
        formats=("parquet",),
    )  # fmt: skip
    corpus = build_corpus(tmp_path / "corpus", hub.base_url, spec)
    repo = hub.root / "hf" / SD21_FILTERED
    repo.mkdir(parents=True)
    for path in corpus.metadata_files:
        shutil.copy(path, repo)
    overrides = {
        "root": str(tmp_path / "data"),
        "metadata.prefiltered": True,
        "metadata.backoff_s": 0.05,
        "filter.num_parts": 2,
    }
    recipe = load_recipe("laion2b_en_sd21", overrides)
    assert recipe.metadata.urls == [f"hf://datasets/{SD21_FILTERED}/*.parquet"]
    assert recipe.filter.rules == []
    assert metadata.run(recipe)["files"] == 2  # from the prefiltered repo, not the 64 parts
    if engine == "spark":
        stats = run_spark(request.getfixturevalue("spark"), recipe)
    else:
        stats = run_duckdb(recipe)
    raw = pd.concat(pd.read_parquet(p) for p in corpus.metadata_files)
    assert stats["raw_rows"] == len(raw)
    # no rule ran: what is filtered is only what could never be downloaded
    assert set(stats["filtered"]) <= {"invalid_url", "empty_caption", "invalid_caption"}
    assert stats["duplicates"] == 0  # no verbatim copies in this set: nothing deduplicated
    kept = pd.concat(
        pd.read_parquet(f"{recipe.dataset_root}/metadata/filtered/part-{p:05d}.parquet")
        for p in (0, 1)
    )
    assert (kept["width"] < 512).any() and (kept["aesthetic"] < 4.5).any()
    ledger = build_summary(recipe)["ledger"]
    assert ledger["balanced"] and ledger["not_selected"] == stats["kept"]
