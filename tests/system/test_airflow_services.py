"""The real Airflow services on 127.0.0.1 (api-server, scheduler, dag-processor, triggerer;
LocalExecutor, SQLite): a laion400m run triggered through the REST API with a conf, one task
failing transiently and retried by its policy; ``laionflow backfill`` triggering part runs;
trigger validation; loopback-only listeners; every process stopped."""

import json
import os
import subprocess
import sys

import pytest
import requests

from laionflow import fs
from laionflow.testing.airflow_services import AirflowServices
from tests.helpers import small_run_conf


@pytest.fixture(scope="module")
def services(tmp_path_factory, fixture_server):
    # a transient fault: each part's annotate task fails on its first try (the services'
    # environment is fixed at start, so it applies to every run of this module)
    failpoints = tmp_path_factory.mktemp("failpoints")
    mp = pytest.MonkeyPatch()
    mp.setenv("LAIONFLOW_FAILPOINTS", "annotate.start.once")
    mp.setenv("LAIONFLOW_FAILPOINTS_DIR", str(failpoints))
    try:
        svc = AirflowServices(tmp_path_factory.mktemp("airflow-services")).start()
    finally:
        mp.undo()
    yield svc
    svc.stop()
    assert all(p.poll() is not None for p in svc.procs.values())  # every process stopped


def test_rest_triggered_laion400m_run_retries_a_transient_failure(
    services, corpus, checkpoint, tmp_path
):
    from laionflow.backfill import AirflowApi

    api = AirflowApi(services.url, username=services.user, password=services.password)
    conf = small_run_conf(tmp_path, corpus.metadata_urls, checkpoint, image_size=48)
    run_id = api.trigger("laion400m", conf)
    assert api.wait("laion400m", run_id, timeout=900) == "success"
    base = f"{services.url}/api/v2/dags/laion400m/dagRuns/{run_id}"
    run = requests.get(base, headers=api._headers(), timeout=30).json()
    assert run["conf"]["image_size"] == 48
    tis = requests.get(
        f"{base}/taskInstances", params={"limit": 100}, headers=api._headers(), timeout=30
    ).json()["task_instances"]
    annotate = [t for t in tis if t["task_id"] == "annotate"]
    assert len(annotate) == 2
    for ti in annotate:  # failed once, retried per the policy, then succeeded
        assert ti["state"] == "success" and ti["try_number"] == 2, ti
        tries = requests.get(
            f"{base}/taskInstances/annotate/{ti['map_index']}/tries",
            headers=api._headers(),
            timeout=30,
        ).json()["task_instances"]
        assert [t["state"] for t in sorted(tries, key=lambda t: t["try_number"])] == [
            "failed",
            "success",
        ]
    assert all(t["try_number"] == 1 for t in tis if t["task_id"] == "download")
    root = tmp_path / "laion400m"
    led = fs.read_json(f"{root}/summary.json")["ledger"]
    assert led["raw_rows"] == corpus.rows and led["balanced"]
    assert led["embedding_rows"] == led["downloaded"] == led["index_size"] > 0
    with fs.open(f"{root}/images/part_00000/00000.tar") as fh:
        import io
        import tarfile

        from PIL import Image

        with tarfile.open(fileobj=io.BytesIO(fh.read())) as tar:
            jpg = next(m for m in tar.getmembers() if m.name.endswith(".jpg"))
            assert max(Image.open(tar.extractfile(jpg)).size) == 48  # the conf's image size


def _backfill(services, conf, *extra):
    env = {
        **os.environ,
        "LAIONFLOW_AIRFLOW_URL": services.url,
        "LAIONFLOW_AIRFLOW_USER": services.user,
        "LAIONFLOW_AIRFLOW_PASSWORD": services.password,
    }
    cmd = [
        sys.executable,
        "-m",
        "laionflow",
        "backfill",
        "laion2b_en_sd21",
        "--parts",
        "2-3",
        "--chunk",
        "2",
        "--conf",
        json.dumps(conf),
        "--wait",
        *extra,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def test_api_requires_a_token(services):
    assert requests.get(f"{services.url}/api/v2/dags", timeout=10).status_code == 401


def test_backfill_runs_exactly_the_requested_parts_once(
    services, sd21_corpus, checkpoint, tmp_path
):
    conf = small_run_conf(tmp_path, sd21_corpus.metadata_urls, checkpoint, num_parts=4)
    first = _backfill(services, conf)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    run_ids = [line for line in lines if line.startswith("parts__") and ":" not in line]
    assert len(run_ids) == 1 and f"{run_ids[0]}: success" in lines
    root = tmp_path / "laion2b_en_sd21"
    produced = sorted(p.name for p in (root / "images").iterdir() if p.is_dir())
    assert produced == ["part_00002", "part_00003"]
    led = fs.read_json(f"{root}/summary.json")["ledger"]
    assert led["balanced"] and led["not_selected"] > 0

    second = _backfill(services, conf)
    assert second.returncode == 0
    assert "nothing to do" in second.stdout
    assert not [line for line in second.stdout.splitlines() if line.startswith("parts__")]


def test_invalid_trigger_input_is_rejected_with_the_reason(services):
    from laionflow.backfill import AirflowApi

    api = AirflowApi(services.url, username=services.user, password=services.password)
    for conf, field in (
        ({"image_size": "big"}, "image_size"),
        ({"output_format": "zip"}, "output_format"),
        ({"max_punsafe": 3}, "max_punsafe"),
    ):
        resp = requests.post(
            f"{services.url}/api/v2/dags/laion400m/dagRuns",
            json={"logical_date": None, "conf": conf},
            headers=api._headers(),
            timeout=30,
        )
        assert resp.status_code == 400, resp.text
        assert field in resp.text


def test_every_service_process_listens_on_loopback_only(services):
    import psutil

    listening = []
    for proc in services.procs.values():
        parent = psutil.Process(proc.pid)
        for p in [parent, *parent.children(recursive=True)]:
            try:
                conns = p.net_connections(kind="inet")
            except psutil.NoSuchProcess:
                continue
            listening += [c.laddr for c in conns if c.status == psutil.CONN_LISTEN]
    assert listening, "the api-server at least must listen"
    assert {addr.ip for addr in listening} == {"127.0.0.1"}, listening
