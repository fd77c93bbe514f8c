"""``laionflow backfill DAG_ID --parts 3-7,12``: one DAG run per chunk of parts, through
Airflow's REST API, with ``conf.part_ids``; a one-part run also carries Airflow's native
``partition_key`` (``part_00003``: :func:`partition_key`), so the UI lists and filters runs by
part and ``airflow partitions``/the clear-by-partition API select them. Parts whose download
is already complete (their ``images/part_NNNNN_summary.json`` exists under the dataset root)
are skipped unless ``--force``, so repeating a call creates no work.

Recipe DAGs have no time schedule, so ``airflow backfill`` does not apply; this is the
part-id equivalent. The same conf works from the UI form ("Part ids") and from
``airflow dags trigger DAG_ID -c '{"part_ids": [3, 4]}'``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import requests

from laionflow import fs
from laionflow.layout import Layout, parse_parts

__all__ = [
    "AirflowApi",
    "api_from_env",
    "backfill",
    "chunks",
    "complete_parts",
    "parse_parts",
    "part_of_key",
    "partition_key",
]
PARTITION_PREFIX = "part_"


def partition_key(part: int) -> str:
    """A part's Airflow partition key: ``part_00003``, the part's name in the dataset layout."""
    return f"{PARTITION_PREFIX}{part:05d}"


def part_of_key(key: str) -> int:
    """The part id of a partition key (``part_00003`` -> 3); ValueError names a bad key."""
    digits = key[len(PARTITION_PREFIX) :] if key.startswith(PARTITION_PREFIX) else ""
    if not digits.isdigit():
        raise ValueError(f"partition key {key!r} is not a part: expected e.g. 'part_00003'")
    return int(digits)


def complete_parts(dataset_root: str, parts: list[int]) -> list[int]:
    layout = Layout(dataset_root)
    return [p for p in parts if fs.exists(layout.download_summary(p))]


def chunks(parts: list[int], size: int) -> list[list[int]]:
    return [parts[i : i + size] for i in range(0, len(parts), size)]


@dataclass
class AirflowApi:
    """Minimal client of Airflow 3's REST API (JWT from ``/auth/token``)."""

    url: str
    token: str | None = None
    username: str | None = None
    password: str | None = None

    def _headers(self) -> dict[str, str]:
        if self.token is None:
            resp = requests.post(
                f"{self.url}/auth/token",
                timeout=30,
                json={"username": self.username, "password": self.password},
            )
            resp.raise_for_status()
            self.token = resp.json()["access_token"]
        return {"Authorization": f"Bearer {self.token}"}

    def trigger(
        self, dag_id: str, conf: dict, run_id: str | None = None, partition: str | None = None
    ) -> str:
        body = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        if partition:
            body["partition_key"] = partition
        resp = requests.post(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns",
            json=body,
            headers=self._headers(),
            timeout=30,
        )
        if resp.status_code >= 400:
            raise RuntimeError(f"trigger {dag_id} failed: {resp.status_code} {resp.text}")
        return resp.json()["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        resp = requests.get(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=self._headers(), timeout=30
        )
        resp.raise_for_status()
        return resp.json()["state"]

    def runs(self, dag_id: str) -> list[dict]:
        """The DAG's runs (newest first), each with its ``partition_key`` and ``conf``."""
        resp = requests.get(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns",
            params={"order_by": "-run_after", "limit": 100},
            headers=self._headers(),
            timeout=30,
        )
        resp.raise_for_status()
        return resp.json()["dag_runs"]

    def unpause(self, dag_id: str) -> None:
        resp = requests.patch(
            f"{self.url}/api/v2/dags/{dag_id}",
            json={"is_paused": False},
            headers=self._headers(),
            timeout=30,
        )
        resp.raise_for_status()

    def wait(self, dag_id: str, run_id: str, timeout: float = 900, poll: float = 3) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(poll)
        raise TimeoutError(f"{dag_id} run {run_id} still running after {timeout}s")


def backfill(
    api: AirflowApi,
    dag_id: str,
    parts: list[int],
    dataset_root: str,
    conf: dict | None = None,
    force: bool = False,
    chunk: int = 1,
) -> list[str]:
    """Trigger the runs; return their ids (empty when every part is complete)."""
    todo = parts if force else sorted(set(parts) - set(complete_parts(dataset_root, parts)))
    run_ids = []
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for group in chunks(todo, chunk):
        label = f"{group[0]}-{group[-1]}" if len(group) > 1 else str(group[0])
        run_conf = {**(conf or {}), "part_ids": group, "force": force}
        key = partition_key(group[0]) if len(group) == 1 else None  # many parts: conf only
        run_ids.append(api.trigger(dag_id, run_conf, f"parts__{label}__{stamp}", key))
    return run_ids


def api_from_env(url: str | None) -> AirflowApi:
    return AirflowApi(
        url=(url or os.environ.get("LAIONFLOW_AIRFLOW_URL", "http://127.0.0.1:8080")).rstrip("/"),
        token=os.environ.get("LAIONFLOW_AIRFLOW_TOKEN"),
        username=os.environ.get("LAIONFLOW_AIRFLOW_USER", "admin"),
        password=os.environ.get("LAIONFLOW_AIRFLOW_PASSWORD"),
    )
