"""fsspec caches one S3 file system per constructor arguments: laionflow passes the
environment's endpoint and keys explicitly, so a process whose AWS_* change (another
connection, rotated keys) never keeps using the old ones. Found when a test that read a
SeaweedFS root left a cached instance that the next test's S3 run reused."""

from __future__ import annotations

from laionflow import fs


def _env(monkeypatch, port: int, key: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key + "-secret")


def test_a_changed_endpoint_gets_its_own_file_system(monkeypatch):
    _env(monkeypatch, 9001, "KEYA")
    first, path = fs.filesystem("s3://bucket/root/x.json")
    assert path == "bucket/root/x.json"
    assert first.endpoint_url == "http://127.0.0.1:9001" and first.key == "KEYA"
    _env(monkeypatch, 9002, "KEYB")
    second, _ = fs.filesystem("s3://bucket/root/x.json")
    assert second is not first
    assert second.endpoint_url == "http://127.0.0.1:9002" and second.key == "KEYB"
    _env(monkeypatch, 9001, "KEYA")
    assert fs.filesystem("s3://bucket/other")[0] is first  # same settings: the cached one


def test_local_paths_get_no_s3_options(monkeypatch, tmp_path):
    _env(monkeypatch, 9001, "KEYA")
    assert fs.storage_options(str(tmp_path)) == {}
    (tmp_path / "a.txt").write_text("x")
    with fs.open(str(tmp_path / "a.txt")) as fh:
        assert fh.read() == b"x"
