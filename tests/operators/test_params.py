"""Each recipe DAG's trigger form shows what a click on *Trigger* runs: every field's default
is the value a run will use (the site defaults' over the recipe's over the schema's), and a
run triggered without touching a field resolves, through the plan task itself, to exactly
the recipe as loaded."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from laionflow.recipes import available, load_recipe
from laionflow.recipes import resolve as read_config

RECIPES = available()


def _dag(recipe: str):
    from operators.recipe_dag import recipe_dag

    return recipe_dag(recipe, prepackaged=recipe == "laion6m")


def _untouched(dag) -> dict:
    """The params Airflow's task runner hands the plan task for a trigger that changes
    nothing (an empty conf: the form's defaults)."""
    from airflow.sdk.definitions.param import process_params

    return process_params(dag, dag.task_dict["plan"], {}, suppress_exception=False)


def _untouched_run(dag, run_id: str) -> dict:
    """What the plan task itself makes of them: the run config it wrote."""
    params = _untouched(dag)
    run = SimpleNamespace(partition_key=None, run_id=run_id)
    planned = dag.task_dict["plan"].python_callable(params=params, run_id=run_id, dag_run=run)
    return read_config(planned["config_path"]).model_dump(mode="json")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Site defaults that change a path, an enum, a switch and a number."""
    path = tmp_path / "site.yaml"
    values = {
        "root": str(tmp_path / "site-root"),
        "download.resize_mode": "center_crop",
        "download.ssl_verify": False,
        "download.threads": 3,
    }
    path.write_text(json.dumps(values))
    monkeypatch.setenv("LAIONFLOW_SITE_OVERRIDES", str(path))
    return values


def test_laion400m_form_shows_the_recipe():
    params = _dag("laion400m").params
    shown = {name: params[name] for name in params}
    assert shown["resize_mode"] == "border" and shown["output_format"] == "webdataset"
    assert shown["image_size"] == 256 and shown["ssl_verify"] is True  # the schema's: on
    assert shown["metadata_urls"] == ["hf://datasets/laion/laion400m/*.parquet"]
    assert shown["min_similarity"] == 0.3 and shown["min_image_size"] == 64
    assert shown["max_punsafe"] is None  # laion400m has no such rule
    schema = params.get_param("resize_mode").schema
    assert None not in schema["enum"] and schema["type"] == "string"
    assert params.get_param("ssl_verify").schema["type"] == "boolean"
    assert "no `max_punsafe` rule" in params.get_param("max_punsafe").schema["description_md"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_an_untouched_form_runs_the_recipe_with_the_site_defaults(
    recipe, site, airflow_db, tmp_path
):
    dag = _dag(recipe)
    assert dag.params["root"] == site["root"]
    assert dag.params["resize_mode"] == "center_crop" and dag.params["ssl_verify"] is False
    assert "site defaults" in dag.params.get_param("threads").schema["description_md"]
    want = load_recipe(recipe, site).model_dump(mode="json")
    assert _untouched_run(dag, "manual__untouched") == want


@pytest.mark.parametrize("recipe", RECIPES)
def test_an_untouched_form_runs_the_recipe(recipe, monkeypatch):
    from laionflow.plan import resolve

    monkeypatch.delenv("LAIONFLOW_SITE_OVERRIDES", raising=False)
    params = _untouched(_dag(recipe))
    assert resolve(recipe, params) == load_recipe(recipe)


def test_unreadable_site_defaults_leave_fields_empty_and_say_so(monkeypatch):
    monkeypatch.setenv("LAIONFLOW_SITE_OVERRIDES", "s3://bucket/site.yaml")
    params = _dag("laion400m").params
    assert params["image_size"] is None and params["ssl_verify"] is None
    text = params.get_param("image_size").schema["description_md"]
    assert "s3://bucket/site.yaml" in text and "`256`" in text
    # "keep" is a choice of its own, never a switch that reads *off*
    assert params.get_param("ssl_verify").schema["enum"] == [None, "true", "false"]
    assert params.get_param("resize_mode").schema["enum"][0] is None


def test_size_text_reaches_the_estimate_as_bytes(monkeypatch):
    from laionflow.plan import _size

    assert _size("2TB") == 2_000_000_000_000 and _size(None) is None
    with pytest.raises(ValueError, match="max_output_bytes.*2 parsecs"):
        _size("2 parsecs")


def test_the_form_takes_sizes_as_text_and_names_a_bad_one():
    from airflow.sdk.definitions.param import process_params
    from airflow.sdk.exceptions import ParamValidationError

    dag = _dag("laion400m")
    plan = dag.task_dict["plan"]
    for given in ("2TB", "1.5 TiB", 2_000_000, None):
        conf = {"max_output_bytes": given}
        assert process_params(dag, plan, conf, suppress_exception=False) is not None
    with pytest.raises(ParamValidationError, match="max_output_bytes"):
        process_params(dag, plan, {"max_output_bytes": "2 parsecs"}, suppress_exception=False)
