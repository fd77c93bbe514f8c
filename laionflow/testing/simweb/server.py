"""The HTTP side of the simulated web: one asyncio loop serving every live host.

Each host listens on its own loopback address (one socket per IP, same port), so a client's
per-host politeness is visible per address and a dead host is dead at the TCP level: a refused
host binds nothing (the kernel answers RST), a black-holed one listens but never accepts. Every
request is appended to a JSON-lines log, so tests judge what a client *did*, not what it says.
"""

from __future__ import annotations

import asyncio
import errno
import json
import math
import random
import socket
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

from laionflow.testing.simweb import content
from laionflow.testing.simweb.profiles import (
    PATH_RE,
    HostProfile,
    WebSpec,
    host_profiles,
    redirect_target,
    robots_disallows,
    tdm_reserved,
)

BURST = 2  # token bucket size of a rate-limited host
#: a request arriving this soon after a 429 left was already on its way: not "early"
EARLY_GRACE_S = 0.05
CHUNK = 16384  # bytes written between bandwidth pauses
READ_TIMEOUT_S = 30.0  # a connection that sends no request is closed after this
PORTS = (20000, 32000)  # below Linux's ephemeral range, so clients' own ports never collide


@dataclass
class HostState:
    """What a host remembers between requests: its bucket, its 429 window, its load."""

    profile: HostProfile
    tokens: float = BURST
    last: float = field(default_factory=time.monotonic)
    retry_until: float = 0.0  # monotonic time before which every request gets 429
    announced: float = 0.0  # monotonic time the window's first 429 was sent
    retry_until_wall: float = 0.0  # the same deadline as time.time(), for logs and tests
    inflight: int = 0


def bind_listeners(
    hosts: list[HostProfile], port: int = 0, attempts: int = 50
) -> tuple[int, list[tuple[HostProfile, socket.socket]]]:
    """Listening sockets for every host that is not ``refused``, all on one port free on every
    address (``port`` 0: a random one, retried on EADDRINUSE)."""
    for _ in range(attempts):
        candidate = port or random.randint(*PORTS)
        socks: list[tuple[HostProfile, socket.socket]] = []
        try:
            for host in hosts:
                if host.alive == "refused":
                    continue
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append((host, sock))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host.ip, candidate))
                sock.listen(256 if host.alive == "ok" else 8)
        except OSError as exc:
            for _, sock in socks:
                sock.close()
            if exc.errno == errno.EADDRINUSE and not port:
                continue
            raise
        return candidate, socks
    raise OSError(errno.EADDRINUSE, f"no port free on all {len(hosts)} simulated hosts")


def _head(status: int, headers: list[tuple[str, str]], length: int) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines += [f"Content-Length: {length}", "Connection: close", "Server: simweb", "", ""]
    return "\r\n".join(lines).encode("latin-1")


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]] | None:
    """``(method, path, headers)`` of the next request, None on garbage or a closed socket."""
    async with asyncio.timeout(READ_TIMEOUT_S):
        line = (await reader.readline()).decode("latin-1").split()
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
    if len(line) != 3 or not line[1].startswith("/"):
        return None
    return line[0].upper(), line[1].split("?", 1)[0], headers


