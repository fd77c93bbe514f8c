"""Fixture HTTP server on 127.0.0.1: serves a directory, honours ``Range`` and ``HEAD``,
emulates the Hugging Face Hub's file API, optionally speaks TLS, and injects faults — on
chosen paths (``faults``) or by a seeded plan (``plan``, see :mod:`faults`) — so tests exercise
retries, resumption and failure accounting against a real socket."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from laionflow.testing.faults import Fault, FaultPlan, huge_png

__all__ = ["Fault", "FaultPlan", "FixtureServer"]

HF_COMMIT = "0" * 40  # the one revision every emulated Hugging Face repo has
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".parquet": "application/octet-stream",
    ".csv": "text/csv",
    ".json": "application/json",
}


class _Handler(BaseHTTPRequestHandler):
    server: FixtureServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args) -> None:  # keep test output readable
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        self._head = head
        srv = self.server
        path = self.path.split("?", 1)[0]
        if path.startswith("/api/datasets/") and "/tree/" in path:
            self._hf_tree(path)
            return
        if path.startswith("/datasets/") and "/resolve/" in path:
            # Hugging Face "resolve" URL -> the file under hf/<owner>/<name>/, with the headers
            # huggingface_hub reads (commit, etag)
            repo, _, rest = path[len("/datasets/") :].partition("/resolve/")
            path = f"/hf/{repo}/{rest.partition('/')[2]}"
            self._hf_repo = repo
        srv.user_agents.add(self.headers.get("User-Agent", ""))
        if path.startswith("/redirected/"):
            path = path[len("/redirected") :]
            fault = None
        else:
            fault = srv.take_fault(path)
        with srv.in_flight():
            self._respond(path, fault, head)

    def _respond(self, path: str, fault: Fault | None, head: bool) -> None:
        srv = self.server
        if fault and fault.kind == "redirect":
            location = fault.location.format(path=path, port=srv.server_address[1])
            self._plain(fault.status, {"Location": location})
            return
        if fault and fault.kind == "status":
            self._plain(fault.status, fault.headers)
            return
        if fault and fault.kind == "timeout":
            time.sleep(fault.delay)
            self.close_connection = True
            return
        local = (srv.root / path.lstrip("/")).resolve()
        if srv.root not in local.parents or not local.is_file():
            self._plain(404)
            return
        data = local.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        if fault and fault.kind == "corrupt":
            data = bytes((b * 7 + 13) % 256 for b in data)
        elif fault and fault.kind == "huge":
            data = huge_png()
        elif fault and fault.kind == "empty":
            data = b""
        elif fault and fault.kind == "encoding":
            data = _compress(data, fault.headers.get("Content-Encoding", "gzip"))
        body = data[start:]
        headers = {
            "Content-Type": CONTENT_TYPES.get(local.suffix, "application/octet-stream"),
            "Content-Length": str(len(body)),
            "Accept-Ranges": "bytes",
        }
        if fault and fault.kind in ("headers", "encoding"):
            headers.update(fault.headers)  # opt-out header, wrong content type...
        for key, value in headers.items():
            self.send_header(key, value)
        if getattr(self, "_hf_repo", None):
            import hashlib

            self.send_header("X-Repo-Commit", HF_COMMIT)
            self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        self.end_headers()
        if head:
            return
        if fault and fault.kind in ("slow", "trickle"):  # 10 pieces, or one every 0.25 s
            pieces = 10 if fault.kind == "slow" else max(1, int(fault.delay / 0.25))
            step = max(1, len(body) // pieces)
            for i in range(0, len(body), step):
                time.sleep(fault.delay / pieces)
                self.wfile.write(body[i : i + step])
                self.wfile.flush()
            return
        if fault and fault.kind == "truncate":
            self.wfile.write(body[: int(len(body) * fault.fraction)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _hf_tree(self, path: str) -> None:
        """``/api/datasets/OWNER/NAME/tree/REV``: every file of ``hf/OWNER/NAME/``."""
        import hashlib
        import json

        repo = path[len("/api/datasets/") :].split("/tree/")[0]
        base = (self.server.root / "hf" / repo).resolve()
        if self.server.root not in base.parents or not base.is_dir():
            self._plain(404)
            return
        files = [
            {
                "type": "file",
                "path": p.relative_to(base).as_posix(),
                "size": p.stat().st_size,
                "oid": hashlib.sha1(p.read_bytes()).hexdigest(),
            }
            for p in sorted(base.rglob("*"))
            if p.is_file()
        ]
        body = json.dumps(files).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not self._head:
            self.wfile.write(body)

    def _plain(self, code: int, headers: dict[str, str] | None = None) -> None:
        body = HTTPStatus(code).phrase.encode()
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not getattr(self, "_head", False):
            self.wfile.write(body)


def _compress(data: bytes, encoding: str) -> bytes:
    import gzip
    import zlib

    return gzip.compress(data) if encoding == "gzip" else zlib.compress(data)


class FixtureServer(ThreadingHTTPServer):
    """``with FixtureServer(dir) as srv: srv.base_url`` — binds 127.0.0.1 only."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self, root: str | os.PathLike, port: int = 0, tls: tuple[str, str] | None = None
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.scheme = "http"
        if tls:  # (certfile, keyfile): serve HTTPS
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.root = Path(root).resolve()
        self.faults: dict[str, Fault] = {}
        self.plan: FaultPlan | None = None
        self.hits: dict[str, int] = {}
        self.user_agents: set[str] = set()
        self.concurrent = 0
        self.max_concurrent = 0  # most requests in flight at once (per-domain limit tests)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            fault = self.faults.get(path)
            if fault is None and self.plan is not None:
                return self.plan.fault_for(path, self.hits[path])
            if fault is None or fault.times == 0:
                return None
            if fault.times > 0:
                fault.times -= 1
            return fault

    @contextlib.contextmanager
    def in_flight(self):
        with self._lock:
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            yield
        finally:
            with self._lock:
                self.concurrent -= 1

    @property
    def allow_entry(self) -> str:
        """This server's ``$LAIONFLOW_FETCH_ALLOW`` entry (``127.0.0.1:PORT``)."""
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> FixtureServer:
        self._thread = threading.Thread(target=self.serve_forever, name="fixture-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> FixtureServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
