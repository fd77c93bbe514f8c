"""Opt-out signals, checked before a byte of an image is fetched where the signal allows it.

* robots.txt (RFC 9309) for our user-agent token, parsed by protego: fetched once per host and
  cached on disk for every process of the node for 24 hours (RFC 9309 §2.4). A 4xx robots.txt
  allows everything; a 5xx one (or a 429 that persists after its ``Retry-After``) means complete
  disallow (§2.3.1.4), counted as ``robots_unavailable`` and retried later by the repair pass;
  a host that cannot be reached at all fails with the network's reason, before any image
  request, and its other URLs fail the same way for 30 s without asking again.
  ``Crawl-delay`` feeds the budget.
* TDMRep (W3C CG): ``/.well-known/tdmrep.json`` per host, checked before the fetch, and the
  ``tdm-reservation: 1`` response header.
* IETF aipref ``Content-Usage`` response header (``train-ai=n`` and its parents ``bots``,
  ``tdm``, ``ai``/``genai`` of the earlier drafts).
* ``X-Robots-Tag`` directives (img2dataset's ``disallowed_header_directives``).

Header signals are read from the response headers and the connection is closed without reading
the body. Each refusal raises ``URLError("laionflow: optout_<signal>: <host> at <time>")``, which
the shard's parquet keeps; :func:`laionflow.jobs.optout_table` builds the per-host table from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from email.message import Message
from urllib.error import URLError

SIGNALS = ("robots", "x_robots_tag", "tdmrep", "content_usage")
ROBOTS_TTL_S = 24 * 3600.0
UNAVAILABLE_TTL_S = 300.0  # a 5xx robots.txt is asked again after this
#: aipref categories whose ``n`` forbids preparing AI training data
AI_TRAINING_KEYS = {"train-ai", "train-genai", "bots", "tdm", "ai", "genai"}

#: ``fetch(url) -> (status, body)``; raises ``URLError`` when the host cannot be reached
Fetcher = Callable[[str], tuple[int, bytes]]


def refuse(signal: str, host: str) -> URLError:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return URLError(f"laionflow: {signal}: {host} at {stamp}")


class HostRules:
    """What one origin (scheme://host:port) says about us."""

    def __init__(self, robots: tuple[int, str], tdmrep: tuple[int, str]) -> None:
        from protego import Protego

        self.robots_status, text = robots
        self.robots = Protego.parse(text) if 200 <= self.robots_status < 300 else None
        status, body = tdmrep
        self.tdm: list[dict] = []
        if 200 <= status < 300:
            with contextlib.suppress(ValueError, TypeError):
                data = json.loads(body)
                rules = data if isinstance(data, list) else []
                self.tdm = [r for r in rules if isinstance(r, dict)]

    def robots_refusal(self, url: str, token: str) -> str | None:
        if self.robots_status >= 500 or self.robots_status == 429:
            return "robots_unavailable"
        if self.robots is not None and not self.robots.can_fetch(url, token):
            return "optout_robots"
        return None

    def crawl_delay(self, token: str) -> float:
        return float((self.robots.crawl_delay(token) if self.robots else None) or 0.0)

    def tdm_reserved(self, path: str) -> bool:
        for rule in self.tdm:
            pattern = str(rule.get("location", ""))
            if pattern and fnmatch.fnmatchcase(path, pattern if "*" in pattern else pattern + "*"):
                return str(rule.get("tdm-reservation", "0")) == "1"
        return False


class OptOut:
    """The signals switched on in ``signals`` for ``token``, with rules cached in ``cache_dir``."""

    def __init__(
        self, cache_dir: str, token: str, signals: tuple[str, ...], directives: tuple[str, ...]
    ) -> None:
        self.dir, self.token, self.signals = cache_dir, token.lower(), set(signals)
        self.directives = {d.strip().lower() for d in directives}
        os.makedirs(cache_dir, exist_ok=True)
        self._rules: dict[str, tuple[float, HostRules]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def before_fetch(self, origin: str, host: str, url: str, path: str, fetch: Fetcher) -> float:
        """Refuse a URL the host opted out of; returns its ``Crawl-delay`` (0 when none)."""
        if not self.signals & {"robots", "tdmrep"}:
            return 0.0
        rules = self.rules(origin, fetch)
        if "robots" in self.signals:
            refusal = rules.robots_refusal(url, self.token)
            if refusal:
                raise refuse(refusal, host)
        if "tdmrep" in self.signals and rules.tdm_reserved(path):
            raise refuse("optout_tdmrep", host)
        return rules.crawl_delay(self.token) if "robots" in self.signals else 0.0

    def after_headers(self, headers: Message, host: str) -> None:
        """Refuse on response headers (the body is then never read)."""
        if "x_robots_tag" in self.signals and self._x_robots(headers):
            raise refuse("optout_x_robots_tag", host)
        if "tdmrep" in self.signals and (headers.get("tdm-reservation") or "").strip() == "1":
            raise refuse("optout_tdmrep", host)
        if "content_usage" in self.signals and _forbids_training(headers.get_all("Content-Usage")):
            raise refuse("optout_content_usage", host)

    def _x_robots(self, headers: Message) -> bool:
        for value in headers.get_all("X-Robots-Tag") or []:
            token, _, rest = value.partition(":") if ":" in value else ("", "", value)
            if token.strip() and token.strip().lower() != self.token:
                continue
            if {d.strip().lower() for d in rest.split(",")} & self.directives:
                return True
        return False

    def rules(self, origin: str, fetch: Fetcher) -> HostRules:
        """The origin's rules: from memory, else the node's disk cache, else fetched (by one
        process and one thread at a time)."""
        hit = self._rules.get(origin)
        if hit and hit[0] > time.time():
            return hit[1]
        with self._lock:
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:
            hit = self._rules.get(origin)
            if hit and hit[0] > time.time():
                return hit[1]
            path = os.path.join(self.dir, hashlib.sha1(origin.encode()).hexdigest()[:20])
            fd = os.open(path + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                entry = self._read(path + ".rules.json")
                if entry is None:
                    try:
                        entry = self._fetch(origin, fetch)
                    except URLError as exc:  # the host's other URLs fail fast, same reason
                        entry = {"unreachable": str(exc.reason), "expires": time.time() + 30}
                    self._write(path + ".rules.json", entry)
            finally:
                os.close(fd)
            if "unreachable" in entry:
                raise URLError(entry["unreachable"])
            rules = HostRules(tuple(entry["robots"]), tuple(entry["tdmrep"]))
            self._rules[origin] = (entry["expires"], rules)
            return rules

    @staticmethod
    def _write(path: str, entry: dict) -> None:
        with open(path + ".tmp", "w") as fh:
            json.dump(entry, fh)
        os.replace(path + ".tmp", path)

    @staticmethod
    def _read(path: str) -> dict | None:
        try:
            with open(path) as fh:
                entry = json.load(fh)
        except (OSError, ValueError):
            return None
        return entry if entry.get("expires", 0) > time.time() else None

    def _fetch(self, origin: str, fetch: Fetcher) -> dict:
        status, body = fetch(origin + "/robots.txt") if "robots" in self.signals else (404, b"")
        robots = (status, body.decode("utf-8", "replace") if 200 <= status < 300 else "")
        unavailable = status >= 500 or status == 429  # RFC 9309: nothing else may be fetched
        tdm_url = origin + "/.well-known/tdmrep.json"
        allowed = HostRules(robots, (404, "")).robots_refusal(tdm_url, self.token) is None
        wanted = "tdmrep" in self.signals and not unavailable and allowed
        tdm = fetch(tdm_url) if wanted else (404, b"")
        ttl = UNAVAILABLE_TTL_S if unavailable else ROBOTS_TTL_S
        return {
            "robots": robots,
            "tdmrep": (tdm[0], tdm[1].decode("utf-8", "replace")),
            "expires": time.time() + ttl,
        }


def _forbids_training(values: list[str] | None) -> bool:
    """aipref ``Content-Usage`` is a structured-field dictionary: ``train-ai=n, search=y``."""
    for value in values or []:
        for item in value.split(","):
            key, _, pref = item.strip().partition("=")
            if key.strip().lower() in AI_TRAINING_KEYS and pref.split(";")[0].strip() == "n":
                return True
    return False


def table(failures: list[tuple[str, str, str, float]]) -> list[dict]:
    """The per-host opt-out table of a part from its failed rows ``(url, reason, message,
    shard end time)``: one entry per host and signal, with its URL count and when it was first
    seen (the time the refusal was written into its message, else the shard's end)."""
    import re
    from urllib.parse import urlsplit

    found: dict[tuple[str, str], dict] = {}
    for url, reason, message, ended in failures:
        if not (reason.startswith("optout_") or reason == "robots_unavailable"):
            continue
        host = (urlsplit(url).hostname or "").rstrip(".")
        stamp = re.search(r" at (\d{4}-\d\d-\d\dT[\d:]+Z)", message or "")
        seen = stamp.group(1) if stamp else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ended))
        entry = found.setdefault(
            (host, reason), {"host": host, "signal": reason, "urls": 0, "first_seen": seen}
        )
        entry["urls"] += 1
        entry["first_seen"] = min(entry["first_seen"], seen)
    return sorted(found.values(), key=lambda e: (e["host"], e["signal"]))
