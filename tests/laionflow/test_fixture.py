import io

import pandas as pd
import requests
from PIL import Image

from laionflow.testing.corpus import CorpusSpec, build_corpus
from laionflow.testing.server import Fault, FixtureServer


def test_corpus_is_deterministic_and_has_the_planted_cases(tmp_path):
    with FixtureServer(tmp_path / "a") as srv:
        a = build_corpus(tmp_path / "a", srv.base_url, CorpusSpec(rows=120, parts=2, seed=3))
    b = build_corpus(tmp_path / "b", "http://127.0.0.1:1", CorpusSpec(rows=120, parts=2, seed=3))
    assert a.rows == b.rows == 120 + a.duplicates
    assert a.dead_urls == b.dead_urls > 0
    pq_part = pd.read_parquet(a.metadata_files[0])
    csv_part = pd.read_csv(a.metadata_files[1])
    assert {
        "URL",
        "TEXT",
        "WIDTH",
        "HEIGHT",
        "similarity",
        "punsafe",
        "pwatermark",
        "NSFW",
        "hash",
        "LICENSE",
    } <= set(pq_part.columns)
    assert {"url", "caption", "width", "height"} <= set(csv_part.columns)
    both = pd.concat([pq_part.rename(columns={"URL": "url", "TEXT": "caption"}), csv_part])
    assert both.duplicated(["url", "caption"]).sum() == a.duplicates
    images = sorted((tmp_path / "a" / "images").iterdir())
    assert [p.name for p in images] == sorted(p.name for p in (tmp_path / "b" / "images").iterdir())
    assert {p.suffix for p in images} == {".jpg", ".png", ".webp"}


def test_server_serves_ranges_faults_and_404_on_loopback(tmp_path):
    (tmp_path / "f.bin").write_bytes(bytes(range(100)))
    img = io.BytesIO()
    Image.new("L", (10, 20)).save(img, "JPEG")
    (tmp_path / "g.jpg").write_bytes(img.getvalue())
    with FixtureServer(tmp_path) as srv:
        assert srv.server_address[0] == "127.0.0.1"
        full = requests.get(f"{srv.base_url}/f.bin", timeout=5)
        assert full.content == bytes(range(100))
        part = requests.get(f"{srv.base_url}/f.bin", headers={"Range": "bytes=40-"}, timeout=5)
        assert part.status_code == 206 and part.content == bytes(range(40, 100))
        assert requests.get(f"{srv.base_url}/missing.jpg", timeout=5).status_code == 404
        assert requests.get(f"{srv.base_url}/../etc/passwd", timeout=5).status_code == 404
        srv.faults["/g.jpg"] = Fault(kind="status", status=503, times=1)
        assert requests.get(f"{srv.base_url}/g.jpg", timeout=5).status_code == 503
        ok = requests.get(f"{srv.base_url}/g.jpg", timeout=5)
        assert ok.status_code == 200 and ok.headers["Content-Type"] == "image/jpeg"
        assert srv.hits["/g.jpg"] == 2
