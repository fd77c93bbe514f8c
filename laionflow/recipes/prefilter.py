"""``metadata.prefiltered``: metadata that already holds a recipe's selection (the SD 2.1
guide's ``jasonhuang23/laion2b_en_sd2.1base``, its 64 parts filtered by the guide's rules).

Applied when a run's recipe is resolved (:func:`laionflow.recipes.load_recipe`, which the
plan task, the CLI and the tests share), before any stage sees it: the prefiltered URLs
replace ``metadata.urls``, the filter's rules are emptied and its dedup keys become every
column. So every filter engine (Spark, DuckDB) honours it without knowing of it, and the
resolved run config says plainly what ran. The filter stage still applies its built-in checks
(a row without a usable URL or caption cannot be downloaded), shuffles, partitions and counts
every row, so the ledger balances; only verbatim copies of a row — the same sample twice —
are merged, counted as duplicates.
"""

from __future__ import annotations

from typing import Any

from laionflow.schema import CANONICAL_TYPES


def prefiltered(data: Any) -> Any:
    """Raw recipe data as the filter must see it; unchanged unless ``metadata.prefiltered``."""
    meta = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(meta, dict) or not meta.get("prefiltered"):
        return data
    data = {**data, "metadata": dict(meta), "filter": dict(data.get("filter") or {})}
    if meta.get("prefiltered_urls"):
        data["metadata"]["urls"] = list(meta["prefiltered_urls"])
    data["filter"]["rules"] = []
    data["filter"]["dedup_keys"] = list(CANONICAL_TYPES)
    return data
