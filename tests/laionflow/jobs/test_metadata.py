import os

import pytest

from laionflow.jobs import metadata
from laionflow.recipes import load_recipe
from laionflow.testing.server import Fault, FixtureServer


@pytest.fixture
def served(tmp_path):
    (tmp_path / "srv").mkdir()
    payload = os.urandom(300_000)
    (tmp_path / "srv" / "part-00000.parquet").write_bytes(payload)
    with FixtureServer(tmp_path / "srv") as srv:
        yield srv, payload


def test_truncated_body_is_resumed_with_a_range_request(served, tmp_path):
    srv, payload = served
    srv.faults["/part-00000.parquet"] = Fault(kind="truncate", fraction=0.4, times=1)
    dest = tmp_path / "out.parquet"
    size = metadata.fetch(f"{srv.base_url}/part-00000.parquet", str(dest), retries=3, backoff_s=0)
    assert size == len(payload) and dest.read_bytes() == payload
    assert srv.hits["/part-00000.parquet"] == 2  # one truncated, one ranged completion
    assert not list(tmp_path.glob(".*partial"))


def test_server_errors_are_retried_then_succeed(served, tmp_path):
    srv, payload = served
    srv.faults["/part-00000.parquet"] = Fault(kind="status", status=503, times=2)
    metadata.fetch(
        f"{srv.base_url}/part-00000.parquet", str(tmp_path / "x"), retries=3, backoff_s=0
    )
    assert (tmp_path / "x").read_bytes() == payload
    assert srv.hits["/part-00000.parquet"] == 3


def test_404_fails_fast_with_the_url_and_publishes_nothing(served, tmp_path):
    srv, _ = served
    with pytest.raises(metadata.MetadataDownloadError, match="missing.parquet.*404"):
        metadata.fetch(
            f"{srv.base_url}/missing.parquet", str(tmp_path / "m"), retries=5, backoff_s=0
        )
    assert srv.hits["/missing.parquet"] == 1
    assert not (tmp_path / "m").exists()


def test_exhausted_retries_leave_no_published_file(served, tmp_path):
    srv, _ = served
    srv.faults["/part-00000.parquet"] = Fault(kind="truncate", fraction=0.5, times=-1)
    with pytest.raises(metadata.MetadataDownloadError):
        metadata.fetch(
            f"{srv.base_url}/part-00000.parquet", str(tmp_path / "p"), retries=1, backoff_s=0
        )
    assert not (tmp_path / "p").exists()


def test_run_downloads_every_part_once_and_skips_on_rerun(corpus, fixture_server, tmp_path):
    recipe = load_recipe(
        "laion400m", {"root": str(tmp_path), "metadata.urls": corpus.metadata_urls}
    )
    first = metadata.run(recipe)
    assert first["files"] == 2 and first["skipped"] == 0
    raw = sorted(p.name for p in (tmp_path / "laion400m" / "metadata" / "raw").iterdir())
    assert raw == [
        "00000-part-00000.snappy.parquet",
        "00001-part-00001.csv",
        "_metadata_stats.json",
    ]
    before = dict(fixture_server.hits)
    second = metadata.run(recipe)
    assert second["skipped"] == 2 and second["bytes"] == first["bytes"]
    assert fixture_server.hits == before  # nothing fetched again
