"""A laion6m-style prepackaged Hugging Face dataset repo for tests and demos: ``raw/*.tar``
image packs, ``captions/*.tar`` caption packs and ``data.json``, served by the fixture
server's Hub emulation. Optionally a malicious pack and entries that must not verify."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from laionflow.testing.corpus import _image_bytes


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def malicious_pack(path: Path) -> list[str]:
    """A tar whose every member tries to escape; returns the member names."""
    names = []
    with tarfile.open(path, "w") as tar:
        for name in ("../escape.txt", "/tmp/laionflow-absolute.txt"):
            _add(tar, name, b"pwned")
            names.append(name)
        link = tarfile.TarInfo("images/link-out.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../../../etc/passwd"
        tar.addfile(link)
        dev = tarfile.TarInfo("images/dev")
        dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(dev)
        names += [link.name, dev.name]
    return names


def build_repo(
    server_root: str | Path,
    repo: str = "test/laion6m",
    images: int = 40,
    packs: int = 2,
    seed: int = 0,
    malicious: bool = True,
) -> dict:
    base = Path(server_root) / "hf" / repo
    (base / "raw").mkdir(parents=True, exist_ok=True)
    (base / "captions").mkdir(parents=True, exist_ok=True)
    entries = []
    per = -(-images // packs)
    for p in range(packs):
        with (
            tarfile.open(base / "raw" / f"{p:05d}.tar", "w") as raw,
            tarfile.open(base / "captions" / f"{p:05d}.tar", "w") as caps,
        ):
            for i in range(p * per, min(images, (p + 1) * per)):
                data = _image_bytes(np.random.default_rng([seed, i]), 48, 40, "jpeg")
                _add(raw, f"images/{i:06d}.jpg", data)
                _add(caps, f"captions/{i:06d}.txt", f"picture number {i}".encode())
                entries.append(
                    {"image": f"images/{i:06d}.jpg", "caption_file": f"captions/{i:06d}.txt"}
                )
            if p == 0:  # one undecodable image, listed in the index
                _add(raw, "images/corrupt.jpg", b"\xff\xd8 not really a jpeg")
    entries.append({"image": "images/corrupt.jpg", "caption": "broken"})
    entries.append({"image": "images/never-packed.jpg", "caption": "missing"})
    bad = malicious_pack(base / "raw" / f"{packs:05d}-evil.tar") if malicious else []
    (base / "data.json").write_text(json.dumps(entries))
    return {"repo": repo, "entries": len(entries), "good": images, "bad_members": bad}
