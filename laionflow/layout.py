"""Where each artefact lives under a dataset root.

Other tools read these paths (img2dataset's shard layout, clip-retrieval's embedding layout,
``clip back``'s index layout), so they are fixed here once and nowhere else.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass


def part_name(part: int) -> str:
    """``part_00001`` — the readable name used for folders, annotation files and map indices."""
    return f"part_{part:05d}"


@dataclass(frozen=True)
class Layout:
    """Paths of every artefact under ``root`` (a local path or an ``s3://`` URL)."""

    root: str

    def _join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    @property
    def raw_metadata(self) -> str:
        return self._join("metadata", "raw")

    @property
    def filtered_metadata(self) -> str:
        return self._join("metadata", "filtered")

    def filtered_part(self, part: int) -> str:
        return self._join("metadata", "filtered", f"part-{part:05d}.parquet")

    @property
    def filter_stats(self) -> str:
        return self._join("metadata", "filtered", "_filter_stats.json")

    @property
    def metadata_stats(self) -> str:
        return self._join("metadata", "raw", "_metadata_stats.json")

    @property
    def images(self) -> str:
        return self._join("images")

    def images_part(self, part: int) -> str:
        return self._join("images", part_name(part))

    def part_stats_csv(self, part: int) -> str:
        return self._join("images", f"{part_name(part)}_stats.csv")

    def part_files_csv(self, part: int) -> str:
        return self._join("images", f"{part_name(part)}.csv")

    def download_summary(self, part: int) -> str:
        return self._join("images", f"{part_name(part)}_summary.json")

    def repairs_ledger(self, part: int) -> str:
        return self._join("images", f"{part_name(part)}_repairs.json")

    def embeddings_part(self, part: int) -> str:
        return self._join("embeddings", part_name(part))

    @property
    def embeddings(self) -> str:
        return self._join("embeddings")

    @property
    def index(self) -> str:
        return self._join("index")

    @property
    def report(self) -> str:
        return self._join("report")

    @property
    def summary(self) -> str:
        return self._join("summary.json")

    @property
    def runs(self) -> str:
        return self._join("runs")

    def run_dir(self, run_id: str) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
        return posixpath.join(self.runs, safe)