class SimHTTP:
    """Serves the web of ``spec``; ``start`` inside a running loop, ``stop`` to end it."""

    def __init__(self, spec: WebSpec, log_path: str | Path, port: int = 0) -> None:
        self.spec = spec
        self.hosts = host_profiles(spec)
        self.state = {h.name: HostState(h) for h in self.hosts}
        self.port, self._socks = bind_listeners(self.hosts, port)
        self._log = open(log_path, "a", encoding="utf-8")  # closed in stop()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        for host, sock in self._socks:
            if host.alive == "ok":

                async def handle(
                    reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter,
                    host: HostProfile = host,
                ) -> None:
                    await self._connection(host, reader, writer)

                self._servers.append(await asyncio.start_server(handle, sock=sock))

    async def stop(self) -> None:
        """Close every listener, end requests in flight (they are logged), close the log."""
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, sock in self._socks:
            sock.close()
        self._log.close()

    async def _connection(
        self, host: HostProfile, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            request = await _read_request(reader)
            if request is not None:
                await self._request(host, *request, writer, reader)
        except (ConnectionError, TimeoutError, asyncio.CancelledError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    def _admit(self, st: HostState, now: float) -> int | None:
        """None to serve, else the Retry-After (s) of a 429: inside an announced window, or
        when the token bucket is empty (which opens a new window)."""
        rate = st.profile.rate_limit
        if rate is None:
            return None
        if now < st.retry_until:
            return max(1, math.ceil(st.retry_until - now))
        st.tokens = min(BURST, st.tokens + (now - st.last) * rate)
        st.last = now
        if st.tokens >= 1:
            st.tokens -= 1
            return None
        st.retry_until = now + st.profile.retry_after_s
        st.announced = now + st.profile.latency_s  # when the 429 leaves
        st.retry_until_wall = time.time() + st.profile.retry_after_s
        return st.profile.retry_after_s

    async def _request(
        self,
        host: HostProfile,
        method: str,
        path: str,
        headers: dict[str, str],
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader | None = None,
    ) -> None:
        st = self.state[host.name]
        now = time.monotonic()
        st.inflight += 1
        record = {
            "t": time.time(),
            "t_end": None,
            "host": host.name,
            "ip": host.ip,
            "path": path,
            "method": method,
            "status": None,
            "ua": headers.get("user-agent", ""),
            "host_header": headers.get("host", ""),
            "concurrent": st.inflight,
            "disallowed": robots_disallows(host.robots, path),
            "tdm_reserved": tdm_reserved(host, path),
            "robots_unavailable": host.robots == "error" and path != "/robots.txt",
            # a request already on its way when the 429 left cannot have honoured it
            "early": st.announced + EARLY_GRACE_S < now < st.retry_until,
            "retry_after": None,  # seconds announced with a 429
            "retry_until": None,  # wall-clock end of the 429 window in force
        }
        try:
            retry = self._admit(st, now)
            record["retry_after"] = retry
            record["retry_until"] = st.retry_until_wall if retry is not None else None
            await asyncio.sleep(host.latency_s)
            await self._respond(host, method, path, retry, writer, record, reader)
        finally:
            st.inflight -= 1
            record["t_end"] = time.time()
            self._log.write(json.dumps(record) + "\n")
            self._log.flush()

    async def _respond(
        self,
        host: HostProfile,
        method: str,
        path: str,
        retry: int | None,
        writer: asyncio.StreamWriter,
        record: dict,
        reader: asyncio.StreamReader | None = None,
    ) -> None:
        """Pick the answer; ``record['status']`` is set before any byte is written."""
        headers: list[tuple[str, str]] = []
        body, trickle = b"", False
        match = PATH_RE.match(path)
        if retry is not None:
            status, headers, body = 429, [("Retry-After", str(retry))], b"slow down\n"
        elif path == "/robots.txt":
            if host.robots == "slow":
                await asyncio.sleep(content.ROBOTS_SLOW_S)
            status, body = content.robots_txt(host.robots, self.spec.token)
            headers = [("Content-Type", "text/plain")]
        elif path == "/.well-known/tdmrep.json" and host.tdmrep:
            status, headers, body = 200, [("Content-Type", "application/json")], content.TDMREP_JSON
        elif match is None:
            status, headers, body = 404, [("Content-Type", "text/plain")], b"not found\n"
        elif match.group(1) == "r":
            target, target_path = redirect_target(self.spec, host.name, path)
            location = f"http://{target.name}:{self.port}{target_path}"
            status, headers = 302, [("Location", location)]
        else:
            status, headers = 200, content.image_headers(host, path)
            trickle = match.group(1) == "trickle"
            body = content.encoded(path, None if trickle else host.encoding)
        record["status"] = status
        writer.write(_head(status, headers, len(body)))
        await writer.drain()
        if method == "HEAD":
            return
        if trickle:
            await _trickle(writer, body, reader)
        else:
            await _send(writer, body, host.bandwidth_bps)

    def retry_deadlines(self) -> dict[str, float]:
        """Host -> the wall-clock time its last announced Retry-After ends."""
        return {n: s.retry_until_wall for n, s in self.state.items() if s.retry_until_wall}


async def _send(writer: asyncio.StreamWriter, body: bytes, bps: float) -> None:
    """Write ``body`` no faster than ``bps`` bytes a second. Each pause comes before its
    piece, so the request ends (and leaves the host's in-flight count) with the last byte:
    a client that waits for a reply before its next request is never counted twice."""
    for offset in range(0, len(body), CHUNK):
        piece = body[offset : offset + CHUNK]
        await asyncio.sleep(len(piece) / bps)
        writer.write(piece)
        await writer.drain()


async def _trickle(
    writer: asyncio.StreamWriter, body: bytes, reader: asyncio.StreamReader | None = None
) -> None:
    """A few bytes every half second, the whole body over ``TRICKLE_TOTAL_S`` (finite, so a
    client without a total deadline also finishes, late). A client that hangs up ends it at
    once, so the request leaves the host's in-flight count when the client let it go."""
    ticks = int(content.TRICKLE_TOTAL_S / content.TRICKLE_TICK_S)
    per = max(1, math.ceil(len(body) / ticks))
    for offset in range(0, len(body), per):
        if reader is None:
            await asyncio.sleep(content.TRICKLE_TICK_S)
        else:
            try:
                if not await asyncio.wait_for(reader.read(1), content.TRICKLE_TICK_S):
                    return  # the client closed its end
            except TimeoutError:
                pass
        writer.write(body[offset : offset + per])
        await writer.drain()
