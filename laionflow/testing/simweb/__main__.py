"""Run the simulated web (DNS + HTTP) as its own process until SIGTERM.

``python -m laionflow.testing.simweb --seed S --hosts N --urls M --log FILE --ready FILE``
writes the ready file (JSON: ``port``, ``dns_port``, ``pid``) once both servers listen. It runs
in a process of its own so the client under test (img2dataset's threads and processes) never
shares a GIL or an event loop with the web it is judged on. It also ends by itself when its
parent dies or ``--lifetime`` passes, so no test can leave it behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

from laionflow.testing.simweb.dns import SimDNS
from laionflow.testing.simweb.profiles import WebSpec, host_profiles
from laionflow.testing.simweb.server import SimHTTP


def _args(argv: list[str] | None) -> argparse.Namespace:
    defaults = WebSpec()
    p = argparse.ArgumentParser(prog="python -m laionflow.testing.simweb", description=__doc__)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--hosts", type=int, default=defaults.hosts)
    p.add_argument("--urls", type=int, default=defaults.urls)
    p.add_argument("--subnet", default=defaults.subnet)
    p.add_argument("--token", default=defaults.token)
    p.add_argument("--domain", default=defaults.domain)
    p.add_argument("--log", required=True, help="request log, one JSON object a line")
    p.add_argument("--ready", required=True, help="written (JSON) once both servers listen")
    p.add_argument("--port", type=int, default=0, help="HTTP port on every host (0: free one)")
    p.add_argument("--dns-port", type=int, default=0, help="DNS port on 127.0.0.1 (0: free)")
    p.add_argument("--lifetime", type=float, default=4 * 3600, help="stop after this many s")
    return p.parse_args(argv)


async def _watch(stop: asyncio.Event, lifetime: float) -> None:
    """Set ``stop`` when the parent goes away (we get re-parented) or the lifetime ends."""
    parent, deadline = os.getppid(), time.monotonic() + lifetime
    while not stop.is_set():
        if os.getppid() != parent or time.monotonic() > deadline:
            stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def serve(spec: WebSpec, args: argparse.Namespace) -> None:
    """Start DNS and HTTP, announce them in the ready file, serve until told to stop."""
    dns = SimDNS(host_profiles(spec), port=args.dns_port).start()
    http = SimHTTP(spec, args.log, port=args.port)
    try:
        await http.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ready = Path(args.ready)
        tmp = ready.with_name(ready.name + ".tmp")
        tmp.write_text(json.dumps({"port": http.port, "dns_port": dns.port, "pid": os.getpid()}))
        tmp.replace(ready)  # atomic: a reader never sees half a file
        await _watch(stop, args.lifetime)
    finally:
        await http.stop()
        dns.stop()


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    spec = WebSpec(args.seed, args.hosts, args.urls, args.subnet, args.token, args.domain)
    asyncio.run(serve(spec, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
