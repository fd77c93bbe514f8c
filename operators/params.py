"""The trigger form shared by every recipe DAG: Airflow Params made from the form table
(:mod:`laionflow.form`), with titles, markdown descriptions, sections, enums and limits, and
each field's default the value a run of the recipe will use (:mod:`laionflow.form_values`:
the site defaults' over the recipe's over the schema's). An emptied field (null) means "use
the recipe's own setting"."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from laionflow.form import PREPACKAGED_FORM, RECIPE_FORM, ROWS, Row
from laionflow.form_values import recipe_form


def param(row: Row, **shown: Any) -> Param:
    """The Param of one form row; ``shown`` replaces its title or description (a DAG that
    uses the same value for another purpose, e.g. the repair DAG's root)."""
    return Param(row.default, **{**row.json_schema(), **shown})


def recipe_params(recipe: str, prepackaged: bool = False) -> dict[str, Param]:
    """The form of one recipe; ``prepackaged`` adds the tar-pack Params (laion6m)."""
    rows = (*RECIPE_FORM, *(PREPACKAGED_FORM if prepackaged else ()))
    return {row.param: param(row) for row in recipe_form(recipe, rows)}


def form_param(name: str, **shown: Any) -> Param:
    """A form row without a recipe's values (empty: each recipe's own)."""
    return param(ROWS[name], **shown)
