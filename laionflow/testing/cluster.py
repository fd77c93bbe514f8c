"""The compose topology on one machine, for system tests: Postgres, Redis, SeaweedFS, a Spark
standalone master and worker, then ``airflow-init``'s script and the Airflow services of
docker-compose.yaml (api-server, scheduler, dag-processor, triggerer, a ``default``-queue and a
``gpu``-queue Celery worker), each from the file's environment and command with only hosts,
ports and paths rewritten (:mod:`laionflow.testing.compose`). Every server on 127.0.0.1;
every process started and stopped by its PID (its own session, so a kill takes its children).

    with ComposeCluster(tmp) as c:
        c.url, c.user, c.password    # REST API;  c.kill("airflow-worker-gpu"); c.restart(...)
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from laionflow import embedded
from laionflow.testing import compose, procs
from laionflow.testing.airflow_services import free_port
from laionflow.testing.postgres import Postgres
from laionflow.testing.redis_server import RedisServer
from laionflow.testing.s3 import SeaweedS3
from laionflow.testing.spark_cluster import SparkCluster

#: this process's settings that must not leak into the services (the file sets theirs)
_PRIVATE = ("AIRFLOW__", "AIRFLOW_CONN_", "AWS_", "AIRFLOW_HOME")


class ComposeCluster:
    def __init__(self, home: Path, extra_env: dict[str, str] | None = None) -> None:
        """``extra_env``: test-only settings for every Airflow service (failpoints)."""
        self.home = Path(home)
        self.extra_env = dict(extra_env or {})
        self.compose = compose.load()
        self.user = "admin"
        self.api_port = free_port()
        self.variables = {
            "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
            "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
            "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        }
        self.postgres = Postgres(password=self.variables["POSTGRES_PASSWORD"])
        self.redis = RedisServer(self.home / "redis")
        self.s3 = SeaweedS3(self.home / "seaweedfs")
        self.variables["S3_ACCESS_KEY"] = self.s3.access_key
        self.variables["S3_SECRET_KEY"] = self.s3.secret_key
        cores = self.compose["services"]["spark-worker"]["environment"]["SPARK_WORKER_CORES"]
        self.spark = SparkCluster(self.home / "spark", workers=1, cores=int(cores))
        self.procs: dict[str, subprocess.Popen] = {}
        self.pids: dict[str, list[int]] = {}  # every PID each service ever had
        self._seen: dict[int, float] = {}
        self._stopping = False
        self._held: set[str] = set()  # killed on purpose: not restarted by the policy
        self.restarts: list[tuple[str, int]] = []  # (service, exit code) restarted by policy

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def password(self) -> str:
        return self.variables["AIRFLOW_ADMIN_PASSWORD"]

    def hosts(self) -> dict[str, int]:
        return {
            "postgres": self.postgres.port,
            "redis": self.redis.port,
            "airflow-apiserver": self.api_port,
            "seaweedfs": self.s3.port,
            "spark-master": self.spark.port,
        }

    def env(self, service: str) -> dict[str, str]:
        """The service's environment: the file's, rewritten, over this machine's basics."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE)}
        paths = compose.volume_paths(service, self.home, self.compose)
        file_env = compose.environment(service, self.variables, self.compose)
        env = {k: compose.rewrite(v, self.hosts(), paths) for k, v in file_env.items()}
        for key in compose.REPLACED:
            env.pop(key, None)
        image = embedded.environment(self.home)  # what the image's layout gives a container
        return {
            **base,
            "AIRFLOW_HOME": image["AIRFLOW_HOME"],
            "AIRFLOW__CORE__DAGS_FOLDER": image["AIRFLOW__CORE__DAGS_FOLDER"],
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(compose.REPO / "plugins"),
            "PATH": image["PATH"],
            "SPARK_LOCAL_IP": "127.0.0.1",
            **env,
            **self.extra_env,
        }

    def start(self, timeout: float = 240) -> ComposeCluster:
        try:
            self.postgres.start()
            self.redis.start()
            self.s3.start()
            self.spark.start()
            self._init()
            for service in compose.AIRFLOW_SERVICES:
                self._launch(service)
            self._wait_ready(timeout)
            threading.Thread(target=self._watch, name="restart-policy", daemon=True).start()
        except BaseException:
            self.stop()
            raise
        return self

    def _init(self) -> None:
        """``airflow-init``'s own script (DB migration, pools), paths rewritten."""
        paths = compose.volume_paths("airflow-init", self.home, self.compose)
        args = compose.command("airflow-init", self.compose)
        script = compose.rewrite(compose.substitute(args[-1], {}), {}, paths)
        out = subprocess.run(
            [*args[:-1], script],
            env=self.env("airflow-init"),
            capture_output=True,
            text=True,
            timeout=600,
            cwd=self.home,
        )
        if out.returncode != 0:
            raise RuntimeError(f"airflow-init failed: {out.stdout[-3000:]}{out.stderr[-3000:]}")

    def _launch(self, service: str) -> None:
        cmd = compose.airflow_command(service, {"api": self.api_port}, self.compose)
        cmd[0] = embedded.airflow_bin()
        log = open(self.home / f"{service}.log", "a")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            cmd,
            env=self.env(service),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.home,
        )
        self.procs[service] = proc
        self.pids.setdefault(service, []).append(proc.pid)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        workers = [s for s in self.procs if s.startswith("airflow-worker")]
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited; see {self.home}/*.log")
            if self._healthy() and all(self.worker_ready(w) for w in workers):
                return
            time.sleep(1)
        raise TimeoutError(f"cluster not ready after {timeout}s; see {self.home}/*.log")

    def _watch(self) -> None:
        """The file's ``restart:`` policy, as Docker applies it: a service that exits is
        started again (``always``/``unless-stopped``; ``on-failure`` if it failed)."""
        while not self._stopping:
            for service, proc in list(self.procs.items()):
                code = proc.poll()
                policy = self.compose["services"][service].get("restart", "no")
                wanted = policy in ("always", "unless-stopped") or (
                    policy == "on-failure" and code != 0
                )
                if code is not None and wanted and service not in self._held:
                    if self._stopping:
                        return
                    self.restarts.append((service, code))
                    self._launch(service)
            time.sleep(1)

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/api/v2/monitor/health", timeout=2).ok
        except requests.RequestException:
            return False

    def log(self, service: str) -> str:
        return (self.home / f"{service}.log").read_text(errors="replace")

    def worker_ready(self, service: str) -> bool:
        """Celery's "ready." line, counted once per start of the worker."""
        return self.log(service).count(" ready.") >= len(self.pids[service])

    def kill(self, service: str) -> None:
        """SIGKILL the service and every process it started (a machine lost, no clean-up)."""
        self._held.add(service)
        proc = self.procs[service]
        procs.kill_tree(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self, service: str, timeout: float = 120) -> None:
        """Start a service killed by :meth:`kill` again; wait for a worker to be ready."""
        self._launch(service)
        self._held.discard(service)
        deadline = time.monotonic() + timeout
        while not self.worker_ready(service):
            if self.procs[service].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{service} did not come back: {self.log(service)[-3000:]}")
            time.sleep(0.5)

    def all_pids(self) -> list[int]:
        """Every server process this cluster started (Spark daemons and Postgres included)."""
        pids = [p for ps in self.pids.values() for p in ps] + list(self.postgres.pids)
        pids += [p.pid for p in (self.redis.proc, self.s3.proc) if p is not None]
        return pids + list(self.spark.pids)

    def listening(self) -> list[tuple[str, int, str]]:
        """(address, port, process name) of every listening socket of the cluster's processes."""
        return procs.listening(self.all_pids())

    def remaining(self) -> list[str]:
        """After :meth:`stop`: every process of the cluster still alive (none, if it worked)."""
        return procs.survivors(self.all_pids(), self._seen)

    def stop(self) -> None:
        self._stopping = True
        self._seen = procs.descendants(self.all_pids())
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            procs.kill_tree(proc.pid, signal.SIGKILL)  # what outlived its service's main process
            proc.wait()
        self.spark.stop()
        self.s3.stop()
        self.redis.stop()
        self.postgres.close()

    def __enter__(self) -> ComposeCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # manual use: python -m laionflow.testing.cluster HOME
    with ComposeCluster(Path(sys.argv[1])) as cluster:
        print(cluster.url, cluster.user, cluster.password, flush=True)
        signal.pause()
