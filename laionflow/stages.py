"""The stage table: every stage's name, its function, whether it runs per part, what it needs
and where it may run. The CLI, the recipe DAG factory, the refresh DAG and the Spark entry
points read it, so adding a stage is one entry here plus its module in ``laionflow/jobs/``.

Where a stage runs is one typed choice, :class:`Engine`, made in one place
(:meth:`Stage.engine`, from the deployment's ``$LAIONFLOW_<STAGE>_ENGINE``); ``operators/``
turns it into an operator class. What a stage needs (a GPU, a pool, network retries) is
declared next to it, as NeMo Curator's stages declare their resources. No Airflow import.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Engine(StrEnum):
    """Where a stage's work runs."""

    #: the stage CLI as a subprocess of an Airflow worker (per part: one mapped task each)
    LOCAL = "local"
    #: one ``spark-submit`` of the stage's ``spark_jobs/`` entry point over every part
    SPARK = "spark"
    #: the stage in one process on DuckDB (the filter's single-node engine: no JVM); its task
    #: is a worker task like ``LOCAL``'s
    DUCKDB = "duckdb"


@dataclass(frozen=True)
class Resources:
    """What a stage's tasks need from the deployment."""

    #: CLIP-type work: pool ``gpu`` and queue ``$LAIONFLOW_GPU_QUEUE`` on workers; Spark GPU
    #: scheduling (``laionflow.spark.gpu_conf``) on Spark
    gpu: bool = False
    #: talks to remote servers: retried with exponential backoff
    network: bool = False


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    func: str = "run"
    per_part: bool = False
    resources: Resources = Resources()
    engines: tuple[Engine, ...] = (Engine.LOCAL,)
    #: ``spark_jobs/<file>`` run when the engine is Spark
    spark_job: str | None = None
    #: the Asset (``laionflow://<recipe>/<asset>``) its task publishes, if any
    asset: str | None = None

    def function(self) -> Callable[..., dict]:
        """``f(recipe, [part], force) -> summary``."""
        return getattr(importlib.import_module(self.module), self.func)

    def engine(self, recipe=None) -> Engine:
        """The recipe's choice (``<stage>.engine``, e.g. ``filter.engine``), else the
        deployment's (``$LAIONFLOW_<STAGE>_ENGINE``), else the stage's first engine; a stage
        with one engine always runs there."""
        if len(self.engines) == 1:
            return self.engines[0]
        default = os.environ.get(f"LAIONFLOW_{self.name.upper()}_ENGINE", self.engines[0].value)
        chosen = Engine(getattr(getattr(recipe, self.name, None), "engine", None) or default)
        if chosen not in self.engines:
            raise ValueError(f"stage {self.name} cannot run on {chosen.value}")
        return chosen

    def spark_conn(self) -> str:
        """The Spark connection of its job: ``$LAIONFLOW_<STAGE>_SPARK_CONN``."""
        return os.environ.get(f"LAIONFLOW_{self.name.upper()}_SPARK_CONN", "spark_default")

    def placement(self, engine: Engine) -> dict[str, str]:
        """Pool (and queue) of its tasks on ``engine``: GPU work in pool ``gpu`` (queue
        ``$LAIONFLOW_GPU_QUEUE`` on workers), other Spark jobs in pool ``spark``."""
        if self.resources.gpu and engine is Engine.LOCAL:
            return {"pool": "gpu", "queue": os.environ.get("LAIONFLOW_GPU_QUEUE", "default")}
        if engine is Engine.SPARK:
            return {"pool": "gpu" if self.resources.gpu else "spark"}
        return {}


_JOBS = "laionflow.jobs"
_GPU = Resources(gpu=True)
_NET = Resources(network=True)
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("metadata", f"{_JOBS}.metadata", resources=_NET),
        Stage(
            "filter",
            f"{_JOBS}.filter",
            engines=(Engine.SPARK, Engine.DUCKDB),
            spark_job="filter_dedup.py",
            asset="filtered_metadata",
        ),
        Stage(
            "download",
            f"{_JOBS}.download",
            per_part=True,
            resources=_NET,
            engines=(Engine.LOCAL, Engine.SPARK),
            spark_job="download_parts.py",
        ),
        Stage("annotate", f"{_JOBS}.annotate", per_part=True, asset="shards"),
        Stage(
            "embed",
            f"{_JOBS}.embed",
            per_part=True,
            resources=_GPU,
            engines=(Engine.LOCAL, Engine.SPARK),
            spark_job="embed_parts.py",
            asset="embeddings",
        ),
        Stage("scores", f"{_JOBS}.scores", per_part=True, resources=_GPU),
        # face-blurred copies of the shards (recipe switch ``safety.blur_faces``)
        Stage("blur", f"{_JOBS}.blur", per_part=True),
        Stage("recaption", f"{_JOBS}.recaption", per_part=True, resources=_GPU),
        Stage("openuni_export", "laionflow.export.openuni"),
        Stage("score_filter", f"{_JOBS}.scorefilter"),
        Stage("index", f"{_JOBS}.index", asset="index"),
        Stage("semdedup", f"{_JOBS}.semdedup"),
        Stage("report", "laionflow.reporting.ledger"),
        Stage("repair", f"{_JOBS}.patch", per_part=True, resources=_NET),
        Stage("pack_fetch", f"{_JOBS}.packs", "fetch", resources=_NET),
        Stage("pack_extract", f"{_JOBS}.packs", "extract"),
        Stage("pack_index", f"{_JOBS}.packs", "index", asset="shards"),
    )
}
#: the recipe DAG's chain (``parts``/``estimate`` sit between ``filter`` and ``download``)
PIPELINE = (
    "metadata",
    "filter",
    "download",
    "annotate",
    "embed",
    "scores",
    "blur",
    "score_filter",
    "index",
    "semdedup",
    "report",
)
#: re-captioning (recipes whose DAG asks for it: laion6m): captions before the embeddings
#: (whose metadata carry them), the OpenUni export before the report (which counts it)
RECAPTION = {"recaption": "annotate", "openuni_export": "semdedup"}


def pipeline(recaption: bool = False) -> tuple[str, ...]:
    """``PIPELINE``, with each ``RECAPTION`` stage right after the stage it follows."""
    out: list[str] = []
    for name in PIPELINE:
        out.append(name)
        out += [r for r, after in RECAPTION.items() if recaption and after == name]
    return tuple(out)


#: laion6m's prepackaged branch
PREPACKAGED = ("pack_fetch", "pack_extract", "pack_index")
#: after a repair, every stage after the download again, in the pipeline's order: each part
#: stage does only what the patch shards changed (annotate rewrites its files, recaption and
#: embed add batches for the new shards, scores and blur redo a part whose shards changed),
#: then the global ones; a stage the recipe has off skips itself
_FULL = pipeline(recaption=True)
REFRESH = _FULL[_FULL.index("download") + 1 :]
