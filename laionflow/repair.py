"""What needs repairing in a dataset: parts whose filtered metadata exists but whose download
is not complete (no ``part_NNNNN_summary.json``, or a shard without its ``_stats.json``).

Re-running the download stage on such a part redoes only the missing shards (img2dataset's
``incremental`` mode skips shards whose stats file exists), never rewriting a complete one.
Finished parts are repaired too when some of their URLs failed for a retryable reason and are
due again (see :mod:`laionflow.jobs.patch`).
"""

from __future__ import annotations

import os

from laionflow import fs
from laionflow.layout import Layout


def incomplete_parts(dataset_root: str) -> list[int]:
    layout = Layout(dataset_root)
    if not fs.exists(layout.filter_stats):
        return []  # never filtered: nothing to repair, the recipe DAG has not run
    parts = sorted(int(p) for p in fs.read_json(layout.filter_stats)["parts"])
    out = []
    for part in parts:
        folder = layout.images_part(part)
        started = fs.exists(folder) or fs.exists(layout.download_summary(part))
        if not started:
            continue  # never selected for download (part_ids): not a repair
        tars = {os.path.basename(p)[:5] for p in fs.ls(folder) if p.endswith(".tar")}
        stats = {os.path.basename(p)[:5] for p in fs.ls(folder) if p.endswith("_stats.json")}
        if not fs.exists(layout.download_summary(part)) or tars - stats:
            out.append(part)
    return out


def latest_run_config(dataset_root: str) -> str | None:
    """The newest ``runs/<run>/config.json``: a repair must reuse the settings (shard size,
    image size...) of the run that wrote the data, not today's recipe defaults."""
    return fs.newest_in_runs(dataset_root, "config.json")


def parts_to_repair(config_path: str, part_ids: list[int] | None = None) -> list[int]:
    """Incomplete parts, and finished parts with retryable failures due now."""
    from laionflow.jobs.patch import due_count
    from laionflow.recipes import resolve

    recipe = resolve(config_path)
    layout = Layout(recipe.dataset_root)
    todo = set(incomplete_parts(recipe.dataset_root))
    if fs.exists(layout.filter_stats):
        for part_s in fs.read_json(layout.filter_stats)["parts"]:
            part = int(part_s)
            if part not in todo and fs.exists(layout.download_summary(part)):
                if due_count(recipe, part) > 0:
                    todo.add(part)
    if part_ids is not None:
        todo &= set(part_ids)
    return sorted(todo)


def scan(recipes: list[str], root: str | None, part_ids: list[int] | None) -> list[dict]:
    """What the repair DAG maps over: ``{config_path, part}`` for every part of each recipe's
    dataset that needs repairing. The dataset root is the one a recipe run would use with the
    same ``root`` (empty: the site defaults' root, else the recipe's), via :func:`plan.resolve`."""
    from laionflow.plan import resolve

    targets = []
    for recipe in recipes:
        config_path = latest_run_config(resolve(recipe, {"root": root}).dataset_root)
        if config_path is None:
            continue  # the recipe never ran here
        for part in parts_to_repair(config_path, part_ids):
            targets.append({"config_path": config_path, "part": part})
    return targets
