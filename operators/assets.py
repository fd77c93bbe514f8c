"""The Assets laionflow publishes, one set per recipe. Downstream work is scheduled on them
(Airflow's data-aware scheduling) instead of polling the file system."""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

#: recipes with a DAG; a constant so that DAG files read nothing at parse time
RECIPES = ("laion400m", "laion2b_en_sd21", "laion6m")
ARTEFACTS = ("filtered_metadata", "shards", "embeddings", "index", "repairs")
#: the repair DAG attaches events for the recipes it actually repaired through this alias
REPAIRS_ALIAS = AssetAlias("laionflow-repairs")


def asset(recipe: str, artefact: str) -> Asset:
    if artefact not in ARTEFACTS:
        raise ValueError(f"unknown artefact {artefact!r}; known: {ARTEFACTS}")
    return Asset(
        name=f"{recipe}.{artefact}", uri=f"laionflow://{recipe}/{artefact}", group="laionflow"
    )
