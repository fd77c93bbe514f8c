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
