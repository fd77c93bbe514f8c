"""``laionflow up``'s pieces without the services: every recipe's own ``hf://`` metadata URLs
resolve, through the fixture server's Hub emulation, to that recipe's fixture corpus (so each
trigger form runs as it stands), the site defaults load as recipe overrides, and one root
takes one ``up`` (the lock). The running services are tested in ``test_browser.py``."""

from __future__ import annotations

import pytest

from laionflow.up import FIXTURES, AlreadyRunning, build_fixtures, lock, site_defaults


def test_each_recipes_own_metadata_urls_resolve_to_its_fixture(tmp_path, monkeypatch):
    import io

    import pandas as pd
    import requests

    from laionflow.jobs.metadata import resolve_urls
    from laionflow.recipes import load_recipe
    from laionflow.testing.corpus import FLAVOURS
    from laionflow.testing.server import FixtureServer

    with FixtureServer(tmp_path / "fixture") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.base_url)
        files = build_fixtures(tmp_path / "fixture", server.base_url, rows=120)
        assert all(len(f) >= 2 for f in files.values())
        site = site_defaults(tmp_path, "/models/tiny.pt", parts=3)
        for recipe, spec in FIXTURES.items():
            config = load_recipe(recipe, site)
            assert config.dataset_root == f"{tmp_path}/data/{recipe}"
            assert config.filter.num_parts == 3 and config.clip.pretrained == "/models/tiny.pt"
            urls = resolve_urls(config.metadata.urls)  # the recipe's own hf:// URLs
            assert len(urls) >= 2 and len(set(urls)) == len(urls)
            resp = requests.get(urls[-1], timeout=30)
            resp.raise_for_status()
            frame = pd.read_parquet(io.BytesIO(resp.content))
            flavour = spec.get("flavour", "laion400m")
            assert list(frame.columns) == list(FLAVOURS[flavour])
            assert frame["URL"].str.startswith(f"{server.base_url}/{recipe}/images/").all()
            if getattr(config.metadata, "prefiltered_urls", None):  # SD 2.1's filtered set
                assert resolve_urls(config.metadata.prefiltered_urls)


def test_one_up_per_root(tmp_path):
    held = lock(tmp_path)
    try:
        with pytest.raises(AlreadyRunning, match="already running"):
            lock(tmp_path)
    finally:
        held.close()
    lock(tmp_path).close()  # free again once the holder is gone
