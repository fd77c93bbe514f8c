"""The real Airflow services on 127.0.0.1 for system tests: api-server, scheduler,
dag-processor and triggerer, each started as its own process and stopped by its PID (not
``airflow standalone``, whose log servers bind every interface).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from laionflow import embedded


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AirflowServices:
    def __init__(self, home: Path, user: str = "admin", port: int | None = None) -> None:
        self.home = Path(home)
        self.port = port or free_port()
        self.user = user
        self.password = secrets.token_urlsafe(12)
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(embedded.environment(self.home))
        pw_file = self.home / "passwords.json"
        pw_file.write_text(json.dumps({self.user: self.password}))
        env.update(
            {
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(pw_file),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            }
        )
        return env

    def start(self, timeout: float = 180) -> AirflowServices:
        env = self.env()
        embedded.migrate(self.home, env)
        bin_ = embedded.airflow_bin()
        commands = {
            "api-server": [bin_, "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            "scheduler": [bin_, "scheduler", "--skip-serve-logs"],
            "dag-processor": [bin_, "dag-processor"],
            "triggerer": [bin_, "triggerer", "--skip-serve-logs"],
        }
        for name, cmd in commands.items():
            log = open(self.home / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
            self.procs[name] = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                self.stop()
                raise RuntimeError(f"{dead} exited; see {self.home}/*.log")
            try:
                if requests.get(f"{self.url}/api/v2/monitor/health", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(1)
        self.stop()
        raise TimeoutError(f"api-server not healthy after {timeout}s; see {self.home}/*.log")

    def descendants(self) -> list:
        """Every live process the services started (task runners, Spark JVMs...), as
        ``psutil.Process``: some leave their parent's process group, so the groups alone
        do not find them."""
        import psutil

        found = []
        for proc in self.procs.values():
            try:
                parent = psutil.Process(proc.pid)
                found += [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return found

    def stop(self) -> None:
        """SIGTERM to each service's process group, SIGKILL after 30 s; then any process
        they started that outlived its group (found before the signals) is killed too."""
        import psutil

        started = self.descendants()
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _, alive = psutil.wait_procs(started, timeout=10)
        for leftover in alive:
            leftover.kill()
        psutil.wait_procs(alive, timeout=10)

    def __enter__(self) -> AirflowServices:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # manual use: python -m laionflow.testing.airflow_services HOME
    with AirflowServices(Path(sys.argv[1])) as services:
        print(services.url, services.user, services.password, flush=True)
        signal.pause()
