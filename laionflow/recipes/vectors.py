"""Recipe sections of the stages that work on the embeddings: the index and semantic dedup
(their own module, so the recipe schema stays one screenful per concern)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IndexConfig(_Strict):
    """autofaiss options (its own names)."""

    max_index_memory_usage: str = "4G"
    current_memory_available: str = "8G"
    metric_type: Literal["ip", "l2"] = "ip"
    min_nearest_neighbors_to_retrieve: int = Field(default=20, ge=1)
    #: overrides laionflow.indexing's choice ("HNSW64", "IVF4096,Flat": a key autofaiss knows)
    index_key: str | None = None
    #: with index_key: its search params ("nprobe=32"; None: autofaiss tunes for 10 ms)
    index_param: str | None = None


class DedupConfig(_Strict):
    """Semantic near-duplicate removal (stage ``semdedup``)."""

    #: cosine similarity (after centring) at or above which two images are near-duplicates
    threshold: float = Field(default=0.99, gt=0, le=1)
    k: int = Field(default=16, ge=2, description="neighbours searched per sample")
    center: bool = True
