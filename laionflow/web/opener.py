"""One hop of an image fetch, as img2dataset's ``urlopen`` makes it through our opener.

Order per hop (a redirect is a new hop through the same steps): URL sanity (no credentials,
a host) → DNS (shared cache) and the SSRF check of every address → opt-out before the fetch
(robots.txt, tdmrep.json) → the host's budget (rate, ``Crawl-delay``, ``Retry-After``, breaker,
concurrency slot) → connect to a checked address → headers (429/503 ``Retry-After`` honoured
and retried in place; header opt-outs close the connection unread) → the body, read under one
deadline for the whole fetch and decoded (``Content-Encoding``). Every failure leaves as
``URLError("laionflow: <reason>: ...")`` with a word of :mod:`laionflow.web.reasons`.
"""

from __future__ import annotations

import email.utils
import http.client
import io
import socket
import threading
import time
import urllib.request
import urllib.response
from urllib.error import URLError
from urllib.parse import urljoin, urlsplit

from laionflow.web import body as bodies
from laionflow.web.budget import HostBudgets
from laionflow.web.optout import OptOut
from laionflow.web.reasons import classify
from laionflow.web.resolver import resolver

#: failures that count towards a host's backoff and circuit breaker
HOST_FAILURES = {"connection_refused", "connection_error", "timeout", "deadline", "tls_error"}
_fetch = threading.local()  # this thread's fetch: its deadline (monotonic), watched sockets


def deadline_left() -> float | None:
    at = getattr(_fetch, "deadline", None)
    return None if at is None else at - time.monotonic()


