"""The safety part of the ledger, the report page and the dataset card: hash-gate counts,
score-filter counts per rule, which shards are blurred, samples per aspect-ratio bucket,
histograms of the safety columns, and the models and thresholds used. Read from the stages'
own outputs only (the report never imports a stage)."""

from __future__ import annotations

import html
import posixpath
from collections import Counter

from laionflow import fs
from laionflow.layout import Layout, part_id, part_name

#: numeric safety columns shown as histograms when the scores have them
HISTOGRAMS = {
    "nsfw_image": "NSFW score (max exposed class)",
    "faces": "faces per image",
    "text_area": "text area (fraction of the image)",
    "pdq_quality": "PDQ quality",
}


def _score_filter(layout: Layout) -> dict | None:
    if not fs.exists(layout.kept_summary):
        return None
    s = fs.read_json(layout.kept_summary)
    dropped = s.get("filtered") or {"rank": s["scored"] - s["kept"]}
    return {
        "rule": s.get("rule"),
        "scored": s["scored"],
        "kept": s["kept"],
        "filtered": dropped,
        "balanced": s["scored"] == s["kept"] + sum(dropped.values()),
    }


def _blurred(layout: Layout) -> dict:
    root = posixpath.dirname(layout.blurred_part(0))
    parts = {}
    for part in layout.done_parts(root) if fs.exists(root) else []:
        done = fs.read_json(layout.blurred_done(part))
        parts[part_name(part)] = {
            "shards": [s["shard"] for s in done["shards"]],
            "blurred_samples": done["blurred"],
            "path": done["path"],
        }
    return parts


def _buckets(layout: Layout) -> dict[str, int]:
    import pandas as pd

    counts: Counter = Counter()
    for path in fs.ls(layout.images) if fs.exists(layout.images) else []:
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if (
            name.endswith("_buckets.parquet")
            and part_id(name[: -len("_buckets.parquet")]) is not None
        ):
            with fs.open(path) as fh:
                counts.update(b for b in pd.read_parquet(fh, columns=["bucket"])["bucket"] if b)
    return dict(sorted(counts.items()))


def _columns(layout: Layout) -> dict[str, list[float]]:
    import pandas as pd

    values: dict[str, list[float]] = {}
    for part in layout.done_parts(layout.scores) if fs.exists(layout.scores) else []:
        with fs.open(f"{layout.scores_part(part)}/scores.parquet") as fh:
            df = pd.read_parquet(fh)
        for col in HISTOGRAMS:
            if col in df.columns:
                values.setdefault(col, []).extend(float(v) for v in df[col].dropna())
    return values


def _models(scores_yaml: str | None) -> dict | None:
    from laionflow.scoring.config import resolve

    scores_yaml = resolve(scores_yaml) if scores_yaml else None
    if not scores_yaml or not fs.exists(scores_yaml):
        return None
    import yaml

    with fs.open(scores_yaml, "r") as fh:
        cfg = yaml.safe_load(fh) or {}
    keys = ("models", "postprocess_columns", "faces_detector", "face_min_score", "text_score")
    return {k: cfg[k] for k in keys if k in cfg}


def safety_ledger(layout: Layout, config: dict) -> dict:
    """What the summary carries under ``ledger.safety`` (``config``: the redacted recipe)."""
    safety = config.get("safety") or {}
    lists = {k: bool(v) for k, v in (safety.get("hashlists") or {}).items() if k != "pdq_distance"}
    return {
        "score_filter": _score_filter(layout),
        "blurred": _blurred(layout),
        "buckets": _buckets(layout),
        "columns": _columns(layout),
        "models": _models(config.get("scores")),
        "hashlists": {
            "configured": [k for k, on in lists.items() if on],
            "pdq_distance": (safety.get("hashlists") or {}).get("pdq_distance"),
        },
        "blur_faces": bool(safety.get("blur_faces")),
    }


def format_lines(safety: dict) -> list[str]:
    """Lines of the text ledger."""
    lines = []
    sf = safety.get("score_filter")
    if sf:
        lines.append(
            f"  score filter: {sf['scored']} scored = {sf['kept']} kept + "
            + " + ".join(f"{n} {r}" for r, n in sf["filtered"].items())
        )
    if safety.get("blurred"):
        n = sum(p["blurred_samples"] for p in safety["blurred"].values())
        lines.append(f"  blurred shards: {len(safety['blurred'])} parts, {n} samples blurred")
    if safety.get("buckets"):
        lines.append("  buckets: " + ", ".join(f"{b}={n}" for b, n in safety["buckets"].items()))
    return lines


def _table(title: str, rows: list[tuple], table_id: str) -> str:
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<h3>{html.escape(title)}</h3><table id='{table_id}'><tbody>{body}</tbody></table>"


def page_section(summary: dict) -> str:
    """HTML: counts per rule, blurred shards, buckets, histograms of the safety columns."""
    from laionflow.reporting import plots

    safety = summary["ledger"].get("safety") or {}
    out = []
    sf = safety.get("score_filter")
    if sf:
        out.append(
            _table(
                "score filter",
                [
                    ("scored", sf["scored"]),
                    ("kept", sf["kept"]),
                    *[(f"filtered: {r}", n) for r, n in sf["filtered"].items()],
                ],
                "score-filter",
            )
        )
    if safety.get("blurred"):
        out.append(
            _table(
                "face-blurred shards",
                [
                    (p, v["path"], ", ".join(v["shards"]), v["blurred_samples"])
                    for p, v in safety["blurred"].items()
                ],
                "blurred",
            )
        )
    if safety.get("buckets"):
        b = safety["buckets"]
        out.append(_table("aspect-ratio buckets", list(b.items()), "buckets"))
        out.append(plots.bars("samples per bucket", list(b), list(b.values()), "samples"))
    import numpy as np

    for col, values in (safety.get("columns") or {}).items():
        out.append(plots.histogram(HISTOGRAMS[col], np.asarray(values), col))
    return "<h2>Safety and quality</h2>" + "".join(out) if out else ""


def card_lines(summary: dict) -> list[str]:
    """Dataset-card lines: the safety models, their settings and every threshold applied."""
    safety = summary["ledger"].get("safety") or {}
    cfg = summary.get("config", {})
    lines = ["## Safety and quality signals"]
    models = safety.get("models")
    if models:
        lines.append(
            f"- scores models: {', '.join(models.get('models', []))}; settings "
            + ", ".join(f"{k}={v}" for k, v in models.items() if k != "models")
        )
    for r in cfg.get("score_filter", {}).get("rules", []):
        n = ((safety.get("score_filter") or {}).get("filtered") or {}).get(r["name"], 0)
        lines.append(
            f"- score rule {r['name']}: {r['column']} {r['op']} {r['value']} ({n} samples removed)"
        )
    hl = safety.get("hashlists") or {}
    if hl.get("configured"):
        led = summary["ledger"]
        lines.append(
            f"- known-bad hash lists: {', '.join(hl['configured'])} (PDQ distance ≤ "
            f"{hl['pdq_distance']}): {led.get('blocked_hashlist', 0)} URLs blocked, "
            f"{led.get('quarantined', 0)} samples quarantined"
        )
    if safety.get("blurred"):
        lines.append(f"- faces blurred in `blurred/` ({len(safety['blurred'])} parts)")
    if safety.get("buckets"):
        lines.append(
            "- aspect-ratio buckets: "
            + ", ".join(f"{b} ({n})" for b, n in safety["buckets"].items())
        )
    return [*lines, ""] if len(lines) > 1 else []
