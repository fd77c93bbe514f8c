"""The scaled-out deployment, actually run: docker-compose.yaml's topology on 127.0.0.1
(:class:`laionflow.testing.cluster.ComposeCluster`: Postgres, Redis, api-server, scheduler,
dag-processor, triggerer, a ``default`` and a ``gpu`` Celery worker, a Spark master and worker,
SeaweedFS), every service from the compose file's own environment and command.

One laion400m run, triggered over REST with its dataset root on SeaweedFS and the filter on
the Spark cluster, the download too (img2dataset's pyspark distributor), goes through two
faults: the Postgres server is restarted while a download runs, and the ``gpu`` worker is
SIGKILLed (with every process it started) while an ``embed`` task runs on it, then started
again. The run must still succeed with the
local run's ledger and embeddings, the killed task retried once and nothing duplicated.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import psutil
import pytest
import requests

from laionflow import fs
from laionflow.testing.cluster import ComposeCluster
from tests.helpers import small_run_conf

GPU_TASKS = {"embed", "scores"}
# one shared cluster and run for the module (start, run, two faults, recovery); the timeout
# covers a loaded machine, not a budget; `make test-cluster` runs it (.ci/run: after make test)
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, fixture_server):
    c = ComposeCluster(tmp_path_factory.mktemp("compose-cluster")).start()
    yield c
    c.stop()
    assert c.remaining() == []  # every process of every service (and their children) is gone


def _api(cluster):
    from laionflow.backfill import AirflowApi

    return AirflowApi(cluster.url, username=cluster.user, password=cluster.password)


def _tis(api, run_id: str) -> list[dict]:
    resp = requests.get(
        f"{api.url}/api/v2/dags/laion400m/dagRuns/{run_id}/taskInstances",
        params={"limit": 200},
        headers=api._headers(),
        timeout=30,
    )
    resp.raise_for_status()
    return resp.json()["task_instances"]


def _wait_for(what: str, predicate, timeout: float = 600, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(poll)
    raise TimeoutError(f"timed out waiting for {what}")


def _stage_process(cluster, service: str, stage: str):
    """The ``python -m laionflow run <stage>`` process under a worker, if one runs."""
    try:
        children = psutil.Process(cluster.procs[service].pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for proc in children:
        try:
            cmd = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if cmd[1:5] == ["-m", "laionflow", "run", stage]:
            return proc
    return None


@pytest.fixture(scope="module")
def faulty_run(cluster, corpus, checkpoint, pipeline):
    api = _api(cluster)
    _wait_for("the DAG parsed", lambda: _dag_known(api), timeout=300, poll=1)
    api.unpause("laion400m")  # the compose stack keeps Airflow's default: paused at creation
    root = f"s3://{cluster.s3.bucket}/datasets"
    conf = small_run_conf(root, corpus.metadata_urls, checkpoint)
    conf["image_size"] = pipeline["recipe"].download.image_size  # as the local pipeline
    conf["overrides"]["download.number_sample_per_shard"] = 64
    run_id = api.trigger("laion400m", conf)

    def download_running():
        return any(
            t["task_id"] == "download" and t["state"] == "running" for t in _tis(api, run_id)
        )

    _wait_for("a download running", download_running, poll=1)
    listening = cluster.listening()  # everything up, the Spark driver included
    in_flight = ("running", "queued", "scheduled")  # all may be reset by the scheduler restart
    running = {(t["task_id"], t["map_index"]) for t in _tis(api, run_id) if t["state"] in in_flight}
    cluster.postgres.restart()  # every connection of every service dropped mid-run

    gpu = "airflow-worker-gpu"
    stage = _wait_for("embed on the gpu worker", lambda: _stage_process(cluster, gpu, "embed"))
    part = int(stage.cmdline()[stage.cmdline().index("--part") + 1])
    stage.suspend()  # held where it is: the worker dies with the task certainly running
    cluster.kill(gpu)
    assert _dead(stage)
    cluster.restart(gpu)
    state = api.wait("laion400m", run_id, timeout=900)
    return {"api": api, "run_id": run_id, "state": state, "listening": listening,
            "killed_part": part, "root": f"{root}/laion400m",
            "restarts": list(cluster.restarts), "running_at_db_restart": running}  # fmt: skip


def _dead(proc: psutil.Process) -> bool:
    """Gone, or a zombie (killed; its parent died too, and nothing has reaped it yet)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _dag_known(api) -> bool:
    resp = requests.get(f"{api.url}/api/v2/dags/laion400m", headers=api._headers(), timeout=30)
    return resp.status_code == 200


@pytest.fixture()
def s3_env(cluster, monkeypatch):
    for key, value in cluster.s3.env().items():
        monkeypatch.setenv(key, value)


