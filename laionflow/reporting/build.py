"""Build the report of a dataset (``report/``) and of one run (``runs/<run>/report/``):
``index.html`` (plots inlined), ``plots/*.svg``, ``README.md`` (the dataset card) and
``report.json`` (every number the page shows, for machines and tests)."""

from __future__ import annotations

import logging

import numpy as np

from laionflow import fs
from laionflow.reporting import plots
from laionflow.reporting.collect import collect
from laionflow.reporting.page import card, ledger_rows, render

log = logging.getLogger(__name__)


def _svgs(data: dict) -> dict[str, str]:
    s = data["samples"]
    w, h = s["original_width"], s["original_height"]
    aspect = w / np.maximum(h, 1) if len(w) == len(h) else np.zeros(0)
    failures, stages, dedup = data["failures"], data["stages"], data["dedup"]
    return {
        "success_rate": plots.success_rate(
            [p["part"] for p in data["parts"]], [p["rate"] for p in data["parts"]]
        ),
        "failure_reasons": plots.bars(
            "download failures by reason", list(failures), list(failures.values()), "urls"
        ),
        "resolution": plots.resolution(w, h),
        "aspect_ratio": plots.histogram(
            "aspect ratio (w/h, clipped at 4)", np.clip(aspect, 0, 4), "w / h"
        ),
        "caption_length": plots.histogram("caption length", s["caption_chars"], "characters"),
        "clip_score": plots.histogram(
            "CLIP image-text similarity", data["clip_scores"], "cosine similarity"
        ),
        "dedup": plots.bars("duplicates removed", list(dedup), list(dedup.values()), "rows"),
        "stage_time": plots.bars(
            "time per stage", list(stages), list(stages.values()), "seconds (parts summed)"
        ),
    }


def numbers(summary: dict, data: dict) -> dict:
    scores = data["clip_scores"]
    return {
        "ledger": dict(ledger_rows(summary)),
        "balanced": summary["ledger"]["balanced"],
        "parts": data["parts"],
        "failures": data["failures"],
        "dedup": data["dedup"],
        "stages_seconds": data["stages"],
        "samples": int(len(data["samples"]["caption_chars"])),
        "clip_score_median": float(np.median(scores)) if len(scores) else None,
        "bytes": data["bytes"],
        "safety": summary["ledger"].get("safety"),
    }


def build(summary: dict, out_dirs: list[str], title: str | None = None) -> str:
    """Write the report into each of ``out_dirs``; return the first ``index.html``."""
    data = collect(summary["dataset_root"], summary)
    svgs = _svgs(data)
    page = render(summary, data, svgs, title or f"laionflow report: {summary['recipe']}")
    readme = card(summary, data)
    for out in out_dirs:
        for name, svg in svgs.items():
            with fs.atomic_write(f"{out}/plots/{name}.svg", "w") as fh:
                fh.write(svg)
        with fs.atomic_write(f"{out}/README.md", "w") as fh:
            fh.write(readme)
        fs.write_json(f"{out}/report.json", numbers(summary, data))
        with fs.atomic_write(f"{out}/index.html", "w") as fh:  # last: marks the report done
            fh.write(page)
    log.info("report: %s/index.html", out_dirs[0])
    return f"{out_dirs[0]}/index.html"
