"""A Spark standalone cluster on 127.0.0.1 for tests: one master and N workers started with
pyspark's own ``sbin/spark-daemon.sh``, every daemon (and web UI: Spark binds them to
``SPARK_LOCAL_IP``) on loopback, stopped by PID.

    with SparkCluster(tmp_path, workers=2) as cluster:
        spark-submit --master cluster.url ...
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SparkCluster:
    def __init__(self, work: str | os.PathLike, workers: int = 2, cores: int = 1) -> None:
        import pyspark

        self.home = Path(pyspark.__file__).parent
        self.work = Path(work)
        self.workers, self.cores = workers, cores
        self.port = _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.pids: list[int] = []

    def env(self) -> dict[str, str]:
        import sys

        return {
            **os.environ,
            "SPARK_HOME": str(self.home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_PID_DIR": str(self.work / "pids"),
            "SPARK_LOG_DIR": str(self.work / "logs"),
            "SPARK_WORKER_DIR": str(self.work / "worker"),
            "PYSPARK_PYTHON": sys.executable,
        }

    def _daemon(self, action: str, cls: str, instance: int, *args: str) -> None:
        subprocess.run(
            [
                "bash",
                str(self.home / "sbin" / "spark-daemon.sh"),
                action,
                cls,
                str(instance),
                *args,
            ],
            env=self.env(),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> SparkCluster:
        for sub in ("pids", "logs", "worker"):
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        master = "org.apache.spark.deploy.master.Master"
        self._daemon(
            "start", master, 1, "--host", "127.0.0.1", "--port", str(self.port),
            "--webui-port", str(_free_port()),
        )  # fmt: skip
        self._wait_port(self.port)
        for i in range(1, self.workers + 1):
            self._daemon(
                "start", "org.apache.spark.deploy.worker.Worker", i, self.url,
                "--host", "127.0.0.1", "--cores", str(self.cores), "--memory", "1g",
                "--webui-port", str(_free_port()),
            )  # fmt: skip
        self.pids = [int(p.read_text()) for p in (self.work / "pids").glob("*.pid")]
        self._wait_workers()
        return self

    def _wait_port(self, port: int, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"Spark master not listening on {port}: {self.logs()}")

    def _wait_workers(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            registered = sum(
                "Successfully registered with master" in p.read_text(errors="replace")
                for p in (self.work / "logs").glob("*Worker*.out")
            )
            if registered >= self.workers:
                return
            time.sleep(0.3)
        raise TimeoutError(f"Spark workers did not register: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-2000:] for p in (self.work / "logs").glob("*")
        )

    def apps(self) -> list[str]:
        """Names of the applications the master registered, in order (from its full log)."""
        names = []
        for path in sorted((self.work / "logs").glob("*Master*.out")):
            for line in path.read_text(errors="replace").splitlines():
                if "Registered app " in line:
                    names.append(line.split("Registered app ", 1)[1].split(" with ID")[0])
        return names

    def listening(self) -> list[tuple[str, int]]:
        """(address, port) of every listening socket of the cluster's processes."""
        import psutil

        out = []
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                procs = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in procs:
                for c in p.net_connections(kind="inet"):
                    if c.status == psutil.CONN_LISTEN:
                        # the JVM listens on IPv4-mapped IPv6: ::ffff:127.0.0.1 is 127.0.0.1
                        out.append((c.laddr.ip.removeprefix("::ffff:"), c.laddr.port))
        return out

    def stop(self) -> None:
        import signal

        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 30
        for pid in self.pids:
            while time.time() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def __enter__(self) -> SparkCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
