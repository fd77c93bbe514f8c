"""The report as one self-contained HTML page (plots inlined as SVG, no scripts, no external
assets: it renders the same from a file, inside the Airflow UI's iframe, or attached to a
ticket) and the dataset card in markdown, in the spirit of a Hugging Face dataset card."""

from __future__ import annotations

import html
from typing import Any

from laionflow.reporting.collect import redacted_pretrained
from laionflow.safety.report import card_lines, page_section

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1a1a1a}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:1rem}.plot{width:520px}.plot svg{width:100%;height:auto}
.ok{color:#0a7c2f}.bad{color:#b00020}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def ledger_rows(summary: dict) -> list[tuple[str, int | None]]:
    """The ledger equation as (label, count) rows: raw = filtered + duplicates + downloaded +
    failed + not selected. Shared by the page and by the tests that read it back."""
    led = summary["ledger"]
    rows: list[tuple[str, int | None]] = [("raw rows", led["raw_rows"])]
    rows += [(f"filtered: {rule}", n) for rule, n in led["filtered"].items()]
    rows.append(("duplicates", led["duplicates"]))
    rows.append(("downloaded", led["downloaded"]))
    rows += [(f"failed: {reason}", n) for reason, n in led["failed"].items()]
    rows.append(("not selected", led["not_selected"]))
    if led.get("blocked_hashlist") or led.get("quarantined"):
        rows.append(("blocked: hash list", led["blocked_hashlist"]))
        rows.append(("quarantined: hash list", led["quarantined"]))
    rows.append(("accounted", led["accounted"]))
    rows.append(("embedding rows", led["embedding_rows"]))
    rows.append(("index size", led["index_size"]))
    return rows


def _ledger_table(summary: dict) -> str:
    led = summary["ledger"]
    body = []
    for label, n in ledger_rows(summary):
        cls = ' class="total"' if label in ("raw rows", "accounted") else ""
        body.append(f'<tr{cls}><td>{_e(label)}</td><td class="n">{_e(n)}</td></tr>')
    verdict = (
        '<p class="ok">balanced: every raw row is accounted for</p>'
        if led["balanced"]
        else '<p class="bad">NOT balanced</p>'
    )
    return (
        '<table id="ledger"><thead><tr><th>ledger</th><th>rows</th></tr></thead><tbody>'
        + "".join(body)
        + "</tbody></table>"
        + verdict
    )


def _parts_table(parts: list[dict]) -> str:
    head = "<tr><th>part</th><th>input</th><th>ok</th><th>failed</th><th>rate</th><th>s</th></tr>"
    rows = "".join(
        f'<tr><td>{p["part"]}</td><td class="n">{p["input_rows"]}</td>'
        f'<td class="n">{p["successes"]}</td><td class="n">{p["failed_total"]}</td>'
        f'<td class="n">{p["rate"]:.1%}</td><td class="n">{p["seconds"]}</td></tr>'
        for p in parts
    )
    return f'<table id="parts"><thead>{head}</thead><tbody>{rows}</tbody></table>'


def render(summary: dict, data: dict, svgs: dict[str, str], title: str) -> str:
    plots = "".join(
        f'<figure class="plot" id="plot-{_e(name)}">{svg[svg.find("<svg") :]}</figure>'
        for name, svg in svgs.items()
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f"<p>recipe <b>{_e(summary['recipe'])}</b> · root <code>{_e(summary['dataset_root'])}"
        f"</code> · {data['bytes'] / 1e6:.1f} MB of shards</p>"
        f"<h2>Ledger</h2>{_ledger_table(summary)}"
        f"<h2>Parts</h2>{_parts_table(data['parts'])}"
        f'<h2>Plots</h2><div class="grid">{plots}</div>'
        f"{page_section(summary)}"
        "</body></html>"
    )


def card(summary: dict, data: dict) -> str:
    """A dataset card (markdown, Hugging Face style) of what the run produced."""
    cfg = summary.get("config", {})
    led = summary["ledger"]
    meta = cfg.get("metadata", {})
    dl = cfg.get("download", {})
    rules = cfg.get("filter", {}).get("rules", [])
    model = data["model"]
    lines = [
        "---",
        f"pretty_name: {summary['recipe']} (laionflow)",
        "task_categories: [text-to-image, image-to-text]",
        "---",
        f"# Dataset card: {summary['recipe']}",
        "",
        "## Sources",
        *[f"- {u}" for u in meta.get("urls", [])],
        "",
        "## Filters",
        "| rule | column | condition | rows removed |",
        "|---|---|---|---|",
        *[
            f"| {r.get('name')} | {r.get('column')} | {r.get('op')} {r.get('value')} "
            f"| {led['filtered'].get(r.get('name'), 0)} |"
            for r in rules
        ],
        f"Exact dedup on {cfg.get('filter', {}).get('dedup_keys')}: "
        f"{led['duplicates']} rows removed.",
        "",
        "## Counts at each step",
        "| step | rows |",
        "|---|---|",
        f"| raw metadata | {led['raw_rows']} |",
        f"| after filters | {led['raw_rows'] - led['filtered_total']} |",
        f"| after dedup | {led['raw_rows'] - led['filtered_total'] - led['duplicates']} |",
        f"| downloaded | {led['downloaded']} |",
        f"| failed to download | {led['failed_total']} |",
        f"| embedded | {led['embedding_rows']} |",
        f"| in the kNN index | {led['index_size']} |",
        "",
        "## Models",
        f"- CLIP: `{model.get('model')}` weights `{redacted_pretrained(model.get('pretrained'))}`"
        f" (dim {model.get('dim')}), open_clip",
        "",
        *card_lines(summary),
        "## Format and layout",
        f"- images: img2dataset {dl.get('output_format')}, {dl.get('image_size')} px "
        f"({dl.get('resize_mode')}), {dl.get('number_sample_per_shard')} samples per shard: "
        "`images/part_NNNNN/{00000.tar, 00000.parquet, 00000_stats.json}`",
        "- annotations: `images/part_NNNNN_stats.csv`; embeddings: "
        "`embeddings/part_NNNNN/{img_emb,text_emb,metadata}/`; index: `index/`",
        "- ledger: `summary.json`; this report: `report/index.html`",
        "",
    ]
    return "\n".join(lines)
