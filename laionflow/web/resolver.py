"""DNS for image fetches: one resolver per worker process, a cache its threads share.

A LAION part asks for the same few thousand host names again and again from dozens of threads;
sent one by one to the system resolver that load is what makes img2dataset runs fail with DNS
errors (img2dataset #360, #361, #400). Here each name is resolved once per TTL per process,
concurrent lookups of one name wait for the first (single flight), and failures are cached
briefly too. ``$LAIONFLOW_DNS`` (``IP[:PORT]`` or ``HOST[:PORT]`` of a caching resolver, e.g.
the compose file's ``dns`` service) sends the queries there with dnspython; unset or
``system``, ``getaddrinfo`` does. Failures carry their own reasons: ``dns_nxdomain`` (final),
``dns_servfail`` and ``dns_timeout`` (retried by the repair pass).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from urllib.error import URLError

DNS_ENV = "LAIONFLOW_DNS"
#: how long a failure is remembered, by reason (seconds)
NEGATIVE_TTL = {"dns_nxdomain": 300.0, "dns_servfail": 30.0, "dns_timeout": 30.0}
SYSTEM_TTL = 300.0  # getaddrinfo tells no TTL
MAX_TTL = 3600.0


class DnsError(URLError):
    """A lookup failed; ``reason`` starts with the vocabulary word."""

    def __init__(self, kind: str, host: str) -> None:
        super().__init__(f"laionflow: {kind}: {host}")
        self.kind = kind


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class Resolver:
    """``resolve(host, timeout) -> [ip, ...]`` with a thread-shared TTL cache."""

    def __init__(self, server: str = "") -> None:
        self.server = "" if server.strip() in ("", "system") else server.strip()
        self._cache: dict[str, tuple[float, list[str] | str]] = {}
        self._flights: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._dns = self._dnspython() if self.server else None
        self.queries = 0  # lookups actually sent (tests and the benchmark read it)

    def _dnspython(self):
        import dns.resolver

        host, _, port = self.server.rpartition(":") if ":" in self.server else (self.server, "", "")
        if not _is_ip(host):  # a service name (compose): resolve it once, by the system
            host = socket.gethostbyname(host)
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [host]
        res.port = int(port or 53)
        return res

    def resolve(self, host: str, timeout: float = 5.0) -> list[str]:
        host = host.strip("[]").rstrip(".").lower()
        if _is_ip(host):
            return [host]
        hit = self._cached(host)
        if hit is None:
            with self._lock:
                flight = self._flights.setdefault(host, threading.Lock())
            with flight:  # one lookup per name at a time; the others read its result
                hit = self._cached(host)
                if hit is None:
                    hit = self._lookup(host, timeout)
        if isinstance(hit, str):
            raise DnsError(hit, host)
        return hit

    def _cached(self, host: str) -> list[str] | str | None:
        entry = self._cache.get(host)
        if entry and entry[0] > time.monotonic():
            return entry[1]
        return None

    def _lookup(self, host: str, timeout: float) -> list[str] | str:
        self.queries += 1
        try:
            ips, ttl = self._query(host, timeout)
            value: list[str] | str = ips
        except DnsError as exc:
            value, ttl = exc.kind, NEGATIVE_TTL[exc.kind]
        self._cache[host] = (time.monotonic() + min(ttl, MAX_TTL), value)
        return value

    def _query(self, host: str, timeout: float) -> tuple[list[str], float]:
        if self._dns is None:
            return self._system(host), SYSTEM_TTL
        import dns.exception
        import dns.resolver

        for rdtype in ("A", "AAAA"):
            try:
                ans = self._dns.resolve(host, rdtype, lifetime=timeout, search=False)
            except dns.resolver.NoAnswer:
                continue
            except dns.resolver.NXDOMAIN:
                raise DnsError("dns_nxdomain", host) from None
            except dns.exception.Timeout:
                raise DnsError("dns_timeout", host) from None
            except (dns.resolver.NoNameservers, dns.exception.DNSException):
                raise DnsError("dns_servfail", host) from None
            return [r.address for r in ans], float(ans.rrset.ttl if ans.rrset else 60)
        raise DnsError("dns_nxdomain", host)  # the name exists but has no address

    @staticmethod
    def _system(host: str) -> list[str]:
        try:
            infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            final = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
            kind = "dns_nxdomain" if exc.errno in final else "dns_servfail"
            raise DnsError(kind, host) from None
        return list(dict.fromkeys(info[4][0] for info in infos))


_resolvers: dict[str, Resolver] = {}
_resolvers_lock = threading.Lock()


def resolver(server: str = "") -> Resolver:
    """This process's resolver for ``server`` (shared by every thread)."""
    with _resolvers_lock:
        if server not in _resolvers:
            _resolvers[server] = Resolver(server)
        return _resolvers[server]
