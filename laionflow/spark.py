"""Everything Spark-side that more than one job needs: the session, how Spark sees a dataset
root (local, s3a, or staged through the driver), GPU scheduling settings, and the one argument
parser of the ``spark_jobs/`` entry points.

The filter stage, the download and inference jobs and the tests all start Spark through
:func:`spark_session`, so loopback and UI defaults (and what a deployment overrides with
``spark-submit --conf``) hold the same way for every job. No Airflow import here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator


def spark_session(
    master: str | None = None, app: str = "laionflow", conf: dict[str, str] | None = None
):
    """A Spark session bound to loopback with the UI off (the UI would listen on every
    interface) — as defaults only: what spark-submit was given (``--name``, a driver host the
    executors of a multi-host cluster can reach, ``--conf``) wins, so a deployment changes them
    without code. ``conf`` (the job's own needs, e.g. executor environment) always applies."""
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if master and master.startswith("local"):  # Python workers (mapInArrow) need our venv
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    SparkContext._ensure_initialized()  # joins spark-submit's JVM, so its settings are visible
    submitted = SparkConf()
    defaults = {
        "spark.app.name": app,
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": os.environ.get("LAIONFLOW_SHUFFLE_PARTITIONS", "8"),
    }
    builder = SparkSession.builder
    if master:
        builder = builder.master(master)
    settings = {k: v for k, v in defaults.items() if not submitted.contains(k)}
    for key, value in {**settings, **s3a_conf(), **(conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def spark_reads_s3() -> bool:
    """Whether Spark reads the dataset root itself (a cluster image with the s3a jars,
    ``LAIONFLOW_SPARK_S3A=1``); otherwise S3 data is staged through this machine."""
    return os.environ.get("LAIONFLOW_SPARK_S3A", "").lower() in ("1", "true", "yes")


def s3a_conf() -> dict[str, str]:
    """Hadoop s3a settings from the ``AWS_*`` environment, when Spark reads S3 itself."""
    if not spark_reads_s3():
        return {}
    conf = {"spark.hadoop.fs.s3a.path.style.access": "true"}
    env = {
        "AWS_ACCESS_KEY_ID": "access.key",
        "AWS_SECRET_ACCESS_KEY": "secret.key",
        "AWS_SESSION_TOKEN": "session.token",
        "AWS_ENDPOINT_URL": "endpoint",
    }
    for var, key in env.items():
        if os.environ.get(var):
            conf[f"spark.hadoop.fs.s3a.{key}"] = os.environ[var]
    return conf


@contextlib.contextmanager
def spark_storage(out_dir: str) -> Iterator[tuple[Callable[[str], str], str | None]]:
    """``(spark_path, staged_dir)``: how Spark sees a dataset path, and the local folder that
    stands in for ``out_dir`` (None when Spark reads and writes the root directly).

    Local roots and s3a-capable Spark need nothing. Otherwise an ``s3://`` root is moved
    through pyarrow/s3fs on the driver: inputs are copied to a local folder, Spark writes its
    output there, and the parts are uploaded. That needs the driver and the executors to share
    that folder (``local[*]``, or a cluster on one machine); a multi-node cluster uses s3a.
    """
    if "://" not in out_dir or out_dir.startswith("file://"):
        yield (lambda p: p), None
    elif spark_reads_s3():
        yield (lambda p: "s3a://" + p.split("://", 1)[1] if p.startswith("s3://") else p), None
    else:
        staged = tempfile.mkdtemp(prefix="laionflow-filter-")
        try:
            yield (lambda p: p), staged
        finally:
            shutil.rmtree(staged, ignore_errors=True)


def gpu_conf() -> dict[str, str]:
    """Spark GPU scheduling for a Spark-GPU stage: ``$LAIONFLOW_SPARK_GPUS_PER_EXECUTOR`` GPUs
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


def job_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments every ``spark_jobs/`` entry point takes: ``--config RUN/config.json``,
    ``--parts 0,1`` (default: the run's parts), ``--force True`` and ``--summary-out PATH``
    (where the job publishes its summary, which the operator returns as its XCom)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--parts", help="part ids, e.g. 0,1 or 3-7; default: the run's parts")
    parser.add_argument("--force", default="False", help="True to redo finished work")
    parser.add_argument("--summary-out", help="JSON path (local or s3://) for the summary")
    args = parser.parse_args(argv)
    args.force = str(args.force).lower() in ("true", "1", "yes")
    return args


def job_parts(args: argparse.Namespace) -> list[int]:
    """The parts a job works on: ``--parts``, else those the run selected."""
    from laionflow.layout import parse_parts
    from laionflow.plan import selected_parts

    return parse_parts(args.parts) if args.parts else selected_parts(args.config)


def publish_summary(args: argparse.Namespace, summary: dict) -> None:
    """Print the summary line (the job's log) and publish it where the operator reads it."""
    import json

    from laionflow import fs

    print("LAIONFLOW_SUMMARY " + json.dumps(summary, default=str))
    if args.summary_out:
        fs.write_json(args.summary_out, summary)
