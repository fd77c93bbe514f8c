"""A throw-away Redis server for system tests (Debian ``redis-server``): 127.0.0.1 and a free
port only, no persistence, protected mode on, stopped by its PID. A missing binary fails
with the command that installs it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from laionflow.testing import procs
from laionflow.testing.airflow_services import free_port

INSTALL = "apt-get install -y redis-server  (or: make setup as root, scripts/ensure_services.sh)"


class RedisServer:
    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30) -> RedisServer:
        binary = shutil.which("redis-server")
        if not binary:
            raise FileNotFoundError(f"redis-server not found: {INSTALL}")
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = [
            binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
            "--appendonly", "no", "--dir", str(self.home), "--protected-mode", "yes",
            "--daemonize", "no",
        ]  # fmt: skip
        log = open(self.home / "redis.log", "w")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.logs()[-2000:]}")
            if self._ping():
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"redis not ready after {timeout}s: {self.logs()[-2000:]}")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def logs(self) -> str:
        path = self.home / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        procs.stop_group(self.proc)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
