"""docker-compose.yaml as the one source of truth of the system-test cluster
(:mod:`laionflow.testing.cluster`): each Airflow service's environment and command are read
from the file, secrets substituted as ``docker compose`` does, and only what differs on one
machine is rewritten — service host names and ports become 127.0.0.1 and the harness's free
ports, container paths become folders of the harness, and the loopback flags below are added.
Everything else (executor, broker, result backend, queues, pools, retries, timeouts) is the
file's. ``tests/test_deploy.py`` compares the two so that they cannot drift.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"

#: the Airflow services the cluster runs, in start order (airflow-init runs first, to the end)
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
)
#: services the cluster does not run, and why
NOT_RUN = {
    "dns": "the caching resolver: test downloads go to a loopback IP, never through DNS",
}
#: environment the cluster drops or replaces (not a host or a port), and why
REPLACED = {
    "LAIONFLOW_DNS": "no resolver service here (see NOT_RUN)",
    "LAIONFLOW_SPARK_S3A": "pyspark from PyPI has no hadoop-aws jars: S3 is staged via the driver",
}
#: flags added to a service's command: log servers bind every interface (``--skip-serve-logs``),
#: the api-server binds the harness's port, two workers share one machine's host name
LOOPBACK_FLAGS = {
    "api-server": ["--host", "127.0.0.1", "--port", "{api_port}"],
    "scheduler": ["--skip-serve-logs"],
    "triggerer": ["--skip-serve-logs"],
    "celery": ["--skip-serve-logs", "--celery-hostname", "{service}@%h"],
}
_VAR = re.compile(r"\$\{(\w+)(?::?[?-][^}]*)?\}|\$(\w+)")


def load() -> dict:
    """The compose file, YAML anchors and merge keys resolved (as ``docker compose`` does)."""
    return yaml.safe_load(COMPOSE.read_text())


def substitute(value: str, variables: dict[str, str]) -> str:
    """Compose's interpolation: ``${NAME:?msg}``/``${NAME}``/``$NAME`` from ``variables``
    (a missing one is an error, as ``:?`` makes it), ``$$`` a literal ``$``."""
    parts = value.split("$$")

    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise KeyError(f"compose variable {name} not provided")
        return variables[name]

    return "$".join(_VAR.sub(one, p) for p in parts)


def environment(service: str, variables: dict[str, str], compose: dict | None = None) -> dict:
    """A service's environment exactly as the file gives it, secrets substituted."""
    spec = (compose or load())["services"][service]
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: substitute(str(v), variables) for k, v in env.items()}


def command(service: str, compose: dict | None = None) -> list[str]:
    spec = (compose or load())["services"][service]
    cmd = spec.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def rewrite(value: str, hosts: dict[str, int], paths: dict[str, str]) -> str:
    """Service ``host[:port]`` in URLs and connection JSON → ``127.0.0.1:<harness port>``;
    container paths → the harness's folders."""
    if value.startswith("{"):  # an Airflow connection as JSON: host/port fields, extra URLs
        conn = json.loads(value)
        host = str(conn.get("host", ""))
        scheme, _, name = host.rpartition("//")
        if name in hosts:
            conn["host"], conn["port"] = (
                f"{scheme}//127.0.0.1" if scheme else "127.0.0.1",
                hosts[name],
            )
        extra = conn.get("extra")
        if isinstance(extra, dict):
            conn["extra"] = {
                k: rewrite(v, hosts, paths) if isinstance(v, str) else v for k, v in extra.items()
            }
        return json.dumps(conn)
    for name, port in hosts.items():
        value = re.sub(rf"(?<=[/@]){re.escape(name)}(:\d+)?(?=[/\"]|$)", f"127.0.0.1:{port}", value)
    for inside, outside in paths.items():
        value = value.replace(inside, outside)
    return value


def leftover_hosts(value: str, compose: dict | None = None) -> list[str]:
    """Compose service names still addressed in ``value`` (a host the harness did not map)."""
    names = (compose or load())["services"]
    return [n for n in names if re.search(rf"(?<=[/@]){re.escape(n)}(?=[:/\"]|$)", value)]


def airflow_command(service: str, ports: dict[str, int], compose: dict | None = None) -> list:
    """``airflow <the file's command>`` plus :data:`LOOPBACK_FLAGS` for that command."""
    args = command(service, compose)
    extra = LOOPBACK_FLAGS.get(args[0], [])
    fmt = {"service": service, "api_port": ports.get("api", 0)}
    return ["airflow", *args, *(a.format(**fmt) for a in extra)]


def volume_paths(service: str, base: Path, compose: dict | None = None) -> dict[str, str]:
    """Container path → host path for the service's bind mounts (``./x`` relative to the
    repository, as compose resolves them), ``/opt/airflow`` itself → ``base``."""
    out = {}
    for vol in (compose or load())["services"][service].get("volumes", []):
        src, dst = vol.split(":")[:2]
        if src.startswith("./"):
            host = REPO / src[2:] if src != "./data" else base / "data"
            out[dst] = str(host)
    out["/opt/airflow"] = str(base)  # the image's AIRFLOW_HOME (passwords.json, logs)
    return out
