"""The shipped deployment files: ``docker compose config`` accepts docker-compose.yaml (no
daemon needed), every service the scaling guide names is there, secrets have no defaults,
ports bind 127.0.0.1 only, and hadolint passes the Dockerfile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRETS = {
    "AIRFLOW_JWT_SECRET": "jwt-test-value",
    "POSTGRES_PASSWORD": "pg-test-value",
    "AIRFLOW_ADMIN_PASSWORD": "admin-test-value",
    "S3_ACCESS_KEY": "s3-key-test-value",
    "S3_SECRET_KEY": "s3-secret-test-value",
}


def _compose(*args: str, env_file: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "docker-compose")]
    if env_file:
        cmd += ["--env-file", str(env_file)]
    cmd += ["-f", str(ROOT / "docker-compose.yaml"), "--profile", "gpu", *args]
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(cmd, capture_output=True, text=True, env=clean, timeout=120)


@pytest.fixture
def config(tmp_path) -> dict:
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    out = _compose("config", "--format", "json", env_file=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_compose_config_has_every_service_of_the_stack(config):
    assert set(config["services"]) >= {
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-worker-gpu",
        "postgres",
        "redis",
        "spark-master",
        "spark-worker",
        "seaweedfs",
        "dns",
    }
    for worker in ("airflow-worker", "airflow-worker-gpu"):  # downloads use the caching resolver
        assert config["services"][worker]["environment"]["LAIONFLOW_DNS"] == "dns:53"
    gpu = config["services"]["airflow-worker-gpu"]
    assert "--queues gpu" in " ".join(gpu["command"])
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    secrets = {
        s["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
        for s in config["services"].values()
        if "AIRFLOW__API_AUTH__JWT_SECRET" in s.get("environment", {})
    }
    assert secrets == {SECRETS["AIRFLOW_JWT_SECRET"]}  # one shared JWT secret


def test_ports_bind_loopback_only(config):
    for name, service in config["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)


def test_no_secret_has_a_default_in_the_file():
    out = _compose("config", "--quiet")
    assert out.returncode != 0
    assert "set " in out.stderr and "in .env" in out.stderr
    text = (ROOT / "docker-compose.yaml").read_text()
    for name in SECRETS:
        assert f"${{{name}:-" not in text  # never a fallback value


def test_dockerfile_passes_hadolint():
    out = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM apache/airflow:3.3.2" in text
    assert "openjdk-17" in text and "hadoop-aws" in text


def test_shipped_site_defaults_are_valid_for_every_recipe(monkeypatch):
    from laionflow.plan import resolve
    from laionflow.recipes import available

    monkeypatch.setenv("LAIONFLOW_SITE_OVERRIDES", str(ROOT / "config" / "site.yaml"))
    for name in available():
        assert resolve(name, {}).dataset_root == f"s3://laionflow/data/{name}"


# --- the system-test cluster (laionflow/testing/cluster.py) runs this file's services --------


@pytest.fixture
def cluster_config(tmp_path):
    """The harness (not started) and ``docker compose config`` with the harness's secrets."""
    from laionflow.testing.cluster import ComposeCluster

    harness = ComposeCluster(tmp_path)
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in harness.variables.items()))
    out = _compose("config", "--format", "json", env_file=env)
    assert out.returncode == 0, out.stderr
    return harness, json.loads(out.stdout)


def test_cluster_runs_every_compose_service_or_says_why(cluster_config):
    from laionflow.testing import compose

    _, config = cluster_config
    engines = {"postgres", "redis", "spark-master", "spark-worker", "seaweedfs", "airflow-init"}
    assert set(config["services"]) == engines | set(compose.AIRFLOW_SERVICES) | set(compose.NOT_RUN)
    spark = config["services"]
    assert "deploy.master.Master" in " ".join(spark["spark-master"]["command"])
    assert "deploy.worker.Worker" in " ".join(spark["spark-worker"]["command"])


def test_cluster_environment_and_commands_are_the_compose_files(cluster_config):
    """Each Airflow service's environment equals compose's own resolution of the file, bar
    rewritten hosts, ports and paths and the documented REPLACED keys; each command is the
    file's plus the documented loopback flags. A new host, variable or flag in the file that
    the harness does not handle fails here."""
    from laionflow.testing import compose

    harness, config = cluster_config
    hosts, home = harness.hosts(), str(harness.home)
    for service in (*compose.AIRFLOW_SERVICES, "airflow-init"):
        file_env = config["services"][service]["environment"]
        ours = harness.env(service)
        paths = compose.volume_paths(service, harness.home)
        for key, value in file_env.items():
            if key in compose.REPLACED:
                assert key not in ours, key
                continue
            assert ours[key] == compose.rewrite(value, hosts, paths), (service, key)
            assert not compose.leftover_hosts(ours[key]), (service, key, ours[key])
            if not compose.leftover_hosts(value) and "/opt/airflow" not in value:
                assert ours[key] == value, (service, key)  # nothing to rewrite: identical
            changed_to = (home, str(compose.REPO), "127.0.0.1")
            assert ours[key] == value or any(c in ours[key] for c in changed_to), (service, key)
            assert "/opt/airflow" not in ours[key], (service, key)
        if service == "airflow-init":
            continue
        command = config["services"][service]["command"]
        ours_cmd = compose.airflow_command(service, {"api": harness.api_port})
        flags = compose.LOOPBACK_FLAGS.get(command[0], [])
        assert ours_cmd[0] == "airflow" and ours_cmd[1 : 1 + len(command)] == command, service
        assert len(ours_cmd) == 1 + len(command) + len(flags), service
    worker, gpu = (config["services"][s]["command"] for s in compose.AIRFLOW_SERVICES[-2:])
    assert worker[:4] == ["celery", "worker", "--queues", "default"]
    assert gpu[:4] == ["celery", "worker", "--queues", "gpu"]


def test_cluster_substitutes_variables_as_compose_does():
    from laionflow.testing.compose import substitute

    assert substitute("a${X:?set X}b$$c${Y}", {"X": "1", "Y": "2"}) == "a1b$c2"
    with pytest.raises(KeyError):
        substitute("${MISSING:?set it}", {})
