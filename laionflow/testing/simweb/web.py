"""Start and stop the simulated web from a test or a benchmark: ``with SimWeb(spec, tmp)``.

The web runs in a child process in its own session, found and ended by its process group, so
a failing test never leaves a server holding loopback ports for the next one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from laionflow.testing.simweb.profiles import (
    HostProfile,
    SimUrl,
    WebSpec,
    host_profiles,
    web_urls,
    write_metadata,
)

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class SimWeb:
    """A running simulated web: DNS on ``dns`` (``127.0.0.1:PORT``), every host on ``port``."""

    def __init__(self, spec: WebSpec | None = None, workdir: str | Path = ".") -> None:
        self.spec = spec or WebSpec()
        self.workdir = Path(workdir)
        self.log_path = self.workdir / "simweb-requests.jsonl"
        self.ready_path = self.workdir / "simweb-ready.json"
        self.stderr_path = self.workdir / "simweb-stderr.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.dns_port = 0
        self._urls: list[SimUrl] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> SimWeb:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for path in (self.log_path, self.ready_path):
            path.unlink(missing_ok=True)
        s = self.spec
        cmd = [
            sys.executable, "-m", "laionflow.testing.simweb",
            "--seed", str(s.seed), "--hosts", str(s.hosts), "--urls", str(s.urls),
            "--subnet", s.subnet, "--token", s.token, "--domain", s.domain,
            "--log", str(self.log_path), "--ready", str(self.ready_path),
        ]  # fmt: skip
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Wait for the child's ready file; a dead or silent child fails with its stderr."""
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready_path.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"simulated web exited with {self.proc.returncode} before it was ready:\n"
                    f"{self.stderr()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"simulated web not ready after {READY_TIMEOUT_S:.0f} s:\n{self.stderr()}"
                )
            time.sleep(0.05)
        ready = json.loads(self.ready_path.read_text())
        self.port, self.dns_port = ready["port"], ready["dns_port"]

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers; nothing of it is left after."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the child leads its own group
        _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _group_alive(pgid):  # a grandchild, if any ever appears, goes too
            if time.monotonic() > deadline:
                _signal_group(pgid, signal.SIGKILL)
                time.sleep(0.1)
                break
            time.sleep(0.05)
        assert not _group_alive(pgid), f"simulated web process group {pgid} survived SIGKILL"

    def __enter__(self) -> SimWeb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests use ----------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def dns(self) -> str:
        """``127.0.0.1:PORT`` of the DNS server (UDP and TCP)."""
        return f"127.0.0.1:{self.dns_port}"

    @property
    def allow_entry(self) -> str:
        """The fetch allowlist entry covering every simulated host (``127.77.0.0/16``)."""
        return f"{self.spec.subnet}.0.0/16"

    @property
    def hosts(self) -> list[HostProfile]:
        return host_profiles(self.spec)

    def host(self, name: str) -> HostProfile:
        return next(h for h in self.hosts if h.name == name)

    @property
    def urls(self) -> list[SimUrl]:
        """Every URL of the web with the real port, shuffled (metadata order)."""
        if self._urls is None:
            self._urls = web_urls(self.spec, self.port)
        return self._urls

    @property
    def truth(self) -> dict[str, str]:
        """URL -> the reason a downloader must end with (``success`` when servable)."""
        return {u.url: u.truth for u in self.urls}

    def requests(self) -> list[dict]:
        """Every request logged so far (a line still being written is left out)."""
        if not self.log_path.exists():
            return []
        records = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def write_metadata(self, folder: str | Path, parts: int = 1) -> list[str]:
        return write_metadata(self.spec, folder, parts, self.port)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
