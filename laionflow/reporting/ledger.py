"""Stage ``report``: ``summary.json`` — the ledger that proves nothing was lost — and the
HTML report built on it (:mod:`laionflow.reporting.build`). It lives with the report rather
than in ``laionflow/jobs/`` so that the stages and the report never import each other.

    raw rows = filtered (by rule) + duplicates + downloaded + failed (by reason) + not selected
    embedding rows = downloaded            index size = embedding rows

``not_selected`` counts kept rows of parts this run did not download (``part_ids``); it is 0
for a full run. The report only reads the other stages' own summaries.
"""

from __future__ import annotations

import logging
from collections import Counter

from laionflow import fs
from laionflow.captioning.report import format_recaption, recaption_ledger
from laionflow.credentials import redact
from laionflow.embeddings import embedded_parts
from laionflow.layout import Layout, part_name
from laionflow.recipes import Recipe
from laionflow.safety.report import format_lines as format_safety
from laionflow.safety.report import safety_ledger

log = logging.getLogger(__name__)


def build_summary(recipe: Recipe) -> dict:
    layout = Layout(recipe.dataset_root)
    filt = fs.read_json(layout.filter_stats)
    downloaded, failed, not_selected = 0, Counter(), 0
    blocked, quarantined = 0, 0  # known-bad hash lists: before / after the download
    parts = {}
    for part_s, rows in filt["parts"].items():
        part = int(part_s)
        marker = layout.download_summary(part)
        if not fs.exists(marker):
            not_selected += rows
            parts[part_name(part)] = {"kept": rows, "downloaded": None}
            continue
        d = fs.read_json(marker)
        downloaded += d["successes"]
        blocked += d.get("blocked_hashlist", 0)
        quarantined += d.get("quarantined", 0)
        failed.update(d["failed"])
        parts[part_name(part)] = {
            "kept": rows,
            "downloaded": d["successes"],
            "failed": d["failed_total"],
            "shards": len(d["shards"]),
        }
    emb_rows = 0
    for part in embedded_parts(layout):
        e = fs.read_json(layout.embeddings_done(part))
        emb_rows += e["rows"]
        parts.setdefault(part_name(part), {})["embedded"] = e["rows"]
    index_size = None
    if fs.exists(layout.index_summary):
        index_size = fs.read_json(layout.index_summary)["size"]
    embedded = recipe.download.output_format == "webdataset"
    filtered_total = sum(filt["filtered"].values())
    failed_total = sum(failed.values())
    accounted = filtered_total + filt["duplicates"] + downloaded + failed_total + not_selected
    accounted += blocked + quarantined
    ledger = {
        "raw_rows": filt["raw_rows"],
        "filtered": filt["filtered"],
        "filtered_total": filtered_total,
        "duplicates": filt["duplicates"],
        "downloaded": downloaded,
        "failed": dict(sorted(failed.items())),
        "failed_total": failed_total,
        "not_selected": not_selected,
        "blocked_hashlist": blocked,
        "quarantined": quarantined,
        "accounted": accounted,
        "balanced": accounted == filt["raw_rows"],
        "embedding_rows": emb_rows,
        "embeddings_match": emb_rows == downloaded if embedded else None,
        "index_size": index_size,
        "index_matches": index_size == emb_rows if embedded else None,
        "safety": safety_ledger(layout, redact(recipe.model_dump(mode="json"))),
        "recaption": recaption_ledger(layout, downloaded),
    }
    return {
        "recipe": recipe.name,
        "dataset_root": recipe.dataset_root,
        "ledger": ledger,
        "estimate": latest_estimate(layout),
        "parts": parts,
        "config": redact(recipe.model_dump(mode="json")),
    }


def latest_estimate(layout: Layout) -> dict | None:
    """The storage/time estimate of the most recent run that made one."""
    path = fs.newest_in_runs(layout.root, "estimate.json")
    return fs.read_json(path) if path else None


def format_ledger(summary: dict) -> str:
    led = summary["ledger"]
    lines = [
        f"ledger for {summary['recipe']} ({summary['dataset_root']})",
        f"  raw rows                         {led['raw_rows']:>10}",
    ]
    for rule, n in led["filtered"].items():
        lines.append(f"  - filtered {rule:<22}{n:>10}")
    lines.append(f"  - duplicates                     {led['duplicates']:>10}")
    lines.append(f"  - downloaded                     {led['downloaded']:>10}")
    for reason, n in led["failed"].items():
        lines.append(f"  - failed {reason:<24}{n:>10}")
    if led["not_selected"]:
        lines.append(f"  - not selected                   {led['not_selected']:>10}")
    if led.get("blocked_hashlist") or led.get("quarantined"):
        lines.append(f"  - blocked (hash list)            {led['blocked_hashlist']:>10}")
        lines.append(f"  - quarantined (hash list)        {led['quarantined']:>10}")
    lines.append(
        f"  = accounted                      {led['accounted']:>10}   "
        f"{'BALANCED' if led['balanced'] else 'UNBALANCED'}"
    )
    if led["embeddings_match"] is None:
        lines.append("  embeddings/index    (not computed for this output format)")
    else:
        lines.append(
            f"  embeddings rows                  {led['embedding_rows']:>10}   "
            f"{'= downloaded' if led['embeddings_match'] else '!= downloaded'}"
        )
        lines.append(
            f"  index size                       {led['index_size']!s:>10}   "
            f"{'= embeddings' if led['index_matches'] else '!= embeddings'}"
        )
    if led.get("recaption"):
        lines += format_recaption(led["recaption"])
    lines += format_safety(led.get("safety") or {})
    est = summary.get("estimate")
    if est:
        lines.append(
            f"  estimate before download: {est['human']}, ~{est['hours']} h ({est['rows']} rows)"
        )
    return "\n".join(lines)


def run(recipe: Recipe, force: bool = False, run_dir: str | None = None) -> dict:
    """``summary.json``, then the HTML report and dataset card in ``report/`` and, for a run,
    in ``<run_dir>/report/`` (the page the Airflow plugin shows for that DAG run)."""
    from laionflow.reporting.build import build  # imports numpy/plots: only when reporting

    summary = build_summary(recipe)
    layout = Layout(recipe.dataset_root)
    fs.write_json(layout.summary, summary)
    log.info("%s", format_ledger(summary))
    if not summary["ledger"]["balanced"]:
        raise RuntimeError("ledger does not balance:\n" + format_ledger(summary))
    outs = [layout.report] + ([f"{run_dir}/report"] if run_dir else [])
    if run_dir:
        fs.write_json(f"{run_dir}/summary.json", summary)  # the run's own copy
    page = build(summary, outs)
    return {
        "stage": "report",
        "path": layout.summary,
        "report": page,
        **{
            k: summary["ledger"][k]
            for k in ("raw_rows", "downloaded", "failed_total", "balanced", "index_size")
        },
    }
