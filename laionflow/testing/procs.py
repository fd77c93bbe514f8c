"""Process bookkeeping for the system-test servers: signal a whole process tree, list its
listening sockets, and prove afterwards that nothing of it is left. A service's processes are
found both by process group (each service runs in its own session) and as descendants (stage
subprocesses start sessions of their own)."""

from __future__ import annotations

import os
import signal
import subprocess

import psutil


def tree(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_tree(pid: int, sig: int) -> None:
    """Signal a process group and every descendant of its leader."""
    procs = tree(pid)
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def stop_group(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    """Stop a server started in its own session: SIGTERM to its process group, SIGKILL if it
    is still there after ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def descendants(pids: list[int]) -> dict[int, float]:
    """PID → start time of every live process under ``pids`` (to check after a stop)."""
    seen = {}
    for pid in pids:
        for p in tree(pid):
            try:
                seen[p.pid] = p.create_time()
            except psutil.NoSuchProcess:
                continue
    return seen


def survivors(groups: list[int], seen: dict[int, float] | None = None) -> list[str]:
    """Live processes in any of these process groups, or among ``seen`` (same start time)."""
    wanted, out = set(groups), []
    for p in psutil.process_iter(["pid", "name", "create_time"]):
        try:
            mine = os.getpgid(p.pid) in wanted or (seen or {}).get(p.pid) == p.info["create_time"]
            if mine and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {p.info['name']}")
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return out


def listening(pids: list[int]) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every listening socket under ``pids``."""
    out = []
    for pid in pids:
        for p in tree(pid):
            try:
                for c in p.net_connections(kind="inet"):
                    if c.status == psutil.CONN_LISTEN:
                        # the JVM listens on IPv4-mapped IPv6: ::ffff:127.0.0.1 is 127.0.0.1
                        out.append((c.laddr.ip.removeprefix("::ffff:"), c.laddr.port, p.name()))
            except psutil.NoSuchProcess:
                continue
    return out
