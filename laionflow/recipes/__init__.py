"""Bundled recipes and the one way to load, override and validate them."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from laionflow.form_values import apply_dotted
from laionflow.recipes.prefilter import prefiltered
from laionflow.recipes.schema import Recipe

__all__ = ["Recipe", "RecipeError", "available", "load_recipe", "apply_overrides", "resolve"]


class RecipeError(ValueError):
    """A recipe or an override is invalid; the message names the offending field."""


def available() -> list[str]:
    return sorted(
        p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml")
    )


def _read(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") and path.exists():
        text = path.read_text()
    else:
        res = resources.files(__name__) / f"{name_or_path}.yaml"
        if not res.is_file():
            raise RecipeError(f"unknown recipe {name_or_path!r}; bundled: {available()}")
        text = res.read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {name_or_path!r} is not a mapping")
    return data


def _format(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        lines.append(f"{prefix}{loc}: {e['msg']}")
    return "; ".join(lines)


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``download.image_size``) on a raw recipe dict; ``None`` means "keep".
    The trigger form computes its defaults with the same function (:mod:`laionflow.form_values`)."""
    try:
        return apply_dotted(data, overrides)
    except ValueError as err:
        raise RecipeError(str(err)) from None


def set_thresholds(data: dict[str, Any], thresholds: dict[str, Any]) -> dict[str, Any]:
    """Set the ``value`` of filter rules by rule name; naming a rule the recipe lacks fails."""
    rules = data.get("filter", {}).get("rules", [])
    names = [r.get("name") for r in rules]
    for name, value in thresholds.items():
        if name not in names:
            raise RecipeError(f"threshold for rule {name!r}: recipe has no such rule ({names})")
        rules[names.index(name)]["value"] = value
    return data


def load_recipe(
    name_or_path: str,
    overrides: dict[str, Any] | None = None,
    thresholds: dict[str, Any] | None = None,
) -> Recipe:
    """Load a bundled recipe (by name) or a YAML file, apply dotted overrides and rule
    thresholds, resolve ``metadata.prefiltered`` (:mod:`laionflow.recipes.prefilter`),
    validate."""
    data = _read(name_or_path)
    try:
        Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(f"invalid recipe {name_or_path!r}: {_format(err)}") from None
    merged = set_thresholds(apply_overrides(data, overrides or {}), thresholds or {})
    merged = prefiltered(merged)  # metadata.prefiltered: the rules off for every filter engine
    try:
        return Recipe.model_validate(merged)
    except ValidationError as err:
        raise RecipeError(f"invalid override for recipe {name_or_path!r}: {_format(err)}") from None


def resolve(config_path: str) -> Recipe:
    """Read a resolved recipe written by the plan step (JSON)."""
    from laionflow import fs

    with fs.open(config_path, "r") as fh:
        data = json.load(fh)
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(f"invalid resolved config {config_path!r}: {_format(err)}") from None
