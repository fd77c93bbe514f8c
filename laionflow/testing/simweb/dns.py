"""A real DNS server for the simulated web's names (dnslib, threaded, UDP and TCP).

Downloads resolve host names through a real resolver so DNS failures happen the way they do on
the web: NXDOMAIN, SERVFAIL, slow answers and answers that never come, each a property of the
host. Only 127.0.0.1 is bound.
"""

from __future__ import annotations

import errno
import random
import threading
import time
from collections.abc import Iterable

from dnslib import QTYPE, RCODE, RR, A, DNSError, DNSRecord
from dnslib.server import DNSLogger, DNSServer

from laionflow.testing.simweb.profiles import HostProfile

TTL = 300
DROP_HOLD_S = 30.0  # how long a TCP query for a dropping name is held unanswered


class _Drop(DNSError):
    """Raised to send nothing: dnslib's handler swallows a DNSError without replying."""


class SimResolver:
    """dnslib resolver answering A records per each host's ``dns`` kind."""

    def __init__(self, hosts: Iterable[HostProfile]) -> None:
        self.hosts = {h.name.lower(): h for h in hosts}

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()  # authoritative, recursion available, same id and question
        name = str(request.q.qname).rstrip(".").lower()
        host = self.hosts.get(name)
        if host is None or host.dns == "nxdomain":
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if host.dns == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if host.dns == "drop":
            if getattr(handler, "protocol", "udp") == "tcp":
                time.sleep(DROP_HOLD_S)  # over TCP too: silence, not a closed connection
            raise _Drop(f"dropping the query for {name}")
        if host.dns == "slow":
            time.sleep(host.dns_delay_s)  # each query has its own server thread
        if request.q.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(host.ip), ttl=TTL))
        return reply  # other types: NOERROR with no answer (NODATA), as for an IPv4-only name


class SimDNS:
    """The UDP and TCP servers on one port of 127.0.0.1; ``port`` 0 picks a free one."""

    def __init__(
        self, hosts: Iterable[HostProfile], port: int = 0, address: str = "127.0.0.1"
    ) -> None:
        self.resolver = SimResolver(hosts)
        self.address = address
        self.servers: list[DNSServer] = []
        self.port = self._bind(port)

    def _bind(self, port: int) -> int:
        """Bind UDP and TCP on the same port, retrying random ports on EADDRINUSE."""
        logger = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        for _ in range(50):
            candidate = port or random.randint(20000, 60999)
            servers: list[DNSServer] = []
            try:
                for tcp in (False, True):
                    servers.append(
                        DNSServer(
                            self.resolver,
                            address=self.address,
                            port=candidate,
                            tcp=tcp,
                            logger=logger,
                        )
                    )
            except OSError as exc:
                for s in servers:
                    s.server.server_close()
                if exc.errno != errno.EADDRINUSE or port:
                    raise
                continue
            self.servers = servers
            return candidate
        raise OSError(errno.EADDRINUSE, "no free port for the DNS server")

    def start(self) -> SimDNS:
        for server in self.servers:
            server.server.daemon_threads = True
            server.thread = threading.Thread(
                target=server.server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="simweb-dns",
                daemon=True,
            )
            server.thread.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.server.shutdown()
            server.server.server_close()

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


def query(name: str, port: int, timeout: float = 2.0) -> DNSRecord:
    """Ask the simulated DNS for ``name`` over UDP (a helper for checks and debugging)."""
    packet = DNSRecord.question(name).send("127.0.0.1", port, timeout=timeout)
    return DNSRecord.parse(packet)


__all__ = ["SimDNS", "SimResolver", "TTL", "query"]
