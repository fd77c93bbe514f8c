"""Semantic dedup finds every planted near-duplicate group (an image, its exact copy, its
resized copy — each at its own URL with its own caption) and no group among distinct images.

With the tests' random-weight CLIP, planted copies score ≥ 0.998 after centring and the closest
distinct images (two tall thin pictures, mostly border padding at 256 px) 0.990, hence the
threshold 0.995 here."""

from __future__ import annotations

import pandas as pd
import pytest

from laionflow import fs
from laionflow.jobs import download, embed, metadata, semdedup
from laionflow.jobs.filter import run_spark
from laionflow.recipes import load_recipe
from laionflow.testing.corpus import CorpusSpec, build_corpus
from tests.helpers import small_overrides


@pytest.fixture(scope="module")
def dedup_run(tmp_path_factory, fixture_server, spark, checkpoint):
    work = tmp_path_factory.mktemp("semdedup")
    fixture_dir = fixture_server.root / "semdedup"
    corpus = build_corpus(
        fixture_dir,
        f"{fixture_server.base_url}/semdedup",
        CorpusSpec(rows=200, parts=1, seed=21, near_duplicates=6, dead_fraction=0.02),
    )
    recipe = load_recipe(
        "laion400m",
        small_overrides(
            work, corpus, checkpoint, **{"filter.num_parts": 1, "dedup.threshold": 0.995}
        ),
    )
    metadata.run(recipe)
    run_spark(spark, recipe)
    download.run(recipe, 0)
    embed.run(recipe, 0)
    summary = semdedup.run(recipe)
    found = pd.read_parquet(f"{recipe.dataset_root}/dedup/semantic_duplicates.parquet")
    return corpus, recipe, summary, found


def test_every_planted_group_is_found_and_nothing_else(dedup_run):
    corpus, _, summary, found = dedup_run
    got = sorted(sorted(g["url"]) for _, g in found.groupby("group"))
    want = sorted(sorted(g) for g in corpus.near_duplicate_groups)
    assert len(want) == 6
    assert got == want
    assert summary["groups"] == 6 and summary["removed"] == 12


def test_one_kept_per_group_the_largest_original(dedup_run):
    _, recipe, _, found = dedup_run
    assert (found.groupby("group")["kept"].sum() == 1).all()
    assert not found[found["kept"]]["url"].str.contains("/dupr-").any()  # the resized copy goes
    assert fs.read_json(f"{recipe.dataset_root}/dedup/_summary.json")["removed"] == 12
