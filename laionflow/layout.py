"""Where each artefact lives under a dataset root.

Other tools read these paths (img2dataset's shard layout, clip-retrieval's embedding layout,
``clip back``'s index layout), so they are fixed here once and nowhere else: stages ask this
module for every path (local or ``s3://``) and for the part id in a name, never spell them.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

#: the names that carry a part id: a part's folder (``part_00001``), a filtered metadata part
#: (``part-00001.parquet``, Spark's spelling) and Spark's partition folder (``_part=1``)
_PART_NAMES = re.compile(r"^(?:part_(\d{5,})|part-(\d{5,})\.parquet|_part=(\d+))$")


def part_name(part: int) -> str:
    """``part_00001`` — the readable name used for folders, annotation files and map indices."""
    return f"part_{part:05d}"


def part_id(path: str) -> int | None:
    """The part id of a part folder, filtered part or Spark partition folder (by its last
    path element); None for any other name (``part_00001_stats.csv`` included)."""
    m = _PART_NAMES.match(path.rstrip("/").rsplit("/", 1)[-1])
    return None if m is None else int(next(g for g in m.groups() if g is not None))


def parse_parts(spec: str) -> list[int]:
    """``"3-7,12"`` → ``[3, 4, 5, 6, 7, 12]`` (sorted, unique); bad input raises ValueError."""
    parts: set[int] = set()
    for item in filter(None, (s.strip() for s in spec.split(","))):
        if "-" in item:
            lo, hi = (int(x) for x in item.split("-", 1))
            if lo > hi or lo < 0:
                raise ValueError(f"bad part range {item!r}")
            parts.update(range(lo, hi + 1))
        else:
            if int(item) < 0:
                raise ValueError(f"bad part id {item!r}")
            parts.add(int(item))
    if not parts:
        raise ValueError(f"no part ids in {spec!r}")
    return sorted(parts)


def shard_path(folder: str, shard: int, suffix: str) -> str:
    """A file of img2dataset shard ``shard`` in a part folder: ``suffix`` is ``.tar``,
    ``.parquet``, ``_stats.json``..."""
    return f"{folder}/{shard:05d}{suffix}"


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

    def part_buckets(self, part: int) -> str:
        """Aspect-ratio bucket of each sample of a part (recipe ``buckets``)."""
        return self._join("images", f"{part_name(part)}_buckets.parquet")

    def download_summary(self, part: int) -> str:
        return self._join("images", f"{part_name(part)}_summary.json")

    def optout_table(self, part: int) -> str:
        return self._join("images", f"{part_name(part)}_optout.json")

    def repairs_ledger(self, part: int) -> str:
        return self._join("images", f"{part_name(part)}_repairs.json")

    def embeddings_part(self, part: int) -> str:
        return self._join("embeddings", part_name(part))

    def embeddings_done(self, part: int) -> str:
        return self._join("embeddings", part_name(part), "_done.json")

    def embedding_batch(self, part: int, batch: int) -> dict[str, str]:
        """The three files of one embedding batch (clip-retrieval's names)."""
        base = self.embeddings_part(part)
        return {
            "img": f"{base}/img_emb/img_emb_{batch}.npy",
            "txt": f"{base}/text_emb/text_emb_{batch}.npy",
            "meta": f"{base}/metadata/metadata_{batch}.parquet",
        }

    @property
    def captions(self) -> str:
        return self._join("captions")

    def captions_part(self, part: int) -> str:
        return self._join("captions", part_name(part))

    def captions_table(self, part: int) -> str:
        """One row per downloaded sample: the recaption stage's merged output."""
        return self._join("captions", part_name(part), "captions.parquet")

    def captions_chunk(self, part: int, shard: int, chunk: int) -> str:
        """``chunk`` (``recaption.chunk_size`` samples in tar order) of a shard's captions."""
        return self._join("captions", part_name(part), "chunks", f"{shard:05d}_{chunk:05d}.parquet")

    def captions_done(self, part: int) -> str:
        return self._join("captions", part_name(part), "_done.json")

    def openuni(self, sub: str = "") -> str:
        """OpenUni's laion6m layout: ``raw/`` (images), ``captions/`` (one json per image),
        ``data.json`` (``image``/``annotation`` paths relative to those folders)."""
        return self._join("export", "openuni", sub) if sub else self._join("export", "openuni")

    @property
    def embeddings(self) -> str:
        return self._join("embeddings")

    @property
    def scores(self) -> str:
        return self._join("scores")

    def scores_part(self, part: int) -> str:
        return self._join("scores", part_name(part))

    def gated_part(self, part: int) -> str:
        """The filtered part less the rows a known-bad URL list blocks (download's input)."""
        return self._join("metadata", "gated", f"part-{part:05d}.parquet")

    def quarantine_part(self, part: int) -> str:
        """Samples a known-bad image hash list matched after download, for an operator."""
        return self._join("quarantine", part_name(part))

    def blurred_part(self, part: int) -> str:
        """Face-blurred copies of a part's shards (same shard names and keys)."""
        return self._join("blurred", part_name(part))

    def blurred_done(self, part: int) -> str:
        """The blur stage's summary of a part, written last: the shards it covers."""
        return self._join("blurred", part_name(part), "_done.json")

    @property
    def kept_scores(self) -> str:
        return self._join("scores", "kept.parquet")

    @property
    def kept_summary(self) -> str:
        return self._join("scores", "_kept_summary.json")

    @property
    def score_shards(self) -> str:
        return self._join("scores", "shards")

    @property
    def dedup(self) -> str:
        return self._join("dedup")

    @property
    def dedup_summary(self) -> str:
        return self._join("dedup", "_summary.json")

    @property
    def index(self) -> str:
        return self._join("index")

    @property
    def index_summary(self) -> str:
        return index_files(self.index)["summary"]

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

    def done_parts(self, folder: str, marker: str = "_done.json") -> list[int]:
        """Parts with a finished ``folder/part_NNNNN/<marker>`` (embeddings, scores...)."""
        from laionflow import fs

        found = ((part_id(p), p) for p in fs.ls(folder))
        return sorted(p for p, path in found if p is not None and fs.exists(f"{path}/{marker}"))


def index_files(folder: str) -> dict[str, str]:
    """The files of a built index in ``folder`` (``clip back``'s layout): ``{image,text}``
    (faiss), ``{image,text}_infos`` (autofaiss's tuned parameters), ``model`` (the CLIP model
    of the vectors), ``metadata`` (a folder: row i of its files in name order = vector i) and
    ``summary``. The index stage writes them in a work folder, the query service reads them."""
    files = {f"{k}_infos": f"{folder}/{k}_infos.json" for k in ("image", "text")}
    return {
        "image": f"{folder}/image.index",
        "text": f"{folder}/text.index",
        **files,
        "model": f"{folder}/model.json",
        "metadata": f"{folder}/metadata",
        "summary": f"{folder}/_summary.json",
    }


def index_metadata(folder: str, part: int) -> str:
    return f"{folder}/metadata/metadata_{part:05d}.parquet"


def stage_summary(config_path: str, stage: str) -> str:
    """Where a Spark stage publishes its summary for the operator: next to the run's config
    (``runs/<run>/summaries/<stage>.json``), so any deploy mode of the driver reaches it."""
    return f"{config_path.rpartition('/')[0] or '.'}/summaries/{stage}.json"
