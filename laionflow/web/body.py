"""Bodies under a deadline, and their ``Content-Encoding``.

A socket timeout bounds one read, not a fetch: a server that sends a byte a second keeps an
img2dataset worker for as long as it likes. Here one reaper thread per process holds every
connection of a fetch against the fetch's deadline and shuts the socket down when it passes —
connect, TLS, headers and body alike — and the body is read in pieces, the deadline checked
between them. Bodies declaring gzip or deflate are decoded (img2dataset would store them as
``decode_error``), with a cap so a small compressed body cannot expand without bound.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
import zlib
from urllib.error import URLError

MAX_DECODED = 256 * 1024 * 1024
_local = threading.local()


class _Reaper:
    """Shuts down sockets whose deadline (monotonic) passed; one daemon thread per process."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._socks: dict[int, socket.socket] = {}
        self._ids = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, at: float) -> int:
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lf-deadline", daemon=True)
                self._thread.start()
            token = next(self._ids)
            self._socks[token] = sock
            heapq.heappush(self._heap, (at, token))
            self._cv.notify()
            return token

    def unwatch(self, token: int) -> None:
        with self._cv:
            self._socks.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap or self._heap[0][1] not in self._socks:
                    if self._heap:
                        heapq.heappop(self._heap)
                        continue
                    self._cv.wait()
                at, token = self._heap[0]
                now = time.monotonic()
                if at > now:
                    self._cv.wait(at - now)
                    continue
                heapq.heappop(self._heap)
                sock = self._socks.pop(token, None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


_reaper = _Reaper()


def watch(sock: socket.socket, at: float | None) -> None:
    """Hold ``sock`` to the deadline ``at`` (monotonic) until :func:`unwatch_all`."""
    if at is not None:
        _local.__dict__.setdefault("tokens", []).append(_reaper.watch(sock, at))


def unwatch_all() -> None:
    for token in _local.__dict__.pop("tokens", []):
        _reaper.unwatch(token)


def read(resp, deadline: float | None, limit: int | None = None) -> bytes:  # noqa: ANN001
    """The whole body, in pieces, never past ``deadline`` (monotonic)."""
    chunks, size = [], 0
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            resp.close()
            raise URLError("laionflow: deadline: body not complete in time")
        chunk = resp.read1(65536)
        if not chunk:
            if deadline is not None and time.monotonic() >= deadline:  # the reaper's shutdown
                raise URLError("laionflow: deadline: body not complete in time")
            if getattr(resp, "length", None):  # EOF before Content-Length: a cut body
                raise URLError(f"laionflow: truncated: {resp.length} bytes missing")
            break
        chunks.append(chunk)
        size += len(chunk)
        if limit is not None and size >= limit:
            resp.close()
            break
    return b"".join(chunks)


def _inflate(data: bytes, wbits: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(data, MAX_DECODED)
    if d.unconsumed_tail:
        raise URLError("laionflow: too_large: decoded body over the cap")
    return out + d.flush()


def decode(data: bytes, encoding: str | None, empty_ok: bool = False) -> bytes:
    """Undo ``Content-Encoding`` (outermost last, as listed); refuse what we cannot decode."""
    for coding in reversed([c.strip().lower() for c in (encoding or "").split(",") if c.strip()]):
        try:
            if coding in ("gzip", "x-gzip"):
                data = _inflate(data, 16 + zlib.MAX_WBITS)
            elif coding == "deflate":  # zlib-wrapped per RFC 9110, raw deflate in the wild
                try:
                    data = _inflate(data, zlib.MAX_WBITS)
                except zlib.error:
                    data = _inflate(data, -zlib.MAX_WBITS)
            elif coding != "identity":
                raise URLError(f"laionflow: unsupported_encoding: {coding}")
        except zlib.error as exc:
            raise URLError(f"laionflow: decode_error: bad {coding} body ({exc})") from None
    if not data and not empty_ok:
        raise URLError("laionflow: empty_body: the server sent no bytes")
    return data
