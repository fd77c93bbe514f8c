"""What a recipe DAG's trigger form shows: the value a run will use for each field — the
site defaults' (``$LAIONFLOW_SITE_OVERRIDES``) over the recipe's YAML over the schema's — so
that *Trigger* without touching a field runs exactly the recipe as the site configures it.

Read at DAG parse time, so it stays plain data: the recipe YAML and a local site file through
``yaml`` (no pydantic, no ``laionflow.recipes``; ``tests/dags/test_dag_files.py``). A site
file that cannot be read at parse time (``s3://``) leaves the fields empty — "the site's or
the recipe's", resolved at run time by :func:`laionflow.plan.resolve` — and says in each
field's description what the recipe sets.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from laionflow.form import Row

RECIPES = Path(__file__).parent / "recipes"
#: the recipe schema's defaults of the fields the form sets (checked against the schema by
#: ``tests/laionflow/test_form.py``); ``metadata.urls`` has none: every recipe names its own
SCHEMA_DEFAULTS: dict[str, Any] = {
    "root": "./data",
    "part_ids": None,
    "filter.num_parts": 32,
    "download.image_size": 256,
    "download.resize_mode": "border",
    "download.output_format": "webdataset",
    "download.processes": 2,
    "download.threads": 16,
    "download.ssl_verify": True,
    "clip.model": "ViT-B-32",
    "clip.pretrained": "laion400m_e32",
    "clip.device": "auto",
    "source": "rederive",
    "prepackaged.start": None,
    "prepackaged.end": None,
    "prepackaged.workers": 4,
}


def _yaml(path: Path) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(), Loader=loader)  # noqa: S506 - a safe loader


def recipe_data(name_or_path: str) -> dict[str, Any]:
    """A bundled recipe (by name) or a recipe file, as plain data."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml", ".json") or not path.exists():
        path = RECIPES / f"{name_or_path}.yaml"
    data = _yaml(path)
    if not isinstance(data, dict):
        raise ValueError(f"recipe {name_or_path!r} is not a mapping")
    return data


def apply_dotted(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with dotted keys (``download.image_size``) set; ``None`` keeps the
    value. The one implementation, shared with :func:`laionflow.recipes.apply_overrides`."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ValueError(f"override {dotted!r}: {key!r} is not a section")
            node = child
        node[leaf] = value
    return data


def site_defaults() -> tuple[dict[str, Any] | None, str | None]:
    """``(dotted site defaults, their path)``; ``({}, None)`` without a site file, ``(None,
    path)`` when the file cannot be read at parse time (remote, missing, not a mapping)."""
    path = os.environ.get("LAIONFLOW_SITE_OVERRIDES")
    if not path:
        return {}, None
    local = Path(path.removeprefix("file://"))
    if "://" in path.removeprefix("file://") or not local.is_file():
        return None, path
    data = _yaml(local) or {}
    return (data if isinstance(data, dict) else None), path


def _get(data: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = data
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _code(value: Any) -> str:
    return f"`{json.dumps(value)}`"


def _threshold(row: Row, merged: dict[str, Any]) -> Row:
    rules = {r.get("name"): r.get("value") for r in merged.get("filter", {}).get("rules", [])}
    missing = [name for name in row.rules if name not in rules]
    if missing:
        note = f"This recipe has no `{missing[0]}` rule: leave empty."
        return replace(row, description=f"{row.description} {note}")
    values = [rules[name] for name in row.rules]
    if len(set(map(json.dumps, values))) > 1:
        shown = ", ".join(f"{n} {_code(v)}" for n, v in zip(row.rules, values, strict=True))
        return replace(row, description=f"{row.description} Empty: the recipe's ({shown}).")
    return replace(row, default=values[0], description=f"{row.description} Default: the recipe's.")


def _unknown(row: Row, value: Any, site_path: str) -> Row:
    """The site file is unreadable now: empty (the site's or the recipe's, at run time). A
    switch becomes a choice of ``true``/``false``/empty, so "keep" never looks like *off*."""
    note = (
        f"Empty: the site defaults' (`{site_path}`, read when the run starts), else the "
        f"recipe's {_code(value)}."
    )
    if row.kind == "boolean":
        row = replace(row, kind="string", schema={"enum": ["true", "false"]})
    return replace(row, default=None, description=f"{row.description} {note}")


def recipe_form(recipe: str, rows: tuple[Row, ...]) -> tuple[Row, ...]:
    """``rows`` with each field's default set to the value a run of ``recipe`` will use."""
    data = recipe_data(recipe)
    site, site_path = site_defaults()
    merged = apply_dotted(data, site or {})
    out = []
    for row in rows:
        if row.rules:
            out.append(_threshold(row, merged))
            continue
        if not row.field:
            out.append(row)
            continue
        found, value = _get(merged, row.field)
        if not found:
            value = SCHEMA_DEFAULTS.get(row.field)
        if site is None:
            out.append(_unknown(row, value, str(site_path)))
            continue
        if value is None:  # nothing to show: the row's own text says what empty means
            out.append(row)
            continue
        origin = (
            f"the site defaults' (`{site_path}`)"
            if row.field in site
            else "the recipe's"
            if found
            else "the schema's (the recipe sets none)"
        )
        out.append(replace(row, default=value, description=f"{row.description} Default: {origin}."))
    return tuple(out)