def test_run_succeeds_through_a_postgres_restart_and_a_killed_gpu_worker(faulty_run, cluster):
    tis = _tis(faulty_run["api"], faulty_run["run_id"])
    states = {(t["task_id"], t["map_index"]): t["state"] for t in tis}
    assert faulty_run["state"] == "success", (states, faulty_run["restarts"])
    # the scheduler exits when its DB connection drops mid-loop; compose's ``restart: always``
    # (applied by the harness as Docker would) brings it back and it carries the run on
    assert {s for s, _ in faulty_run["restarts"]} <= {"airflow-scheduler"}, faulty_run
    assert set(states.values()) <= {"success", "skipped"}
    assert cluster.postgres.pids[0] != cluster.postgres.pids[-1]  # it really restarted
    assert len(cluster.pids["airflow-worker-gpu"]) == 2


def test_gpu_tasks_ran_on_the_gpu_worker_and_the_rest_on_the_default_one(faulty_run, cluster):
    tis = _tis(faulty_run["api"], faulty_run["run_id"])
    gpu_log, default_log = cluster.log("airflow-worker-gpu"), cluster.log("airflow-worker")
    ran = [t for t in tis if t["state"] == "success"]
    assert {t["task_id"] for t in ran} >= {"filter", "download", "embed", "scores", "index"}
    spark_apps = cluster.spark.apps()
    assert any(a.startswith("laionflow-filter") for a in spark_apps), spark_apps
    assert any(a.startswith("laionflow-download") for a in spark_apps), spark_apps
    for ti in ran:
        expected = "gpu" if ti["task_id"] in GPU_TASKS else "default"
        assert ti["queue"] == expected, ti
        assert ti["executor"] in (None, "CeleryExecutor"), ti
        mine, other = (gpu_log, default_log) if expected == "gpu" else (default_log, gpu_log)
        assert ti["id"] in mine and ti["id"] not in other, ti["task_id"]


def test_killed_embed_is_retried_once_and_nothing_else_is(faulty_run):
    api, run_id, part = faulty_run["api"], faulty_run["run_id"], faulty_run["killed_part"]
    tis = _tis(api, run_id)
    # a task running across the Postgres restart may lose its state update and be retried
    # once (seen: a download, try 2); everything else runs exactly once
    across_restart = faulty_run["running_at_db_restart"]
    for ti in tis:
        key = (ti["task_id"], ti["map_index"])
        if ti["state"] != "success":
            continue
        if key == ("embed", part):
            assert ti["try_number"] == 2, ti
        elif key in across_restart:
            assert ti["try_number"] <= 2, ti
        else:
            assert ti["try_number"] == 1, ti
    tries = requests.get(
        f"{api.url}/api/v2/dags/laion400m/dagRuns/{run_id}/taskInstances/embed/{part}/tries",
        headers=api._headers(),
        timeout=30,
    ).json()["task_instances"]
    assert [t["state"] for t in sorted(tries, key=lambda t: t["try_number"])] == [
        "failed",
        "success",
    ]


def test_ledger_balances_and_equals_the_local_run(faulty_run, pipeline, corpus, s3_env):
    led = fs.read_json(f"{faulty_run['root']}/summary.json")["ledger"]
    local = fs.read_json(f"{pipeline['recipe'].dataset_root}/summary.json")["ledger"]
    assert led["raw_rows"] == corpus.rows and led["balanced"]
    assert led["embedding_rows"] == led["downloaded"] == led["index_size"] > 0
    for key in ("raw_rows", "filtered", "duplicates", "downloaded", "failed", "index_size"):
        assert led[key] == local[key], key


def test_embeddings_equal_the_uninterrupted_local_run_and_nothing_is_duplicated(
    faulty_run, pipeline, s3_env
):
    root, local = faulty_run["root"], pipeline["recipe"].dataset_root
    for part in (0, 1):
        folder = f"embeddings/part_{part:05d}"
        assert _files(f"{root}/{folder}") == _files(f"{local}/{folder}"), part
        for kind in ("img_emb/img_emb_0.npy", "text_emb/text_emb_0.npy"):
            with fs.open(f"{root}/{folder}/{kind}") as fh:
                ours = np.load(fh)
            np.testing.assert_allclose(ours, np.load(f"{local}/{folder}/{kind}"), atol=1e-6)
        meta = f"{folder}/metadata/metadata_0.parquet"
        with fs.open(f"{root}/{meta}") as fh:
            ours = pd.read_parquet(fh)
        assert ours["key"].is_unique
        pd.testing.assert_frame_equal(ours, pd.read_parquet(f"{local}/{meta}"))


def _files(folder: str) -> list[str]:
    """Every file under ``folder``, relative to it (an extra or a leftover temp file shows)."""
    filesystem, path = fs.filesystem(folder)
    return sorted(p.rsplit(path.rstrip("/") + "/", 1)[1] for p in filesystem.find(path))


def test_every_listener_is_on_loopback(faulty_run, cluster):
    listening = faulty_run["listening"] + cluster.listening()
    names = {name for _, _, name in listening}
    assert {"postgres", "redis-server", "weed", "java"} <= names, names
    assert {ip for ip, _, _ in listening} == {"127.0.0.1"}, listening
