"""A simulated web of many hosts on loopback addresses, with a real DNS server.

Hundreds of virtual hosts, each on its own ``127.77.X.Y`` address, with seeded profiles (DNS
failures, dead hosts, latency, bandwidth, rate limits, robots.txt variants, TDMRep, opt-out
headers, redirects, compressed bodies, trickles) and a ground truth of which URLs a careful
downloader must end with which reason. Every request is logged, so tests judge what a client
did. See :mod:`.profiles` for the vocabulary and :mod:`.analysis` for the checks.

Usage::

    with SimWeb(WebSpec(seed=1, hosts=40, urls=400), tmp_path) as web:
        web.write_metadata(tmp_path / "meta", parts=2)
        ...  # download with resolver web.dns and allowlist web.allow_entry
        assert violations(web.requests())["total"] == 0
"""

from __future__ import annotations

from laionflow.testing.simweb.profiles import (
    REASONS,
    HostProfile,
    SimUrl,
    WebSpec,
    host_profiles,
    truth,
    web_urls,
    write_metadata,
)
from laionflow.testing.simweb.web import SimWeb

__all__ = [
    "REASONS",
    "HostProfile",
    "SimUrl",
    "SimWeb",
    "WebSpec",
    "host_profiles",
    "truth",
    "web_urls",
    "write_metadata",
]