class DeadlineOpener(urllib.request.OpenerDirector):
    """Gives each outermost ``open`` (one image, all its redirects) one deadline."""

    deadline_s: float = 30.0

    def open(self, fullurl, data=None, timeout=socket._GLOBAL_DEFAULT_TIMEOUT):  # noqa: ANN001
        if getattr(_fetch, "depth", 0):
            return super().open(fullurl, data, timeout)
        _fetch.depth, _fetch.deadline = 1, None
        try:
            return super().open(fullurl, data, timeout)
        finally:
            _fetch.depth, _fetch.deadline = 0, None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Client:
    """The per-process state behind every hop: resolver, budgets, opt-out rules."""

    def __init__(self, policy, create_connection) -> None:  # noqa: ANN001 - FetchPolicy
        self.policy = policy
        self.create = create_connection
        self.dns = resolver(policy.dns)
        self.budgets = HostBudgets(policy.state_dir, policy.budget())
        self.optout = OptOut(
            policy.state_dir, policy.token, tuple(policy.signals), tuple(policy.directives)
        )
        self.retry_attempts = 2  # in-place retries after a Retry-After the budget can wait
        self.dns_timeout = min(policy.dns_timeout_s, policy.deadline_s)

    def hop(self, handler, conn_class, req, **kwargs):  # noqa: ANN001 - urllib's signature
        parts = urlsplit(req.full_url)
        if "@" in parts.netloc:
            raise URLError("laionflow: invalid_url: credentials in the URL are never sent")
        try:
            host, port = (parts.hostname or "").rstrip("."), parts.port
        except ValueError:
            raise URLError("laionflow: invalid_url: bad port") from None
        if not host:
            raise URLError("laionflow: invalid_url: no host")
        port = port or (443 if parts.scheme == "https" else 80)
        for ip in self.dns.resolve(host, self.dns_timeout):  # DnsError: the dns_* reasons
            self.policy.check(host, ip, port)  # blocked_address before any request
        origin = f"{parts.scheme}://{host}:{port}"
        crawl_delay = self.optout.before_fetch(
            origin, host, req.full_url, parts.path or "/", self.fetch_small
        )
        for attempt in range(self.retry_attempts + 1):
            queued = time.monotonic()
            with self.budgets.turn(host, crawl_delay):
                if getattr(_fetch, "deadline", None) is not None:  # waiting is not fetching
                    _fetch.deadline += time.monotonic() - queued
                resp, wait = self._request(handler, conn_class, req, host, kwargs)
            if wait is None or attempt == self.retry_attempts:
                return resp
            _fetch.deadline = None  # the next try gets a fresh deadline after its wait
        return resp

    def _request(self, handler, conn_class, req, host, kwargs):  # noqa: ANN001
        if getattr(_fetch, "deadline", None) is None:
            _fetch.deadline = time.monotonic() + self.policy.deadline_s
        req.add_header("User-Agent", self.policy.user_agent)
        req.add_header("Accept-Encoding", "gzip, deflate")
        try:
            resp = urllib.request.AbstractHTTPHandler.do_open(handler, conn_class, req, **kwargs)
            status = resp.status
            wait = _retry_after(resp.headers.get("Retry-After")) if status in (429, 503) else None
            if wait is not None:
                self.budgets.retry_after(host, wait)
            if status >= 500:
                self.budgets.failure(host, unreachable=False)
            if 200 <= status < 300:
                try:
                    self.optout.after_headers(resp.headers, host)
                except URLError:
                    resp.close()
                    raise
            data = bodies.read(resp, _fetch.deadline)
            if 200 <= status < 300:
                data = bodies.decode(data, resp.headers.get("Content-Encoding"))
                self.budgets.success(host)
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            raise self._failed(host, exc) from None
        finally:
            bodies.unwatch_all()
        out = urllib.response.addinfourl(io.BytesIO(data), resp.headers, resp.url, status)
        out.msg = resp.reason
        usable = wait is not None and wait <= self.budgets.budget.max_wait_s
        return out, (wait if usable else None)

    def _failed(self, host: str, exc: BaseException) -> URLError:
        """One vocabulary word for a failure; network failures count against the host."""
        while isinstance(exc, URLError) and isinstance(exc.reason, BaseException):
            exc = exc.reason  # urllib wraps what the connection raised: keep the cause
        text = str(exc)
        left = deadline_left()
        ours = "laionflow" in text
        kind = "deadline" if not ours and left is not None and left <= 0 else classify(text)
        if kind in HOST_FAILURES:
            self.budgets.failure(host)
        if ours:
            return exc if isinstance(exc, URLError) else URLError(text)
        return URLError(f"laionflow: {kind}: {host}: {text}")

    def fetch_small(self, url: str, redirects: int = 5) -> tuple[int, bytes]:
        """GET a small policy file (robots.txt, tdmrep.json) through the same guard, budget and
        ``Retry-After`` handling as images. A host that cannot be reached at all fails the URL
        with the network's own reason (``connection_refused``, ``timeout``...: retried later);
        more than five redirects count as a 404 (RFC 9309)."""
        tries = 0
        while redirects >= 0:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return 404, b""
            host = parts.hostname.rstrip(".")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            for ip in self.dns.resolve(host, self.dns_timeout):
                self.policy.check(host, ip, port)
            with self.budgets.turn(host):
                try:
                    status, headers, data = self._get(parts, host, port)
                except (OSError, http.client.HTTPException) as exc:
                    raise self._failed(host, exc) from None
            wait = _retry_after(headers.get("Retry-After")) if status in (429, 503) else None
            if wait is not None and wait <= self.budgets.budget.max_wait_s and tries < 2:
                self.budgets.retry_after(host, wait)
                tries += 1
                continue
            location = headers.get("Location")
            if status in (301, 302, 303, 307, 308) and location:
                url, redirects = urljoin(url, location), redirects - 1
                continue
            return status, data
        return 404, b""

    def _get(self, parts, host: str, port: int):  # noqa: ANN001
        import ssl

        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                host,
                port,
                timeout=self.policy.deadline_s,
                context=ssl._create_default_https_context(),
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.policy.deadline_s)
        conn._create_connection = self.create
        saved = getattr(_fetch, "deadline", None)
        _fetch.deadline = time.monotonic() + self.policy.deadline_s
        try:
            path = parts.path or "/"
            conn.request(
                "GET",
                path + (f"?{parts.query}" if parts.query else ""),
                headers={"User-Agent": self.policy.user_agent, "Accept-Encoding": "gzip, deflate"},
            )
            resp = conn.getresponse()
            data = bodies.read(resp, _fetch.deadline, limit=512 * 1024)
            if 200 <= resp.status < 300:
                data = bodies.decode(data, resp.headers.get("Content-Encoding"), empty_ok=True)
            return resp.status, resp.headers, data
        except (OSError, http.client.HTTPException):
            if time.monotonic() >= _fetch.deadline:  # the reaper cut it: say so
                raise URLError(f"laionflow: deadline: {host}: no policy file in time") from None
            raise
        finally:
            bodies.unwatch_all()
            _fetch.deadline = saved
            conn.close()
