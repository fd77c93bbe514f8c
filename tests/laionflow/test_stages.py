"""The stage table: every row resolves to a real function with the signature its shape
promises, every Spark engine has its entry point, and the engine is one deployment choice."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from laionflow.stages import PIPELINE, PREPACKAGED, REFRESH, STAGES, Engine

SPARK_JOBS = Path(__file__).resolve().parents[2] / "spark_jobs"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_row_resolves_to_a_stage_function(name):
    stage = STAGES[name]
    params = inspect.signature(stage.function()).parameters
    assert list(params)[0] == "recipe" and "force" in params
    assert ("part" in params) == stage.per_part
    if Engine.SPARK in stage.engines:
        assert (SPARK_JOBS / stage.spark_job).is_file()


def test_chains_name_known_stages():
    assert set(PIPELINE) | set(PREPACKAGED) | set(REFRESH) <= set(STAGES)


def test_engine_is_the_deployment_choice(monkeypatch):
    embed, index = STAGES["embed"], STAGES["index"]
    assert embed.engine() is Engine.LOCAL
    assert embed.placement(Engine.LOCAL) == {"pool": "gpu", "queue": "default"}
    monkeypatch.setenv("LAIONFLOW_EMBED_ENGINE", "spark")
    monkeypatch.setenv("LAIONFLOW_GPU_QUEUE", "gpu")
    assert embed.engine() is Engine.SPARK and embed.placement(Engine.SPARK) == {"pool": "gpu"}
    assert STAGES["scores"].placement(Engine.LOCAL) == {"pool": "gpu", "queue": "gpu"}
    assert STAGES["filter"].engine() is Engine.SPARK  # its only engine
    assert STAGES["filter"].placement(Engine.SPARK) == {"pool": "spark"}
    monkeypatch.setenv("LAIONFLOW_INDEX_ENGINE", "spark")
    assert index.engine() is Engine.LOCAL  # one engine: the setting does not apply
    monkeypatch.setenv("LAIONFLOW_EMBED_ENGINE", "yarn")
    with pytest.raises(ValueError):
        embed.engine()
