"""The trigger form shared by every recipe DAG: Airflow Params made from the form table
(:mod:`laionflow.form`), with titles, markdown descriptions, sections, enums and limits.
A null value means "use the recipe's own setting"."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from laionflow.form import PREPACKAGED_FORM, RECIPE_FORM, ROWS, Row


def param(row: Row, **shown: Any) -> Param:
    """The Param of one form row; ``shown`` replaces its title or description (a DAG that
    uses the same value for another purpose, e.g. the repair DAG's root)."""
    return Param(row.default, **{**row.json_schema(), **shown})


def recipe_params() -> dict[str, Param]:
    return {row.param: param(row) for row in RECIPE_FORM}


def prepackaged_params() -> dict[str, Param]:
    """Extra Params of recipes distributed as tar packs (laion6m)."""
    return {row.param: param(row) for row in PREPACKAGED_FORM}


def form_param(name: str, **shown: Any) -> Param:
    return param(ROWS[name], **shown)
