"""What a client did to the simulated web, from its request log (``SimWeb.requests()``).

Tests and the benchmark judge politeness from the server's side: a client's own counters can
be wrong, the log of what arrived cannot.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

#: log flags that mark a request a polite, opt-out-respecting client never sends
VIOLATION_FLAGS = ("disallowed", "tdm_reserved", "early", "robots_unavailable")


def peak_concurrency_per_host(records: Iterable[dict]) -> dict[str, int]:
    """Host -> the most requests it had in flight at once (as the server counted them)."""
    peak: dict[str, int] = {}
    for r in records:
        peak[r["host"]] = max(peak.get(r["host"], 0), int(r["concurrent"]))
    return peak


def max_rate_per_host(records: Iterable[dict], window_s: float = 1.0) -> dict[str, int]:
    """Host -> the most request arrivals within any ``window_s``-long window."""
    arrivals: dict[str, list[float]] = defaultdict(list)
    for r in records:
        arrivals[r["host"]].append(float(r["t"]))
    best: dict[str, int] = {}
    for host, times in arrivals.items():
        times.sort()
        lo, most = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window_s:
                lo += 1
            most = max(most, hi - lo + 1)
        best[host] = most
    return best


def violations(records: Iterable[dict]) -> dict[str, int]:
    """Counts of impolite requests: to a robots-disallowed path (``disallowed``), to a
    TDM-reserved resource (``tdm_reserved``), before an announced Retry-After ended
    (``early``), to anything but robots.txt on a host whose robots.txt answers 5xx (RFC 9309:
    complete disallow; ``robots_unavailable``); ``total`` counts requests with any flag."""
    counts = dict.fromkeys(VIOLATION_FLAGS, 0)
    counts["total"] = 0
    for r in records:
        flagged = [f for f in VIOLATION_FLAGS if r.get(f)]
        for f in flagged:
            counts[f] += 1
        counts["total"] += bool(flagged)
    return counts


def requests_per_path(records: Iterable[dict]) -> dict[tuple[str, str], int]:
    """(host, path) -> how many times it was requested (to spot refetches)."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for r in records:
        counts[(r["host"], r["path"])] += 1
    return dict(counts)
