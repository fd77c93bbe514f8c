"""The HTTP query service, run as ``laionflow serve`` on 127.0.0.1, answers text and image
queries exactly as ``laionflow query`` does."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import webdataset as wds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(pipeline):
    index = f"{pipeline['recipe'].dataset_root}/index"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "laionflow", "serve", index, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2)
            break
        except OSError:
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.2)
    yield base, index
    proc.terminate()
    proc.wait(timeout=30)


def _cli(index: str, *args: str) -> list[tuple[int, float]]:
    out = subprocess.run(
        [sys.executable, "-m", "laionflow", "query", index, *args, "-k", "5"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [(int(line.split()[0]), float(line.split()[1])) for line in out.splitlines() if line]


def test_text_query_agrees_with_the_cli(service):
    base, index = service
    hits = json.load(
        urllib.request.urlopen(f"{base}/query?text={urllib.parse.quote('a red cat')}&k=5")
    )["hits"]
    assert len(hits) == 5 and all(h["url"] and h["caption"] for h in hits)
    cli = _cli(index, "a red cat")
    assert [h["id"] for h in hits] == [i for i, _ in cli]
    assert [round(h["distance"], 4) for h in hits] == [d for _, d in cli]


def test_image_query_finds_the_image_itself_and_agrees_with_the_cli(service, pipeline, tmp_path):
    base, index = service
    root = pipeline["recipe"].dataset_root
    sample = next(
        iter(
            wds.WebDataset(
                f"file:{root}/images/part_00000/00000.tar", shardshuffle=False, empty_check=False
            )
        )
    )
    (tmp_path / "q.jpg").write_bytes(sample["jpg"])
    req = urllib.request.Request(f"{base}/query/image?k=5", data=sample["jpg"], method="POST")
    hits = json.load(urllib.request.urlopen(req))["hits"]
    assert hits[0]["key"] == sample["__key__"]
    assert [h["id"] for h in hits] == [
        i for i, _ in _cli(index, "--image", str(tmp_path / "q.jpg"))
    ]


def test_bad_requests_get_400_or_422(service):
    base, _ = service
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(
            urllib.request.Request(f"{base}/query/image", data=b"not an image", method="POST")
        )
    assert err.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/query?k=5")
    assert err.value.code == 422
