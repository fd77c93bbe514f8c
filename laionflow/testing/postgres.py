"""A throw-away PostgreSQL server for system tests: ``initdb`` in a fresh temp folder, the
``postgres`` server started directly (no ``pg_ctl`` daemonising, so this object holds the
postmaster's PID) on 127.0.0.1 and a free port, TCP only (no Unix socket), password auth.

Postgres refuses to run as root: as root, the cluster folder is handed to ``nobody`` and every
Postgres process runs as that user (``subprocess`` ``user=``/``group=``); otherwise as the
current user. Missing Debian packages fail with the command that installs them.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from laionflow.testing.airflow_services import free_port

INSTALL = "apt-get install -y postgresql  (or: make setup as root, scripts/ensure_services.sh)"


def pg_bin(name: str) -> str:
    """A server binary of the newest installed Postgres (Debian keeps them off PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    path = found[-1] if found else shutil.which(name)
    if not path:
        raise FileNotFoundError(f"Postgres {name} not found: {INSTALL}")
    return path


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


class Postgres:
    """``with Postgres(user, password, db) as pg: pg.url`` — one database, one owner."""

    def __init__(self, user: str = "airflow", password: str = "", db: str = "airflow") -> None:
        self.user, self.password, self.db = user, password, db
        self.port = free_port()
        self.dir = Path()  # a fresh temp folder, made by start()
        self.proc: subprocess.Popen | None = None
        self.pids: list[int] = []  # every postmaster this object started (restarts included)
        self._as: dict = {}

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def url(self, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.db}"

    def _run(self, *cmd: str) -> None:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=180, cwd=self.dir, **self._as
        )
        if out.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")

    def start(self, timeout: float = 60) -> Postgres:
        if self.dir == Path():
            self.dir = Path(tempfile.mkdtemp(prefix="laionflow-pg-"))
            if os.geteuid() == 0:  # Postgres will not run as root: the folder goes to nobody
                os.chown(self.dir, 65534, 65534)
                self._as = {"user": 65534, "group": 65534, "extra_groups": []}
        if not self.data.exists():
            pwfile = self.dir / "pw"
            pwfile.write_text(self.password + "\n")
            if self._as:
                os.chown(pwfile, 65534, 65534)
            self._run(
                pg_bin("initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C",
            )  # fmt: skip
            pwfile.unlink()
            self._serve(timeout)
            self._create_db()
            return self
        self._serve(timeout)
        return self

    def _serve(self, timeout: float) -> None:
        cmd = [
            pg_bin("postgres"), "-D", str(self.data), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "max_connections=200", "-c", "fsync=off",
        ]  # fmt: skip
        log = open(self.dir / "postgres.log", "a")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.dir,
            **self._as,
        )  # fmt: skip
        self.pids.append(self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.logs()[-2000:]}")
            if self._ready("postgres"):
                return
            time.sleep(0.3)
        raise TimeoutError(f"postgres not ready after {timeout}s: {self.logs()[-2000:]}")

    def _ready(self, db: str) -> bool:
        import psycopg2

        try:
            psycopg2.connect(self._dsn(db), connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    def _dsn(self, db: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{db}"

    def _create_db(self) -> None:
        import psycopg2

        conn = psycopg2.connect(self._dsn("postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.db}"')
        conn.close()

    def logs(self) -> str:
        path = self.dir / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, mode: int = signal.SIGINT) -> None:
        """Stop the server (SIGINT: Postgres' "fast" shutdown), keeping its data."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(mode)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> None:
        """Fast shutdown, then the same cluster on the same port: every connection drops."""
        self.stop()
        self._serve(60)

    def close(self) -> None:
        self.stop()
        if self.dir != Path():
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
