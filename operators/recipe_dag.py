"""Build a recipe's DAG. DAG files call :func:`recipe_dag` and nothing else.

Shape: plan → metadata_available (sensor, reschedule mode) → metadata → filter
(spark-submit) → parts → estimate (stops on ``max_output_bytes``, short-circuits a dry run)
→ download[part] → annotate[part] → embed[part] (pool ``gpu``) → scores[part] → score_filter
→ index → semdedup → report: the stage table's ``PIPELINE`` (:mod:`laionflow.stages`), each
stage where the deployment runs it (:func:`operators.tasks.stage_task`; e.g.
``$LAIONFLOW_EMBED_ENGINE=spark`` moves CLIP inference to one Spark job over the cluster's
GPUs, ``$LAIONFLOW_DOWNLOAD_ENGINE=spark`` the download to img2dataset's pyspark distributor).
Nothing here reads files or imports laionflow's heavy modules at parse time: the recipe is
loaded and validated by ``plan`` at run time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, PartitionedAtRuntime, task

from laionflow.stages import PREPACKAGED, pipeline
from operators.params import recipe_params
from operators.sensors import MetadataAvailableSensor
from operators.tasks import stage_task


def recipe_dag(
    recipe: str,
    *,
    schedule: Any = None,
    prepackaged: bool = False,
    recaption: bool = False,
    **dag_kwargs: Any,
) -> DAG:
    """``prepackaged=True`` adds the tar-pack path (fetch → extract → index), chosen at
    trigger time by the ``source`` Param; ``recaption=True`` the recaption stage (after
    annotate) and the OpenUni export (before the report), both no-ops unless the recipe
    turns ``recaption.enabled`` on."""
    stages = pipeline(recaption)
    params = recipe_params(recipe, prepackaged)
    dag_kwargs.setdefault("tags", ["laionflow", recipe])
    dag_kwargs.setdefault("max_active_runs", 1)
    dag_kwargs.setdefault(
        "doc_md",
        f"laionflow recipe **{recipe}**: metadata → filter → "
        "download → annotations → CLIP → index → report.",
    )
    with DAG(
        dag_id=recipe,
        # no time schedule; a run may carry a partition_key (``part_00003``, set by
        # ``laionflow backfill`` or the form's "Partition key"): the part it works on
        schedule=schedule if schedule is not None else PartitionedAtRuntime(),
        catchup=False,
        params=params,
        default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
        **dag_kwargs,
    ) as dag:

        @task(task_id="plan", retries=0)
        def plan(**context: Any) -> dict:
            from laionflow.plan import plan as make_plan
            from operators.credentials import aws_environment

            with aws_environment():
                return make_plan(recipe, run_params(context), context["run_id"])

        @task(task_id="parts", retries=0)
        def parts(config_path: str) -> list[int]:
            from laionflow.plan import selected_parts
            from operators.credentials import aws_environment

            with aws_environment():
                return selected_parts(config_path)

        @task.short_circuit(task_id="estimate", retries=0)
        def estimate(planned: dict, part_ids: list[int]) -> bool:
            """Log the storage/time estimate; stop on max_output_bytes; skip on dry run."""
            from laionflow.jobs.estimate import run as run_estimate
            from laionflow.recipes import resolve as read_config
            from operators.credentials import aws_environment

            with aws_environment():
                config = read_config(planned["config_path"])
                run_estimate(config, part_ids, planned["max_output_bytes"], planned["run_dir"])
            return not planned["dry_run"]

        planned = plan()
        config = planned["config_path"]
        force = planned["force"]
        available = MetadataAvailableSensor(task_id="metadata_available", config_path=config)
        part_list = parts(config)
        gate = estimate(planned, part_list)
        tasks = _stage_tasks(recipe, stages, config, force, part_list)
        available >> tasks["metadata"] >> tasks["filter"] >> part_list
        if prepackaged:
            _prepackaged_branch(recipe, planned, available)
        gate >> tasks["download"]
        chain = [tasks[name] for name in stages[stages.index("download") :]]
        for upstream, downstream in zip(chain, chain[1:], strict=False):
            upstream >> downstream
    return dag


def _stage_tasks(recipe: str, stages: tuple, config: Any, force: Any, parts: Any) -> dict:
    """The task of each stage, by name."""
    return {
        name: stage_task(
            recipe,
            name,
            config=config,
            force=force,
            parts=parts,
            # a GPU worker may be busy or short of memory: back off between tries
            local_kwargs={"retry_exponential_backoff": True}
            if name in ("embed", "recaption")
            else None,
        )
        for name in stages
    }


def run_params(context: Any) -> dict:
    """The run's Params; a run with a ``partition_key`` (``part_00003``) and no part ids
    works on that one part."""
    params = dict(context["params"])
    key = getattr(context["dag_run"], "partition_key", None)
    if key and not params.get("part_ids"):
        from laionflow.backfill import part_of_key

        params["part_ids"] = [part_of_key(key)]
    return params


def _prepackaged_branch(recipe: str, planned: Any, available: Any) -> None:
    """source=prepackaged: pack_fetch → pack_extract → pack_index; else the standard chain."""

    @task.branch(task_id="source", retries=0)
    def source(planned: dict) -> str:
        return "pack_fetch" if planned["source"] == "prepackaged" else "metadata_available"

    config, force = planned["config_path"], planned["force"]
    fetch, extract, index = (stage_task(recipe, n, config=config, force=force) for n in PREPACKAGED)
    source(planned) >> [available, fetch]
    fetch >> extract >> index
