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
    assert all(r.kind in JSON_TYPES | {"size"} for r in ROWS.values())


def test_plan_maps_params_through_the_table():
    from laionflow.plan import overrides_from_params, thresholds_from_params

    assert overrides_from_params({"image_size": 64, "device": None, "pack_end": 3}) == {
        "download.image_size": 64,
        "prepackaged.end": 3,
    }
    assert thresholds_from_params({"min_image_size": 32}) == {"min_width": 32, "min_height": 32}


def _schema_default(dotted: str):
    model: type[BaseModel] = Recipe
    *parents, leaf = dotted.split(".")
    for key in parents:
        annotation = model.model_fields[key].annotation
        model = next(
            a
            for a in (annotation, *typing.get_args(annotation))
            if isinstance(a, type) and issubclass(a, BaseModel)
        )
    return model.model_fields[leaf].get_default(call_default_factory=True)


def test_schema_defaults_of_the_form_are_the_schemas():
    from laionflow.form_values import SCHEMA_DEFAULTS

    assert set(SCHEMA_DEFAULTS) == set(PARAM_FIELDS.values()) - {"metadata.urls"}
    assert {k: _schema_default(k) for k in SCHEMA_DEFAULTS} == SCHEMA_DEFAULTS


@pytest.mark.parametrize(
    "text, want",
    [
        ("2TB", 2 * 10**12),
        ("2tb", 2 * 10**12),
        (" 500 GB ", 500 * 10**9),
        ("1.5TiB", 3 * 2**39),
        ("1.1T", 1_100_000_000_000),
        ("750k", 750_000),
        ("64MiB", 64 * 2**20),
        ("1000", 1000),
        ("12B", 12),
        (1000, 1000),
        (None, None),
        ("", None),
    ],
)
def test_sizes_accept_text(text, want):
    from laionflow.form import parse_size

    assert parse_size(text) == want


@pytest.mark.parametrize("text", ["2 TBs", "TB", "-5", "2XB", "1e3", "2,5GB", "1.5Ti", True, -1])
def test_bad_sizes_fail_with_the_text(text):
    from laionflow.form import parse_size

    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_the_form_pattern_accepts_exactly_what_the_parser_does():
    import re

    from laionflow.form import ROWS, parse_size

    pattern = ROWS["max_output_bytes"].json_schema()["pattern"]
    for text in ["2TB", "2 tb", "1.5TiB", "10", "3k", "4Kb", "2 TBs", "TB", "-5", "1e3", "1.5Ti"]:
        try:
            parse_size(text)
            parsed = True
        except ValueError:
            parsed = False
        assert bool(re.match(pattern, text)) == parsed, text
