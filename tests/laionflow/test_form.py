"""The trigger form table says what the recipe schema says: each Param that sets a recipe
field has that field's type, limits and enum, so the form and the validation cannot drift."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from laionflow.form import CONTROL_PARAMS, PARAM_FIELDS, ROWS, THRESHOLD_RULES
from laionflow.recipes.schema import Recipe

LIMITS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum")
JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object"}


def _field_schema(dotted: str) -> dict:
    """JSON schema of a dotted recipe field, its nullable branch removed."""
    model: type[BaseModel] = Recipe
    *parents, leaf = dotted.split(".")
    for key in parents:
        annotation = model.model_fields[key].annotation
        model = next(
            a
            for a in (annotation, *typing.get_args(annotation))
            if isinstance(a, type) and issubclass(a, BaseModel)
        )
    prop = model.model_json_schema()["properties"][leaf]
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    assert len(branches) == 1, (dotted, prop)
    return branches[0]


@pytest.mark.parametrize("param", sorted(PARAM_FIELDS))
def test_row_limits_are_the_schemas(param):
    row, want = ROWS[param], _field_schema(PARAM_FIELDS[param])
    assert row.kind == want["type"], param
    assert {k: row.schema[k] for k in LIMITS if k in row.schema} == {
        k: want[k] for k in LIMITS if k in want
    }


def test_every_param_is_a_field_a_threshold_or_a_control():
    assert set(ROWS) == set(PARAM_FIELDS) | set(THRESHOLD_RULES) | CONTROL_PARAMS
    assert CONTROL_PARAMS == {"force", "overrides", "dry_run", "max_output_bytes"}
    assert all(r.kind in JSON_TYPES for r in ROWS.values())


def test_plan_maps_params_through_the_table():
    from laionflow.plan import overrides_from_params, thresholds_from_params

    assert overrides_from_params({"image_size": 64, "device": None, "pack_end": 3}) == {
        "download.image_size": 64,
        "prepackaged.end": 3,
    }
    assert thresholds_from_params({"min_image_size": 32}) == {"min_width": 32, "min_height": 32}
