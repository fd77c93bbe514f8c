"""A row of the stage table (:mod:`laionflow.stages`) as an Airflow task.

The engine the table chose becomes the operator class here and nowhere else — ``LOCAL``: the
stage CLI on a worker (:class:`LaionflowStageOperator`, mapped over the parts when the stage is
per part); ``SPARK``: one ``spark-submit`` of its job (:class:`LaionflowSparkSubmitOperator`).
Pools, queues, retries and Assets come from what the stage declares.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from laionflow.spark import gpu_conf
from laionflow.stages import STAGES, Engine, Stage
from operators.assets import asset
from operators.spark import LaionflowSparkSubmitOperator
from operators.stage import MAP_INDEX, LaionflowStageOperator

NETWORK_RETRIES = {
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}


def task_kwargs(stage: Stage, engine: Engine, recipe: str) -> dict[str, Any]:
    """Pool/queue, retries and outlets of a stage's task on ``engine``."""
    kwargs: dict[str, Any] = dict(stage.placement(engine))
    if stage.resources.network:
        kwargs.update(NETWORK_RETRIES)
    if stage.asset:
        kwargs["outlets"] = [asset(recipe, stage.asset)]
    return kwargs


def stage_task(
    recipe: str,
    name: str,
    *,
    config: Any,
    force: Any = False,
    parts: Any = None,
    local_kwargs: dict[str, Any] | None = None,
) -> Any:
    """The task of stage ``name`` where the deployment runs it. ``parts`` (the task listing
    the run's parts) is what per-part stages map over, and what a Spark job waits for;
    ``local_kwargs`` apply only to worker tasks."""
    stage = STAGES[name]
    engine = stage.engine()
    kwargs = task_kwargs(stage, engine, recipe)
    if engine is Engine.SPARK:
        op = LaionflowSparkSubmitOperator(
            task_id=name,
            job=stage.spark_job,
            stage=name,
            conn_id=stage.spark_conn(),
            config_path=config,
            force=force,
            conf=gpu_conf() if stage.resources.gpu else None,
            **kwargs,
        )
        if parts is not None and stage.per_part:
            parts >> op
        return op
    kwargs.update(task_id=name, stage=name, config_path=config, force=force, **(local_kwargs or {}))
    if stage.per_part:
        partial = LaionflowStageOperator.partial(map_index_template=MAP_INDEX, **kwargs)
        return partial.expand(part=parts)
    return LaionflowStageOperator(**kwargs)
