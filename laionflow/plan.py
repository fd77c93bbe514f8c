"""Turn a recipe name plus trigger-time Params into one validated, frozen run config.

This is the single place where a user's overrides meet the recipe, so a bad value fails here,
in the first task of a run, naming the field — before any download or Spark job starts.
"""

from __future__ import annotations

import os
from typing import Any

from laionflow import fs
from laionflow.form import CONTROL_PARAMS, PARAM_FIELDS, THRESHOLD_RULES, parse_size
from laionflow.layout import Layout
from laionflow.recipes import Recipe, RecipeError, load_recipe


def overrides_from_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(PARAM_FIELDS) - set(THRESHOLD_RULES) - CONTROL_PARAMS
    if unknown:
        raise RecipeError(
            f"unknown parameter(s) {sorted(unknown)}; known: "
            f"{sorted([*PARAM_FIELDS, *CONTROL_PARAMS])}"
        )
    out = {PARAM_FIELDS[k]: v for k, v in params.items() if k in PARAM_FIELDS and v is not None}
    extra = params.get("overrides") or {}
    if not isinstance(extra, dict):
        raise RecipeError("parameter 'overrides' must be an object of dotted recipe fields")
    out.update(extra)
    return out


def thresholds_from_params(params: dict[str, Any]) -> dict[str, Any]:
    """``{rule name: value}`` for the threshold Params that were set."""
    out = {}
    for param, rules in THRESHOLD_RULES.items():
        if params.get(param) is not None:
            out.update(dict.fromkeys(rules, params[param]))
    return out


def site_overrides() -> dict[str, Any]:
    """Deployment-wide dotted overrides from ``$LAIONFLOW_SITE_OVERRIDES`` (a JSON or YAML
    file): a site's dataset root, metadata mirrors, local CLIP weights, worker sizes. They
    apply over the recipe's defaults and under the trigger form, so a user still changes any
    of them per run."""
    path = os.environ.get("LAIONFLOW_SITE_OVERRIDES")
    if not path:
        return {}
    import yaml

    with fs.open(path, "r") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: site overrides must be a mapping of dotted keys")
    return data


def resolve(recipe_name: str, params: dict[str, Any]) -> Recipe:
    overrides = {**site_overrides(), **overrides_from_params(params)}
    return load_recipe(recipe_name, overrides, thresholds_from_params(params))


def write_run_config(recipe: Recipe, run_id: str) -> str:
    path = f"{Layout(recipe.dataset_root).run_dir(run_id)}/config.json"
    fs.write_json(path, recipe.model_dump(mode="json"))
    return path


def plan(recipe_name: str, params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Validate and persist the run config; returned as the plan task's XCom."""
    recipe = resolve(recipe_name, params)
    config_path = write_run_config(recipe, run_id)
    return {
        "config_path": config_path,
        "dataset_root": recipe.dataset_root,
        "run_dir": config_path.rpartition("/")[0],
        "source": recipe.source,
        "force": bool(params.get("force")),
        "dry_run": bool(params.get("dry_run")),
        "max_output_bytes": _size(params.get("max_output_bytes")),
    }


def _size(value: Any) -> int | None:
    """The ``max_output_bytes`` Param (bytes or text like ``2TB``), failing the plan task
    with the reason rather than the estimate."""
    try:
        return parse_size(value)
    except ValueError as err:
        raise RecipeError(f"parameter 'max_output_bytes': {err}") from None


def selected_parts(config_path: str) -> list[int]:
    """Parts produced by the filter stage, narrowed to the run's ``part_ids`` if given."""
    from laionflow.recipes import resolve as read_config

    recipe = read_config(config_path)
    stats = fs.read_json(Layout(recipe.dataset_root).filter_stats)
    parts = sorted(int(p) for p in stats["parts"])
    if recipe.part_ids is not None:
        missing = sorted(set(recipe.part_ids) - set(parts))
        if missing:
            raise RecipeError(f"part_ids {missing} do not exist; parts are {parts}")
        parts = [p for p in parts if p in set(recipe.part_ids)]
    return parts
