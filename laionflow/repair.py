"""What needs repairing in a dataset: parts whose filtered metadata exists but whose download
is not complete (no ``part_NNNNN_summary.json``, or a shard without its ``_stats.json``).

Re-running the download stage on such a part redoes only the missing shards (img2dataset's
``incremental`` mode skips shards whose stats file exists), never rewriting a complete one.
Re-downloading failed URLs of complete shards into patch shards is the next step (issue 4).
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
