"""The recaption stage's numbers for the report's ledger: caption rows (one per downloaded
sample), how many new captions the gate kept or rejected, and how many samples the OpenUni
export holds. Read from the stages' own summaries, like the rest of the ledger."""

from __future__ import annotations

from laionflow import fs
from laionflow.layout import Layout


def recaption_ledger(layout: Layout, downloaded: int) -> dict | None:
    """None when no part was re-captioned."""
    parts = layout.done_parts(layout.captions)
    if not parts:
        return None
    done = [fs.read_json(layout.captions_done(p)) for p in parts]
    rows, kept = sum(d["rows"] for d in done), sum(d["kept"] for d in done)
    summary = layout.openuni("_summary.json")
    exported = fs.read_json(summary)["samples"] if fs.exists(summary) else None
    return {
        "caption_rows": rows,
        "captions_match": rows == downloaded,
        "kept": kept,
        "rejected": rows - kept,
        "gate": done[0].get("gate"),
        "model": done[0].get("model"),
        "openuni_samples": exported,
        "openuni_matches": exported == rows if exported is not None else None,
    }


def format_recaption(rec: dict) -> list[str]:
    return [
        f"  caption rows ({rec['model']})".ljust(35)
        + f"{rec['caption_rows']:>10}   "
        + ("= downloaded" if rec["captions_match"] else "!= downloaded"),
        f"  - new caption kept (gate {rec['gate']})".ljust(35) + f"{rec['kept']:>10}",
        "  - alt text kept (gate rejected)".ljust(35) + f"{rec['rejected']:>10}",
        "  OpenUni export samples".ljust(35) + f"{rec['openuni_samples']!s:>10}",
    ]
