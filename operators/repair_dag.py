"""The scheduled repair DAG and the per-recipe refresh DAGs it feeds through Assets.

``laionflow_repair`` (daily by default, ``$LAIONFLOW_REPAIR_SCHEDULE``; also triggerable for
chosen recipes and parts): for each recipe's dataset, finds parts with missing shards or with
retryable failed URLs whose backoff has elapsed, runs the ``repair`` stage on each (missing
shards, then patch shards for those URLs — never rewriting a complete shard), rewrites their
annotations, and attaches a ``<recipe>.repairs`` Asset event per repaired recipe (its
``extra`` names the parts and their partition keys) and, per repaired part, a
``<recipe>.repaired_parts`` event with the part's native ``partition_key`` (``part_00003``).
``<recipe>_refresh`` is scheduled on that Asset: it embeds the new samples only (the patch
shards), then rebuilds the index from the stored embeddings and the report. With nothing to
repair, the mapped tasks are skipped and the run succeeds.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import DAG, Param, task

from laionflow.stages import REFRESH, STAGES, Engine
from operators.assets import RECIPES, REPAIRS_ALIAS, asset, part_events
from operators.params import form_param
from operators.stage import MAP_INDEX, LaionflowStageOperator
from operators.tasks import task_kwargs


def repair_dag() -> DAG:
    params = {
        "recipes": Param(
            list(RECIPES),
            type="array",
            title="Recipes",
            description_md="Recipes whose datasets are scanned.",
            items={"type": "string", "enum": list(RECIPES)},
        ),
        "root": form_param(
            "root",
            title="Dataset root",
            description_md="Parent folder of the datasets; empty: the site's or each recipe's.",
        ),
        "part_ids": form_param(
            "part_ids",
            title="Parts",
            description_md="Only these part ids (e.g. `[3, 7]`); empty: every part.",
        ),
    }
    with DAG(
        dag_id="laionflow_repair",
        schedule=os.environ.get("LAIONFLOW_REPAIR_SCHEDULE", "@daily"),
        catchup=False,
        max_active_runs=1,
        params=params,
        tags=["laionflow", "repair"],
        doc_md=__doc__,
    ) as dag:

        @task(task_id="scan", retries=0)
        def scan(**context: Any) -> list[dict]:
            from laionflow.repair import scan as scan_datasets
            from operators.credentials import aws_environment

            params = context["params"]
            with aws_environment():  # an S3 root is scanned with the connection's keys
                return scan_datasets(params["recipes"], params["root"], params["part_ids"])

        targets = scan()
        repair = LaionflowStageOperator.partial(
            task_id="repair",
            stage="repair",
            map_index_template=MAP_INDEX,
            retries=3,
            retry_exponential_backoff=True,
        ).expand_kwargs(targets)
        annotate = LaionflowStageOperator.partial(
            task_id="annotate",
            stage="annotate",
            map_index_template=MAP_INDEX,
        ).expand_kwargs(targets)

        @task(task_id="publish", outlets=[REPAIRS_ALIAS])
        def publish(targets: list[dict], *, outlet_events: Any = None) -> dict:
            from laionflow.recipes import resolve
            from operators.credentials import aws_environment

            by_config: dict[str, list[int]] = {}
            for t in targets:
                by_config.setdefault(t["config_path"], []).append(t["part"])
            out = {}
            for config_path, parts in by_config.items():
                with aws_environment():
                    name = resolve(config_path).name
                keys = [partition_key(p) for p in parts]
                outlet_events[REPAIRS_ALIAS].add(
                    asset(name, "repairs"),
                    extra={"config_path": config_path, "parts": parts, "partition_keys": keys},
                )
                out[name] = {"config_path": config_path, "parts": parts}
            return out

        published = publish(targets)
        repair >> annotate >> published
        for recipe in RECIPES:
            publish_parts(recipe)(published)
    return dag


def partition_key(part: int) -> str:
    from laionflow.backfill import partition_key as key

    return key(part)


def publish_parts(recipe: str) -> Any:
    """The task that gives each of ``recipe``'s repaired parts its keyed Asset event;
    skipped (no event) when the recipe had nothing repaired."""

    @task(task_id=f"parts_{recipe}", outlets=[part_events(recipe)])
    def parts(published: dict, *, outlet_events: Any = None) -> list[str]:
        from airflow.sdk.exceptions import AirflowSkipException

        if recipe not in published:
            raise AirflowSkipException(f"nothing of {recipe} was repaired")
        keys = [partition_key(p) for p in published[recipe]["parts"]]
        events = outlet_events[part_events(recipe)]
        events.extra = {"config_path": published[recipe]["config_path"]}
        events.add_partitions(keys)
        return keys

    return parts


def refresh_dag(recipe: str) -> DAG:
    with DAG(
        dag_id=f"{recipe}_refresh",
        schedule=[asset(recipe, "repairs")],
        catchup=False,
        max_active_runs=1,
        tags=["laionflow", recipe],
        params={
            "config_path": Param(None, type=["null", "string"]),
            "parts": Param(None, type=["null", "array"]),
        },
        doc_md=f"Re-embed, re-index and re-report **{recipe}** after a repair.",
    ) as dag:

        @task(task_id="targets", retries=0)
        def targets(**context: Any) -> list[dict]:
            """Parts named by the triggering repairs events (or by the Params, when manual)."""
            found: dict[str, set[int]] = {}
            for events in context["triggering_asset_events"].values():
                for event in events:
                    found.setdefault(event.extra["config_path"], set()).update(event.extra["parts"])
            if not found and context["params"]["config_path"]:
                found[context["params"]["config_path"]] = set(context["params"]["parts"] or [])
            return [{"config_path": c, "part": p} for c, ps in found.items() for p in sorted(ps)]

        @task(task_id="config", retries=0)
        def config(targets: list[dict]) -> str | None:
            return targets[0]["config_path"] if targets else None

        t = targets()
        cfg = config(t)
        chain = []
        for name in REFRESH:  # on workers: only the repaired parts are re-embedded
            stage = STAGES[name]
            kwargs = {"task_id": name, "stage": name, **task_kwargs(stage, Engine.LOCAL, recipe)}
            if stage.per_part:
                op = LaionflowStageOperator.partial(map_index_template=MAP_INDEX, **kwargs)
                chain.append(op.expand_kwargs(t))
            else:
                chain.append(LaionflowStageOperator(config_path=cfg, **kwargs))
        for upstream, downstream in zip(chain, chain[1:], strict=False):
            upstream >> downstream
    return dag
