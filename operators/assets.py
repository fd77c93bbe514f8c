"""The Assets laionflow publishes, one set per recipe. Downstream work is scheduled on them
(Airflow's data-aware scheduling) instead of polling the file system."""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

#: recipes with a DAG; a constant so that DAG files read nothing at parse time
RECIPES = ("laion400m", "laion2b_en_sd21", "laion6m")
ARTEFACTS = ("filtered_metadata", "shards", "embeddings", "index", "repairs", "repaired_parts")
#: the repair DAG attaches events for the recipes it actually repaired through this alias
#: (``<recipe>.repairs``: one event per recipe, no partition key, so that the non-partitioned
#: ``<recipe>_refresh`` DAG runs once and rebuilds the index once)
REPAIRS_ALIAS = AssetAlias("laionflow-repairs")


def part_events(recipe: str) -> Asset:
    """``<recipe>.repaired_parts``: one event per repaired part, its ``partition_key`` the
    part's (``part_00003``) — Airflow queues only partition-aware DAGs on keyed events, so a
    user's ``PartitionedAssetTimetable`` DAG gets one run per repaired part."""
    return asset(recipe, "repaired_parts")


def asset(recipe: str, artefact: str) -> Asset:
    if artefact not in ARTEFACTS:
        raise ValueError(f"unknown artefact {artefact!r}; known: {ARTEFACTS}")
    return Asset(
        name=f"{recipe}.{artefact}", uri=f"laionflow://{recipe}/{artefact}", group="laionflow"
    )
