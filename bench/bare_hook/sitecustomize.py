"""Put on PYTHONPATH by ``bench/web.py`` for bare img2dataset only, so that its spawned workers
can resolve the simulated web's names (the system resolver cannot): ``socket.getaddrinfo`` for
names under ``$BENCH_BARE_DOMAIN`` becomes one plain, uncached A query to ``$BENCH_BARE_DNS``
(``IP:PORT``), as a stub resolver without nscd would send: every lookup is a query. NXDOMAIN
raises ``EAI_NONAME``, SERVFAIL/REFUSED or no answer within 5 s ``EAI_AGAIN``, with glibc's
messages. Every other name goes to the real ``getaddrinfo``. This is the only help bare
img2dataset gets in the benchmark."""

import os

if os.environ.get("BENCH_BARE_DNS") and os.environ.get("BENCH_BARE_DOMAIN"):
    import socket

    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    _SERVER, _, _PORT = os.environ["BENCH_BARE_DNS"].rpartition(":")
    _SUFFIX = "." + os.environ["BENCH_BARE_DOMAIN"].strip(".").lower()
    _TIMEOUT_S = 5.0
    _real_getaddrinfo = socket.getaddrinfo

    def _lookup(name: str) -> list[str]:
        query = dns.message.make_query(name, dns.rdatatype.A)
        try:
            reply = dns.query.udp(query, _SERVER, timeout=_TIMEOUT_S, port=int(_PORT))
        except dns.exception.Timeout:
            raise socket.gaierror(
                socket.EAI_AGAIN, "Temporary failure in name resolution"
            ) from None
        rcode = reply.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if rcode != dns.rcode.NOERROR:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        ips = [r.address for rrset in reply.answer for r in rrset if r.rdtype == dns.rdatatype.A]
        if not ips:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return ips

    def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        name = host.decode() if isinstance(host, bytes) else host
        if not isinstance(name, str) or not name.rstrip(".").lower().endswith(_SUFFIX):
            return _real_getaddrinfo(host, port, family, type, proto, flags)
        if family not in (0, socket.AF_INET):
            raise socket.gaierror(
                socket.EAI_ADDRFAMILY, "Address family for hostname not supported"
            )
        port = int(port or 0) if not isinstance(port, str) or port.isdigit() else 0
        kinds = [type] if type else [socket.SOCK_STREAM, socket.SOCK_DGRAM]
        protos = {socket.SOCK_STREAM: socket.IPPROTO_TCP, socket.SOCK_DGRAM: socket.IPPROTO_UDP}
        return [
            (socket.AF_INET, kind, proto or protos.get(kind, 0), "", (ip, port))
            for ip in _lookup(name.rstrip("."))
            for kind in kinds
        ]

    socket.getaddrinfo = _getaddrinfo
