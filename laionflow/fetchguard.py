"""Safety of image fetches: SSRF guard, honest User-Agent, per-domain concurrency.

img2dataset fetches with ``urllib.request.urlopen`` in spawned worker processes, so the guard is
a urllib opener installed process-wide (here, and in the workers by
``laionflow/worker_hooks/sitecustomize.py``, which reads the policy from
``$LAIONFLOW_FETCH_POLICY``). It:

* refuses every address that is not globally routable — loopback, link-local (cloud metadata at
  169.254.169.254), private, CGNAT, multicast, reserved — **after DNS resolution and at connect
  time, on every hop of a redirect** (each hop opens its own guarded connection, which connects
  to the very address it checked: no re-resolution, so no DNS-rebinding window);
* refuses schemes other than http(s) (``file://``, ``ftp://``, ``data:``), also as redirect
  targets;
* lets through only what the deployment allowlists in ``$LAIONFLOW_FETCH_ALLOW`` (comma-separated
  ``host``, ``host:port`` or CIDR entries — the demo and the tests list their fixture server).
  It is an environment setting of the workers on purpose: a trigger form must not be able to
  open the internal network;
* sends an honest User-Agent (no browser impersonation) carrying the opt-out token;
* optionally limits concurrent requests per host across all download processes of a job
  (``flock``-ed slot files, so it holds across img2dataset's worker processes).

Refusals raise ``URLError("laionflow-guard: blocked ...")``; the download stage counts them as
``blocked_address`` / ``blocked_scheme``.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import os
import socket
import time
import urllib.request
import urllib.response
from dataclasses import asdict, dataclass
from urllib.error import URLError

POLICY_ENV = "LAIONFLOW_FETCH_POLICY"
ALLOW_ENV = "LAIONFLOW_FETCH_ALLOW"
HOOK_DIR = os.path.join(os.path.dirname(__file__), "worker_hooks")


def user_agent(token: str) -> str:
    """Who we are, without a browser disguise; keeps img2dataset's ``compatible; TOKEN`` part,
    which sites match to opt out."""
    return (
        f"laionflow/0.1 img2dataset (compatible; {token}; +https://github.com/rom1504/img2dataset)"
    )


@dataclass(frozen=True)
class FetchPolicy:
    """Everything a download worker needs to fetch politely and safely; travels to spawned
    workers and Spark executors as JSON in ``$LAIONFLOW_FETCH_POLICY``."""

    allow: tuple[str, ...] = ()
    user_agent: str = "laionflow/0.1 (compatible; laionflow)"
    per_domain: int = 0  # concurrent requests per host; 0: unlimited
    lock_dir: str = ""  # kept for old policies; ``state_dir`` is what is used
    insecure_ssl: bool = False
    token: str = "laionflow"  # our robots.txt / X-Robots-Tag product token
    signals: tuple[str, ...] = ()  # opt-out signals honoured (laionflow.web.optout.SIGNALS)
    directives: tuple[str, ...] = ("noai", "noimageai", "noindex", "noimageindex")
    deadline_s: float = 30.0  # one fetch, DNS + connect + headers + body, redirects included
    rate: float = 0.0  # requests per second per host; 0: unlimited
    max_wait_s: float = 60.0
    breaker_failures: int = 0  # failures in a row that open a host's circuit; 0: never
    breaker_cooldown_s: float = 300.0
    state_dir: str = ""  # host budgets and opt-out rules shared by the node's processes
    dns: str = ""  # resolver address (``$LAIONFLOW_DNS``); empty: the system's
    dns_timeout_s: float = 5.0

    def budget(self):  # noqa: ANN201 - laionflow.web.budget.Budget
        from laionflow.web.budget import Budget

        return Budget(
            rate=self.rate,
            concurrency=self.per_domain,
            max_wait_s=self.max_wait_s,
            breaker_failures=self.breaker_failures,
            breaker_cooldown_s=self.breaker_cooldown_s,
        )

    def check(self, host: str, ip: str, port: int) -> None:
        check_address(self, host, ip, port)

    @staticmethod
    def allow_from_env() -> tuple[str, ...]:
        raw = os.environ.get(ALLOW_ENV, "")
        return tuple(e.strip() for e in raw.split(",") if e.strip())

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> FetchPolicy | None:
        raw = os.environ.get(POLICY_ENV)
        if not raw:
            return None
        data = json.loads(raw)
        for key in ("allow", "signals", "directives"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def allows(self, host: str, ip: str, port: int) -> bool:
        addr = ipaddress.ip_address(ip)
        for entry in self.allow:
            if "/" in entry:
                with contextlib.suppress(ValueError):
                    if addr in ipaddress.ip_network(entry, strict=False):
                        return True
                continue
            name, _, want_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
            if name.strip("[]") in (host, ip) and (not want_port or int(want_port) == port):
                return True
        return False


def _has_port(entry: str) -> bool:
    if entry.startswith("["):  # [::1]:8080
        return "]:" in entry
    return entry.count(":") == 1


def check_address(policy: FetchPolicy, host: str, ip: str, port: int) -> None:
    """Refuse ``ip`` unless it is globally routable or allowlisted."""
    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    target = mapped or addr
    if policy.allows(host, str(target), port):
        return
    if not target.is_global or target.is_multicast:
        kind = (
            "loopback"
            if target.is_loopback
            else "link-local"
            if target.is_link_local
            else "private"
            if target.is_private
            else "non-global"
        )
        raise URLError(f"laionflow-guard: blocked address {host} -> {target} ({kind})")


def guarded_connection(policy: FetchPolicy):
    """``socket.create_connection`` that resolves (through the shared resolver), checks every
    address, then connects to a checked address itself (never resolving the name again), held
    to the fetch's deadline."""
    from laionflow.web import body
    from laionflow.web.opener import deadline_left
    from laionflow.web.resolver import resolver

    dns = resolver(policy.dns)

    def create(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **_kw):
        host, port = address
        host = host.strip("[]").rstrip(".")
        ips = dns.resolve(host, policy.dns_timeout_s)
        for ip in ips:
            check_address(policy, host, ip, port)
        left = deadline_left()
        if left is not None:
            if left <= 0:
                raise URLError(f"laionflow: deadline: {host} before connecting")
            if not isinstance(timeout, (int, float)) or timeout > left:
                timeout = left
        err: OSError | None = None
        for ip in ips:
            try:
                sock = socket.create_connection(
                    (ip, port), timeout=timeout, source_address=source_address
                )
            except OSError as exc:
                err = exc
                continue
            body.watch(sock, None if left is None else time.monotonic() + left)
            return sock
        raise err or OSError(f"cannot connect to {host}:{port}")

    return create


