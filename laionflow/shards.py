"""Reading a part's img2dataset shards: which are complete, what happened to every URL.

A shard is complete when its ``_stats.json`` exists (img2dataset writes it last). Its parquet
holds one row per input URL — success, or failure with the error message. Repairs append
*patch* shards (higher ids, img2dataset's ``extend`` mode) whose rows carry ``patch_of``: the
key of the original row they retry. The state of a URL is therefore the row of the highest
shard that mentions it; its attempt count is how many shards do.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

from laionflow import fs
from laionflow.web import reasons

PATCH_COLUMN = "patch_of"


class IncompletePartError(RuntimeError):
    """img2dataset finished but some input rows are in no complete shard."""


def reason_of(error_message: str | None) -> str:
    """Short, groupable failure reason from the fixed vocabulary (:mod:`laionflow.web.reasons`)."""
    return reasons.classify(error_message)


def is_retryable(reason: str, retryable: list[str]) -> bool:
    """``http_5xx`` in the list matches every ``http_5NN``."""
    return reasons.is_retryable(reason, retryable)


def _complete(stats_path: str) -> bool:
    """img2dataset writes ``_stats.json`` last but not atomically: a kill while it is being
    written leaves an empty or cut file, which does not make the shard complete."""
    try:
        stats = fs.read_json(stats_path)
    except (ValueError, OSError):
        return False
    return isinstance(stats, dict) and "count" in stats and "successes" in stats


def shard_ids(folder: str) -> list[int]:
    """Shards whose ``_stats.json`` exists and reads whole, i.e. complete shards."""
    out = []
    for path in fs.ls(folder):
        name = os.path.basename(path)
        if name.endswith("_stats.json") and name.split("_")[0].isdigit() and _complete(path):
            out.append(int(name.split("_")[0]))
    return sorted(out)


def counted(folder: str) -> int:
    """Input rows in the complete shards of ``folder`` (success or failure): the progress
    of a download that other processes are doing."""
    total = 0
    for path in fs.ls(folder):
        name = os.path.basename(path)
        if name.endswith("_stats.json") and name.split("_")[0].isdigit():
            try:
                total += int(fs.read_json(path).get("count", 0))
            except (ValueError, OSError):
                continue  # being written
    return total


def remove_orphans(folder: str) -> list[str]:
    """Delete what a killed download left: files of shards without ``_stats.json`` (a partial
    tar, its parquet, a ``files``-format folder). Returns what was removed."""
    complete = {f"{sid:05d}" for sid in shard_ids(folder)}
    removed = []
    for path in fs.ls(folder):
        name = os.path.basename(path)
        stem = name.split(".")[0].split("_")[0]
        if stem.isdigit() and stem not in complete:
            fs.rm(path, recursive=True)
            removed.append(name)
    return sorted(removed)


@dataclass
class UrlState:
    """Where one input row stands after every attempt so far."""

    key: str  # key of the original row (its first attempt)
    url: str
    attempts: int
    success: bool
    reason: str | None  # of the last attempt, when it failed
    last_attempt: float  # end time of the shard holding the last attempt
    shard: int  # shard holding the last attempt
    row: dict  # the last attempt's parquet row (caption, carried columns)


def states(folder: str) -> dict[str, UrlState]:
    """Every input row of the part's complete shards, by original key, oldest shard first."""
    import pyarrow.parquet as pq

    out: dict[str, UrlState] = {}
    for sid in shard_ids(folder):
        stats = fs.read_json(f"{folder}/{sid:05d}_stats.json")
        with fs.open(f"{folder}/{sid:05d}.parquet") as fh:
            parquet = pq.ParquetFile(fh)  # not the image bytes of ``parquet`` output
            names = [c for c in parquet.schema_arrow.names if c not in ("jpg", "png", "webp")]
            rows = parquet.read(columns=names).to_pylist()
        ok = sum(1 for r in rows if r["status"] == "success")
        if len(rows) != stats["count"] or ok != stats["successes"]:
            raise IncompletePartError(f"{folder}/{sid:05d}: parquet and stats disagree")
        ended = float(stats.get("end_time") or 0.0)
        for r in rows:
            root = r.get(PATCH_COLUMN) or r["key"]
            prev = out.get(root)
            if prev is not None and prev.success:
                raise IncompletePartError(f"{folder}: sample {root} downloaded twice")
            success = r["status"] == "success"
            out[root] = UrlState(
                key=root,
                url=r["url"],
                attempts=(prev.attempts if prev else 0) + 1,
                success=success,
                reason=None if success else reason_of(r.get("error_message")),
                last_attempt=ended,
                shard=sid,
                row=r,
            )
    return out


def tally(folder: str, retryable: list[str] | None = None, max_attempts: int = 1) -> dict:
    """Counts of a part: samples, successes, failures by reason; with a repair policy also
    how many failures will be retried (``retry_pending``) and how many were ``given_up``."""
    table = states(folder)  # also checks each shard's parquet against its stats
    failed = Counter(s.reason for s in table.values() if not s.success)
    shards = []
    for sid in shard_ids(folder):
        stats = fs.read_json(f"{folder}/{sid:05d}_stats.json")
        shards.append(
            {"shard": f"{sid:05d}", "count": stats["count"], "successes": stats["successes"]}
        )
    out = {
        "count": len(table),
        "successes": sum(1 for s in table.values() if s.success),
        "failed": dict(sorted(failed.items())),
        "shards": shards,
    }
    if retryable is not None:
        retry = [s for s in table.values() if not s.success and is_retryable(s.reason, retryable)]
        out["given_up"] = sum(1 for s in retry if s.attempts >= max_attempts)
        out["retry_pending"] = len(retry) - out["given_up"]
    return out
