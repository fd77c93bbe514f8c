"""Helpers shared by tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path


def small_overrides(root: Path, corpus, checkpoint: str, **extra) -> dict:
    """Dotted recipe overrides that make laion400m fit a test: fixture URLs, tiny model."""
    base = {
        "root": str(root),
        "metadata.urls": corpus.metadata_urls,
        "metadata.backoff_s": 0.05,
        "filter.num_parts": 2,
        "download.processes": 1,
        "download.threads": 8,
        "download.number_sample_per_shard": 64,
        "clip.model": "laionflow-tiny",
        "clip.pretrained": checkpoint,
        "clip.device": "cpu",
        "clip.num_workers": 0,
        "index.max_index_memory_usage": "64M",
        "index.current_memory_available": "1G",
    }
    base.update(extra)
    return base
