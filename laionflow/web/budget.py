"""Politeness per host, shared by every process of a node: rate, concurrency, ``Retry-After``,
``Crawl-delay``, exponential backoff and a circuit breaker.

img2dataset hammers whatever hosts its shuffled input names (its users' 429s and a suspended
cloud account: img2dataset #62, #331, #375). Here every request first *reserves* a start time in
its host's schedule, a small JSON file under ``state_dir`` updated under ``flock``, so the
budget holds across img2dataset's worker processes and across the parts a worker runs (on
Spark: per node). A host that answers 429/503 with ``Retry-After`` gets nothing before that
time and its rate is halved (recovering additively on success); a host that keeps failing gets
exponentially later slots and, after ``breaker_failures`` times in a row unreachable (refused,
timed out, cut off), its circuit opens:
its URLs are skipped as ``host_unavailable`` (retryable, so the repair pass retries them)
instead of each holding a worker for a full timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass
from urllib.error import URLError

#: a host that sends 429/503 without a configured rate starts from this rate (req/s), halved
START_RATE = 8.0
MIN_RATE = 1.0


@dataclass(frozen=True)
class Budget:
    rate: float = 5.0  # requests per second per host; 0: unlimited
    concurrency: int = 4  # requests in flight per host; 0: unlimited
    max_wait_s: float = 60.0  # a slot further away fails the URL as ``rate_limited``
    breaker_failures: int = 5
    breaker_cooldown_s: float = 300.0
    backoff_s: float = 0.1  # first backoff after a failure, doubled per failure in a row
    backoff_max_s: float = 30.0


def _stem(state_dir: str, host: str) -> str:
    return os.path.join(state_dir, hashlib.sha1(host.encode()).hexdigest()[:20])


class HostBudgets:
    """The schedule of every host, in ``state_dir`` (created when missing)."""

    def __init__(self, state_dir: str, budget: Budget) -> None:
        self.dir, self.budget = state_dir, budget
        os.makedirs(state_dir, exist_ok=True)

    @contextlib.contextmanager
    def _state(self, host: str):
        fd = os.open(_stem(self.dir, host) + ".json", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, 65536, 0)
            try:
                state = json.loads(raw) if raw else {}
            except ValueError:
                state = {}
            before = dict(state)
            yield state
            if state != before:
                data = json.dumps(state).encode()
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
        finally:
            os.close(fd)  # releases the lock

    def reserve(self, host: str, crawl_delay: float = 0.0) -> None:
        """Wait for this host's next free start time (or fail fast when it is too far)."""
        b = self.budget
        with self._state(host) as st:
            now = time.time()
            if st.get("open_until", 0) > now:
                raise URLError(f"laionflow: host_unavailable: {host} (circuit open)")
            rate = st.get("rate", b.rate)
            interval = max(1.0 / rate if rate > 0 else 0.0, crawl_delay)
            start = max(now, st.get("next", 0.0), st.get("retry_until", 0.0))
            if start - now > b.max_wait_s:
                raise URLError(f"laionflow: rate_limited: {host} (next slot in {start - now:.0f}s)")
            if interval > 0 or start > now:
                st["next"] = start + interval
        if start > now:
            time.sleep(start - time.time() if start > time.time() else 0)

    @contextlib.contextmanager
    def turn(self, host: str, crawl_delay: float = 0.0):
        """This request's turn: a reserved start time, then a concurrency slot, then one more
        look at ``Retry-After`` (another process may have been told to wait meanwhile)."""
        while True:
            self.reserve(host, crawl_delay)
            with self.slot(host):
                with self._state(host) as st:
                    blocked = st.get("retry_until", 0.0) > time.time()
                if not blocked:
                    yield
                    return

    def retry_after(self, host: str, seconds: float) -> None:
        """The host asked us to wait: nothing before then, and half the rate afterwards (from
        :data:`START_RATE` when no rate is set, never under :data:`MIN_RATE`)."""
        with self._state(host) as st:
            st["retry_until"] = max(st.get("retry_until", 0.0), time.time() + seconds)
            rate = st.get("rate") or self.budget.rate or START_RATE
            st["rate"] = max(MIN_RATE, rate / 2)

    def failure(self, host: str, unreachable: bool = True) -> None:
        """A failure: back off exponentially. Only an *unreachable* host (refused, timed out,
        cut off) counts towards its circuit: one answering 5xx is alive and answers fast, and
        a repair pass, made of the URLs that failed before, must not trip it."""
        b = self.budget
        with self._state(host) as st:
            now = time.time()
            fails = st.get("fails", 0) + 1
            st["fails"] = fails
            delay = min(b.backoff_max_s, b.backoff_s * 2 ** (fails - 1))
            st["next"] = max(st.get("next", 0.0), now + delay)
            if unreachable:
                st["down"] = st.get("down", 0) + 1
                if b.breaker_failures and st["down"] >= b.breaker_failures:
                    st["open_until"] = now + b.breaker_cooldown_s

    def success(self, host: str) -> None:
        with self._state(host) as st:
            st["fails"] = st["down"] = 0
            st.pop("open_until", None)
            if "rate" in st:  # additive recovery, up to the configured rate or none at all
                st["rate"] += 0.5
                if self.budget.rate > 0:
                    st["rate"] = min(self.budget.rate, st["rate"])
                elif st["rate"] >= START_RATE * 4:
                    del st["rate"]

    @contextlib.contextmanager
    def slot(self, host: str):
        """At most ``concurrency`` requests in flight to ``host`` (flock-ed slot files)."""
        limit = self.budget.concurrency
        if limit <= 0:
            yield
            return
        stem = _stem(self.dir, host)
        while True:
            for n in range(limit):
                fd = os.open(f"{stem}.{n}.slot", os.O_CREAT | os.O_RDWR, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    yield
                    return
                finally:
                    os.close(fd)
            time.sleep(0.005)
