"""Known-bad hash lists (Re-LAION-5B's idea): read once per part, matched in memory.

Formats (plain text, local or ``s3://``; one entry a line, ``#`` comments, blanks ignored):

* ``urls`` — URLs, matched exactly;
* ``url_hashes`` — hex digests of the URL's UTF-8 bytes; MD5 (32), SHA-1 (40) or SHA-256 (64
  hex digits), told apart by length, so one file may mix them;
* ``md5`` / ``sha256`` — hex digests of the stored image file's bytes;
* ``pdq`` — 64-hex PDQ hashes, optionally followed by ``,quality`` (ignored); a stored image
  matches when its PDQ is within ``pdq_distance`` bits (Hamming) of an entry.

Only counts and list names are logged, never entries (lists can be sensitive).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from laionflow import fs
from laionflow.safety.config import HashLists

_URL_DIGESTS = {32: "md5", 40: "sha1", 64: "sha256"}


def read_entries(path: str) -> list[str]:
    """Entries of a list file: stripped, lower-cased hex kept as is for URLs."""
    with fs.open(path, "r") as fh:
        lines = [line.split("#", 1)[0].strip() for line in fh]
    return [line for line in lines if line]


@dataclass
class Lists:
    urls: set[str] = field(default_factory=set)
    url_hashes: dict[str, set[str]] = field(default_factory=dict)  # algorithm -> digests
    md5: set[str] = field(default_factory=set)
    sha256: set[str] = field(default_factory=set)
    pdq: np.ndarray = field(default_factory=lambda: np.zeros((0, 32), np.uint8))
    pdq_distance: int = 31

    def sizes(self) -> dict[str, int]:
        """Entries per list, for the log and the summary."""
        return {
            "urls": len(self.urls),
            "url_hashes": sum(len(v) for v in self.url_hashes.values()),
            "md5": len(self.md5),
            "sha256": len(self.sha256),
            "pdq": len(self.pdq),
        }

    def url_blocked(self, url: str) -> bool:
        if url in self.urls:
            return True
        raw = url.encode("utf-8")
        return any(
            hashlib.new(algo, raw).hexdigest() in digests
            for algo, digests in self.url_hashes.items()
        )

    def image_match(self, data: bytes, pdq_hex: str | None = None) -> str | None:
        """Which list an image file matches (``md5``, ``sha256``, ``pdq``) or None."""
        if self.md5 and hashlib.md5(data).hexdigest() in self.md5:
            return "md5"
        if self.sha256 and hashlib.sha256(data).hexdigest() in self.sha256:
            return "sha256"
        if len(self.pdq) and pdq_hex is not None:
            return "pdq" if pdq_distance(self.pdq, pdq_hex).min() <= self.pdq_distance else None
        return None


def pdq_distance(table: np.ndarray, pdq_hex: str) -> np.ndarray:
    """Hamming distances between one PDQ (hex) and every row of ``table`` (n×32 bytes)."""
    one = np.frombuffer(bytes.fromhex(pdq_hex), np.uint8)
    return np.unpackbits(np.bitwise_xor(table, one), axis=1).sum(axis=1)


def load(cfg: HashLists) -> Lists:
    """Read every configured list; a bad entry fails naming the file and line, not the entry."""
    out = Lists(pdq_distance=cfg.pdq_distance)
    if cfg.urls:
        out.urls = set(read_entries(cfg.urls))
    if cfg.url_hashes:
        for n, entry in enumerate(read_entries(cfg.url_hashes), 1):
            algo = _URL_DIGESTS.get(len(entry))
            if algo is None or not _is_hex(entry):
                raise ValueError(f"{cfg.url_hashes}: entry {n} is not an md5/sha1/sha256 digest")
            out.url_hashes.setdefault(algo, set()).add(entry.lower())
    for name, size in (("md5", 32), ("sha256", 64)):
        path = getattr(cfg, name)
        if path:
            entries = [e.lower() for e in read_entries(path)]
            bad = [n for n, e in enumerate(entries, 1) if len(e) != size or not _is_hex(e)]
            if bad:
                raise ValueError(f"{path}: entry {bad[0]} is not a {name} hex digest")
            setattr(out, name, set(entries))
    if cfg.pdq:
        rows = [e.split(",", 1)[0].strip().lower() for e in read_entries(cfg.pdq)]
        bad = [n for n, e in enumerate(rows, 1) if len(e) != 64 or not _is_hex(e)]
        if bad:
            raise ValueError(f"{cfg.pdq}: entry {bad[0]} is not a 64-hex PDQ hash")
        out.pdq = np.array([np.frombuffer(bytes.fromhex(e), np.uint8) for e in rows], np.uint8)
        out.pdq = out.pdq.reshape(len(rows), 32)
    return out


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True
