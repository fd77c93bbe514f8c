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


def part_recipe(root: Path, urls: list[str], **overrides):
    """A laion400m recipe whose filtered part 0 holds ``urls`` (as the filter stage leaves it),
    with small download settings: for tests that start at the download stage."""
    import pandas as pd

    from laionflow.recipes import load_recipe

    folder = Path(root) / "laion400m" / "metadata" / "filtered"
    folder.mkdir(parents=True, exist_ok=True)
    captions = [f"caption {i}" for i in range(len(urls))]
    pd.DataFrame({"url": urls, "caption": captions}).to_parquet(folder / "part-00000.parquet")
    base = {
        "root": str(root),
        "download.processes": 1,
        "download.threads": 8,
        "download.image_size": 32,
    }
    return load_recipe("laion400m", {**base, **overrides})


def small_run_conf(root: Path, metadata_urls: list[str], checkpoint: str, **extra) -> dict:
    """Trigger conf (the DAG Params) of a small, fast recipe run on a fixture."""
    conf = {
        "root": str(root),
        "metadata_urls": metadata_urls,
        "num_parts": 2,
        "processes": 1,
        "threads": 8,
        "image_size": 64,
        "clip_model": "laionflow-tiny",
        "clip_pretrained": checkpoint,
        "device": "cpu",
        "overrides": {
            "download.number_sample_per_shard": 50,
            "clip.num_workers": 0,
            "metadata.backoff_s": 0.05,
            "index.max_index_memory_usage": "64M",
            "index.current_memory_available": "1G",
        },
    }
    conf.update(extra)
    return conf


def run_dag(dag_id: str, conf: dict):
    """``dag.test()`` a DAG from the DAG folder; return the run and its task states."""
    from laionflow.embedded import load_dag

    run = load_dag(dag_id).test(run_conf=conf)
    return run, {(t.task_id, t.map_index): str(t.state) for t in run.get_task_instances()}


def shard_samples(dataset_root: str, part: int):
    """``key, url, status`` of every sample in a part's shard parquets, sorted by key: what
    two runs of the same part must agree on."""
    import pandas as pd

    from laionflow import fs

    frames = []
    for path in fs.ls(f"{dataset_root}/images/part_{part:05d}"):
        if path.endswith(".parquet"):
            with fs.open(path) as fh:
                frames.append(pd.read_parquet(fh, columns=["key", "url", "status"]))
    return pd.concat(frames).sort_values("key").reset_index(drop=True)
