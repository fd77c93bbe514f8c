"""Build a recipe's DAG. DAG files call :func:`recipe_dag` and nothing else.

Shape: plan → metadata_available (sensor, reschedule mode) → metadata → filter
(spark-submit) → parts → estimate (stops on ``max_output_bytes``, short-circuits a dry run)
→ download[part] → annotate[part] → embed[part] (pool ``gpu``) → scores[part] → score_filter
→ index → semdedup → report. Where CLIP inference runs is a deployment setting
(``$LAIONFLOW_EMBED_ENGINE``): ``local`` (default) maps the stage over the parts on the workers
(queue ``$LAIONFLOW_GPU_QUEUE``), ``spark`` submits one Spark job whose tasks share the parts
over the cluster's GPUs (``spark.task.resource.gpu.amount``). Same job code either way. The
image download likewise (``$LAIONFLOW_DOWNLOAD_ENGINE``): ``local`` maps it over the parts,
``spark`` submits one job whose executors share every part's shards (img2dataset's pyspark
distributor).
Nothing here reads files or imports laionflow's
heavy modules at parse time: the recipe is loaded and validated by ``plan`` at run time.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, task

from operators.assets import asset
from operators.params import prepackaged_params, recipe_params
from operators.sensors import MetadataAvailableSensor
from operators.spark import LaionflowSparkSubmitOperator
from operators.stage import MAP_INDEX, LaionflowStageOperator, gpu_placement

NETWORK_RETRIES = {
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}


def spark_gpu_conf() -> dict[str, str]:
    """Spark GPU scheduling for the inference job: ``$LAIONFLOW_SPARK_GPUS_PER_EXECUTOR`` GPUs
    per executor, one per task, found by ``$LAIONFLOW_SPARK_GPU_DISCOVERY`` (Spark's
    ``getGpusResources.sh``). Unset: no GPU resources (tasks run on CPU)."""
    gpus = os.environ.get("LAIONFLOW_SPARK_GPUS_PER_EXECUTOR")
    if not gpus:
        return {}
    conf = {"spark.executor.resource.gpu.amount": gpus, "spark.task.resource.gpu.amount": "1"}
    script = os.environ.get("LAIONFLOW_SPARK_GPU_DISCOVERY")
    if script:
        conf["spark.executor.resource.gpu.discoveryScript"] = script
    return conf


def recipe_dag(
    recipe: str, *, schedule: Any = None, prepackaged: bool = False, **dag_kwargs: Any
) -> DAG:
    """``prepackaged=True`` adds the tar-pack path (fetch → extract → index), chosen at
    trigger time by the ``source`` Param."""
    params = {**recipe_params(), **(prepackaged_params() if prepackaged else {})}
    dag_kwargs.setdefault("tags", ["laionflow", recipe])
    dag_kwargs.setdefault("max_active_runs", 1)
    dag_kwargs.setdefault(
        "doc_md",
        f"laionflow recipe **{recipe}**: metadata → filter → "
        "download → annotations → CLIP → index → report.",
    )
    with DAG(
        dag_id=recipe,
        schedule=schedule,
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
                return make_plan(recipe, dict(context["params"]), context["run_id"])

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
        metadata = LaionflowStageOperator(
            task_id="metadata", stage="metadata", config_path=config, force=force, **NETWORK_RETRIES
        )
        filter_job = LaionflowSparkSubmitOperator(
            task_id="filter",
            outlets=[asset(recipe, "filtered_metadata")],
            job="filter_dedup.py",
            conn_id="spark_default",
            pool="spark",
            application_args=["--config", config, "--force", force],
        )
        part_list = parts(config)
        gate = estimate(planned, part_list)

        def per_part(stage: str, **kwargs: Any):
            return LaionflowStageOperator.partial(
                task_id=stage,
                stage=stage,
                config_path=config,
                force=force,
                map_index_template=MAP_INDEX,
                **kwargs,
            ).expand(part=part_list)

        def on_spark(stage: str, job: str, **kwargs: Any):
            """One Spark job over every part, when ``$LAIONFLOW_<STAGE>_ENGINE=spark``."""
            if os.environ.get(f"LAIONFLOW_{stage.upper()}_ENGINE", "local") != "spark":
                return None
            op = LaionflowSparkSubmitOperator(
                task_id=stage,
                job=job,
                conn_id=os.environ.get(f"LAIONFLOW_{stage.upper()}_SPARK_CONN", "spark_default"),
                **kwargs,
            )
            part_list >> op
            return op

        download = on_spark(
            "download",
            "download_parts.py",
            pool="spark",
            application_args=["--config", config, "--force", force],
            **NETWORK_RETRIES,
        )
        if download is None:
            download = per_part("download", **NETWORK_RETRIES)
        annotate = per_part("annotate", outlets=[asset(recipe, "shards")])
        embed = on_spark(
            "embed",
            "embed_parts.py",
            pool="gpu",
            conf=spark_gpu_conf(),
            application_args=["--config", config],
            outlets=[asset(recipe, "embeddings")],
        )
        if embed is None:
            embed = per_part(
                "embed",
                outlets=[asset(recipe, "embeddings")],
                retry_exponential_backoff=True,
                **gpu_placement(),
            )
        scores = per_part("scores", **gpu_placement())  # skipped unless the recipe has a YAML
        score_filter = LaionflowStageOperator(
            task_id="score_filter", stage="score_filter", config_path=config
        )
        index = LaionflowStageOperator(
            task_id="index",
            outlets=[asset(recipe, "index")],
            stage="index",
            config_path=config,
            force=force,
        )
        semdedup = LaionflowStageOperator(task_id="semdedup", stage="semdedup", config_path=config)
        report = LaionflowStageOperator(task_id="report", stage="report", config_path=config)
        available >> metadata >> filter_job >> part_list
        if prepackaged:
            _prepackaged_branch(recipe, planned, available)
        gate >> download
        download >> annotate >> embed >> scores >> score_filter >> index >> semdedup >> report
    return dag


def _prepackaged_branch(recipe: str, planned: Any, available: Any) -> None:
    """source=prepackaged: pack_fetch → pack_extract → pack_index; else the standard chain."""

    @task.branch(task_id="source", retries=0)
    def source(planned: dict) -> str:
        return "pack_fetch" if planned["source"] == "prepackaged" else "metadata_available"

    config, force = planned["config_path"], planned["force"]
    fetch = LaionflowStageOperator(
        task_id="pack_fetch", stage="pack_fetch", config_path=config, force=force, **NETWORK_RETRIES
    )
    extract = LaionflowStageOperator(
        task_id="pack_extract", stage="pack_extract", config_path=config, force=force
    )
    index = LaionflowStageOperator(
        task_id="pack_index",
        stage="pack_index",
        config_path=config,
        outlets=[asset(recipe, "shards")],
    )
    source(planned) >> [available, fetch]
    fetch >> extract >> index
