"""Submit laionflow's Spark jobs through the Spark provider's ``SparkSubmitOperator``.

What this adds to the provider's operator is only environment, resolved on the worker at
run time (never at DAG parse time): the job script's installed path, the worker's Python for
driver and executors, ``spark-submit`` of the same environment on ``PATH``, a loopback driver
address unless told otherwise, and a ``local[*]`` connection when ``spark_default`` is not
configured at all (a laptop with no Spark set-up still runs the DAG) — and, like the stage
operator, the job's summary as the task's XCom: the job publishes it next to the run's config
(``laionflow.layout.stage_summary``), where any deploy mode of the driver can write it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

LOCAL_CONN = json.dumps({"conn_type": "spark", "host": "local[*]"})


def job_path(name: str) -> str:
    import spark_jobs

    return str(Path(spark_jobs.__file__).parent / name)


def runtime_env() -> dict[str, str]:
    bin_dir = os.path.dirname(sys.executable)
    return {
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
    }


def driver_conf() -> dict[str, str]:
    host = os.environ.get("LAIONFLOW_SPARK_DRIVER_HOST", "127.0.0.1")
    return {
        "spark.driver.bindAddress": host,
        "spark.driver.host": host,
        "spark.ui.enabled": os.environ.get("LAIONFLOW_SPARK_UI", "false"),
    }


def job_arguments(
    config_path: Any, force: Any = False, summary_out: str | None = None
) -> list[str]:
    """The command line of a ``spark_jobs/`` entry point (``laionflow.spark.job_args`` parses
    it); a pure function of the rendered fields."""
    forced = force in (True, "True", "true", "1")
    args = ["--config", str(config_path), "--force", str(forced)]
    return args + (["--summary-out", summary_out] if summary_out else [])


class LaionflowSparkSubmitOperator(SparkSubmitOperator):
    template_fields: Sequence[str] = (
        *SparkSubmitOperator.template_fields,
        "config_path",
        "force",
    )

    def __init__(
        self,
        *,
        job: str,
        stage: str | None = None,
        config_path: Any = None,
        force: Any = False,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", f"laionflow-{job.removesuffix('.py')}")
        super().__init__(application=job, **kwargs)
        self.job = job
        #: with ``config_path``: the job's arguments are built here and its summary returned
        self.stage = stage or job.removesuffix(".py")
        self.config_path = config_path
        self.force = force
        #: the driver reads and writes the dataset root: S3 credentials as for every stage
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Any) -> None:
        from airflow.sdk import BaseHook

        try:
            BaseHook.get_connection(self._conn_id)
        except Exception:  # no such connection anywhere: fall back to the embedded default
            self.log.warning("connection %r not found; using Spark local[*]", self._conn_id)
            os.environ[f"AIRFLOW_CONN_{self._conn_id.upper()}"] = LOCAL_CONN
        self.application = job_path(self.job)
        summary_out = None
        if self.config_path is not None:
            from laionflow.layout import stage_summary

            summary_out = stage_summary(str(self.config_path), self.stage)
            self.application_args = job_arguments(self.config_path, self.force, summary_out)
        self.application_args = [str(a) for a in self.application_args or []]
        from operators.credentials import aws_env, aws_environment

        self.env_vars = {
            **runtime_env(),
            **aws_env(self.aws_conn_id, self.log),
            **(self.env_vars or {}),
        }
        self.conf = {**driver_conf(), **(self.conf or {})}
        super().execute(context)
        if summary_out is None:
            return None
        from laionflow import fs
        from laionflow.progress import compact

        with aws_environment(self.aws_conn_id):
            return compact(fs.read_json(summary_out))