def _refuse_scheme(self, req):  # noqa: ANN001 - urllib handler signature
    raise URLError(f"laionflow-guard: blocked scheme {req.type}://")


def build_opener(policy: FetchPolicy) -> urllib.request.OpenerDirector:
    from laionflow.web.opener import Client, DeadlineOpener

    create = guarded_connection(policy)
    client = Client(policy, create)

    # http.client sets ``self._create_connection`` in ``__init__``: replace it there
    class _Conn(http.client.HTTPConnection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._create_connection = create

    class _SConn(http.client.HTTPSConnection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._create_connection = create

    class _HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):
            return client.hop(self, _Conn, req)

    class _HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return client.hop(self, _SConn, req, context=self._context)

    class _File(urllib.request.FileHandler):
        file_open = _refuse_scheme

    class _FTP(urllib.request.FTPHandler):
        ftp_open = _refuse_scheme

    class _Data(urllib.request.DataHandler):
        data_open = _refuse_scheme

    class _Unknown(urllib.request.UnknownHandler):
        unknown_open = _refuse_scheme

    opener = urllib.request.build_opener(_HTTP, _HTTPS, _File, _FTP, _Data, _Unknown)
    opener.__class__ = DeadlineOpener  # one deadline per outermost open (all redirects)
    opener.deadline_s = policy.deadline_s
    return opener


def install(policy: FetchPolicy) -> None:
    """Make every ``urlopen`` of this process go through the guard."""
    import ssl

    if policy.insecure_ssl:
        ssl._create_default_https_context = ssl._create_unverified_context
    urllib.request.install_opener(build_opener(policy))


@contextlib.contextmanager
def applied(policy: FetchPolicy):
    """Install ``policy`` here and in every Python process started meanwhile (img2dataset's
    spawned workers), then restore the previous state."""
    import ssl
    import tempfile

    own_lock_dir = not policy.state_dir
    if own_lock_dir:
        policy = FetchPolicy(**{**asdict(policy), "state_dir": tempfile.mkdtemp(prefix="lf-web-")})
    saved_env = {k: os.environ.get(k) for k in (POLICY_ENV, "PYTHONPATH")}
    saved_opener = urllib.request._opener
    saved_ctx = ssl._create_default_https_context
    os.environ[POLICY_ENV] = policy.to_env()
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HOOK_DIR, saved_env["PYTHONPATH"]) if p)
    install(policy)
    try:
        yield policy
    finally:
        urllib.request.install_opener(saved_opener)
        ssl._create_default_https_context = saved_ctx
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if own_lock_dir:
            import shutil

            shutil.rmtree(policy.state_dir, ignore_errors=True)
