"""The embedded default: Airflow on SQLite with the LocalExecutor, Spark ``local[*]``, CPU.

Configures a process (and the subprocesses it starts) through environment variables only, so
it must run before anything imports Airflow. Used by ``laionflow demo`` and the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def dags_folder() -> Path:
    folder = Path(os.environ.get("LAIONFLOW_DAGS_FOLDER", REPO / "dags"))
    if not (folder / "laion400m.py").exists():
        raise FileNotFoundError(f"DAG folder not found at {folder}; set LAIONFLOW_DAGS_FOLDER")
    return folder


def environment(home: Path, spark_master: str = "local[*]") -> dict[str, str]:
    """The embedded default's settings for an Airflow home, as environment variables."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("LAIONFLOW_AIRFLOW_LOG_LEVEL", "INFO"),
        "AIRFLOW_CONN_SPARK_DEFAULT": os.environ.get(
            "AIRFLOW_CONN_SPARK_DEFAULT", json.dumps({"conn_type": "spark", "host": spark_master})
        ),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "WANDB_MODE": "disabled",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }


def configure(home: Path, spark_master: str = "local[*]") -> dict[str, str]:
    """Apply :func:`environment` to this process (before anything imports Airflow)."""
    env = environment(home, spark_master)
    os.environ.update(env)
    return env


def airflow_bin() -> str:
    return os.path.join(os.path.dirname(sys.executable), "airflow")


def migrate(home: Path, env: dict[str, str] | None = None) -> None:
    """Create/upgrade the SQLite metadata DB (once per home) and the ``gpu``/``spark`` pools."""
    stamp = home / ".laionflow-db-ready"
    if stamp.exists():
        return
    env = env or {**os.environ, **environment(home)}
    subprocess.run([airflow_bin(), "db", "migrate"], check=True, stdout=subprocess.DEVNULL, env=env)
    for name, slots, desc in (
        ("gpu", 1, "CLIP inference: one slot per GPU"),
        ("spark", 2, "Spark jobs submitted at once"),
    ):
        subprocess.run(
            [airflow_bin(), "pools", "set", name, str(slots), desc],
            check=True,
            stdout=subprocess.DEVNULL,
            env=env,
        )
    stamp.touch()


def load_dag(dag_id: str):
    """Import a DAG file from the DAG folder and return its DAG object; ``<recipe>_refresh``
    lives in ``<recipe>.py`` next to the recipe's DAG."""
    import importlib.util

    stem, attr = (
        (dag_id[: -len("_refresh")], "refresh") if dag_id.endswith("_refresh") else (dag_id, "dag")
    )
    path = dags_folder() / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"laionflow_dag_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return getattr(module, attr)
