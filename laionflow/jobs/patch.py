"""Stage ``repair``: bring one part back to the best state it can reach, never rewriting a
complete shard.

1. A part whose download never finished (no summary, or a shard without ``_stats.json``) gets
   its missing shards downloaded (img2dataset's ``incremental`` mode redoes only those).
2. URLs whose last attempt failed for a *retryable* reason (``recipe.repair.retryable``: 5xx,
   429, timeouts, connection errors — never a 404, an opt-out or a refused address), that have
   attempts left and whose backoff has elapsed, are downloaded again into new *patch shards*
   (img2dataset's ``extend`` mode: the next shard ids, so sample keys stay unique). Each patch
   row carries ``patch_of``, the key of the row it retries.
3. The part's summary (the ledger's source) is recomputed from all shards, and
   ``part_NNNNN_repairs.json`` lists every URL still failing: attempts, last reason, next
   eligible time, or ``given_up`` after ``max_attempts``.

The backoff after attempt ``n`` is ``backoff_s * backoff_factor ** (n - 1)`` from the end of the
shard holding that attempt.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time

from laionflow import fs, shards
from laionflow.jobs import download
from laionflow.layout import Layout, part_name
from laionflow.recipes import Recipe
from laionflow.recipes.schema import RepairConfig
from laionflow.safety import gate
from laionflow.shards import PATCH_COLUMN, UrlState, is_retryable

log = logging.getLogger(__name__)


def next_eligible(state: UrlState, cfg: RepairConfig) -> float:
    return state.last_attempt + cfg.backoff_s * cfg.backoff_factor ** (state.attempts - 1)


def classify(state: UrlState, cfg: RepairConfig, now: float) -> str:
    """``success``, ``final`` (not retryable), ``given_up``, ``waiting`` or ``due``."""
    if state.success:
        return "success"
    if not is_retryable(state.reason or "", cfg.retryable):
        return "final"
    if state.attempts >= cfg.max_attempts:
        return "given_up"
    return "due" if next_eligible(state, cfg) <= now else "waiting"


def due_count(recipe: Recipe, part: int, now: float | None = None) -> int:
    """How many URLs of a finished part a repair would retry now (the scan uses it)."""
    folder = Layout(recipe.dataset_root).images_part(part)
    now = time.time() if now is None else now
    return sum(classify(s, recipe.repair, now) == "due" for s in shards.states(folder).values())


def _write_patch_input(states: list[UrlState], extra: list[str], path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = {
        "url": [s.url for s in states],
        "caption": [s.row.get("caption") for s in states],
        PATCH_COLUMN: [s.key for s in states],
    }
    for col in extra:
        data[col] = [s.row.get(col) for s in states]
    pq.write_table(pa.table(data), path)


def run(recipe: Recipe, part: int, force: bool = False, now: float | None = None) -> dict:
    layout = Layout(recipe.dataset_root)
    folder = layout.images_part(part)
    cfg = recipe.repair
    started = time.time()
    # 1. finish an unfinished download (only its missing shards); cleans a killed run's leftovers
    first = download.run(recipe, part)
    removed = shards.remove_orphans(folder)
    if removed:
        log.warning("repair %s: removed unfinished patch files %s", part_name(part), removed)
    table = shards.states(folder)
    now = time.time() if now is None else now
    todo = [s for s in table.values() if classify(s, cfg, now) == "due"]
    if todo:
        carried = [c for c in download.EXTRA_COLUMNS if c in todo[0].row]
        log.info("repair %s: retrying %d failed urls in patch shards", part_name(part), len(todo))
        lists = download.hash_lists(recipe)
        complete = set(shards.shard_ids(folder))
        with tempfile.TemporaryDirectory(prefix="laionflow-patch-") as tmp:
            src = os.path.join(tmp, "patch.parquet")
            _write_patch_input(todo, carried, src)
            download.fetch(recipe, part, src, folder, [*carried, PATCH_COLUMN], mode="extend")
        if lists is not None and recipe.safety.hashlists.post_download:
            # a retried URL may bring a listed image: the patch shards pass the same gate
            new = set(shards.shard_ids(folder)) - complete
            gate.quarantine(layout, part, lists, shards=new)
        table = shards.states(folder)
    recovered = sum(1 for s in todo if table[s.key].success)
    summary = download.publish_summary(
        recipe,
        part,
        first["input_rows"],
        time.time() - started,
        repaired={"retried": len(todo), "recovered": recovered},
    )
    _write_ledger(layout, part, table, cfg, now)
    log.info(
        "repair %s: retried %d, recovered %d; %d still pending, %d given up",
        part_name(part),
        len(todo),
        recovered,
        summary["retry_pending"],
        summary["given_up"],
    )
    return summary


def _write_ledger(
    layout: Layout, part: int, table: dict[str, UrlState], cfg: RepairConfig, now: float
) -> None:
    """``part_NNNNN_repairs.json``: every URL not downloaded, with where it stands."""
    rows = []
    for s in sorted(table.values(), key=lambda s: s.key):
        state = classify(s, cfg, now)
        if state == "success":
            continue
        rows.append(
            {
                "key": s.key,
                "url": s.url,
                "attempts": s.attempts,
                "last_reason": s.reason,
                "last_attempt": s.last_attempt,
                "state": "pending" if state in ("due", "waiting") else state,
                "next_eligible": next_eligible(s, cfg) if state in ("due", "waiting") else None,
            }
        )
    fs.write_json(layout.repairs_ledger(part), {"part": part, "urls": rows})
