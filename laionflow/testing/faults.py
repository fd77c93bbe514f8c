"""Seeded fault plans for the fixture server: which image paths misbehave, how, and whether
they heal (transient: fail the first ``heal_after`` attempts) or never do (permanent).

The assignment is a pure function of ``(seed, path)``, so a test knows in advance which URLs
must end up downloaded, which must be counted as failed and with what reason.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field


@dataclass
class Fault:
    """One misbehaviour. ``kind``:

    * ``status``: answer ``status`` (with ``headers``, e.g. ``Retry-After`` for 429);
    * ``truncate``: send ``fraction`` of the body, then close;
    * ``timeout``: say nothing for ``delay`` seconds, then close;
    * ``slow``: send the body in small pieces over ``delay`` seconds;
    * ``corrupt``: same length, garbage bytes;
    * ``headers``: the normal body with ``headers`` added or replaced (opt-out, content type);
    * ``huge``: a tiny PNG declaring 60,000 × 60,000 pixels (a decompression bomb's header);
    * ``redirect``: ``302`` to ``location`` (``{path}`` and ``{port}`` filled in); the server
      serves ``/redirected/...`` fault-free, so a redirect there succeeds (``location="{path}"``
      redirects to itself: a loop);
    * ``encoding``: the body compressed as its ``Content-Encoding`` header says (gzip, deflate);
    * ``trickle``: a few bytes at a time, the whole body taking ``delay`` seconds, no read idle
      for more than 0.25 s (only a deadline on the whole fetch stops it);
    * ``empty``: ``200`` with a zero-byte body.

    Applies to the first ``times`` requests of the path (``-1``: always).
    """

    kind: str = "status"
    status: int = 500
    fraction: float = 0.5
    times: int = 1
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    location: str = ""


#: fault name -> (fault, can it heal?)
KINDS: dict[str, tuple[Fault, bool]] = {
    "404": (Fault("status", 404), False),
    "500": (Fault("status", 500), True),
    "503": (Fault("status", 503), True),
    "429": (Fault("status", 429, headers={"Retry-After": "1"}), True),
    "timeout": (Fault("timeout", delay=3.0), True),
    "slow": (Fault("slow", delay=1.0), True),
    "truncate": (Fault("truncate", fraction=0.5), True),
    "corrupt": (Fault("corrupt"), False),
    "noai": (Fault("headers", headers={"X-Robots-Tag": "noai"}), False),
    "content_type": (Fault("headers", headers={"Content-Type": "text/html"}), False),
    "huge": (Fault("huge"), False),
    "redirect": (Fault("redirect", 302, location="/redirected{path}"), False),
    # a loopback address the allowlist does not name: the SSRF guard must refuse the hop
    "redirect_loopback": (
        Fault("redirect", 302, location="http://127.0.0.2:{port}/redirected{path}"),
        False,
    ),
}


#: what the download stage must record for a URL whose fault never heals: its failure reason,
#: or ``success`` where img2dataset still gets a decodable image (slow body, wrong content
#: type, a redirect to an allowed address)
OUTCOME: dict[str, str] = {
    "404": "http_404",
    "429": "http_429",
    "500": "http_500",
    "503": "http_503",
    "timeout": "timeout",
    "truncate": "truncated",
    "corrupt": "decode_error",
    "noai": "optout_x_robots_tag",
    "huge": "too_large",
    "redirect": "success",
    "redirect_loopback": "blocked_address",
    "content_type": "success",
    "slow": "success",
}
#: faults the server answers before looking for the file (a dead URL gets them too)
BEFORE_FILE = {"404", "429", "500", "503", "timeout", "redirect_loopback"}


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class FaultPlan:
    rates: dict[str, float]
    seed: int = 0
    transient_fraction: float = 0.5  # of the healable faults, how many heal
    heal_after: int = 1
    prefix: str = "/images/"

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kind(s) {sorted(unknown)}; known: {sorted(KINDS)}")
        if sum(self.rates.values()) > 1 + 1e-9:
            raise ValueError("fault rates add up to more than 1")

    def assign(self, path: str) -> tuple[str, bool] | None:
        """``(kind, transient)`` for a path, or None when it behaves."""
        if not path.startswith(self.prefix):
            return None
        u, acc = _unit(self.seed, path), 0.0
        for kind in sorted(self.rates):
            acc += self.rates[kind]
            if u < acc:
                healable = KINDS[kind][1]
                transient = healable and _unit(self.seed, "heal", path) < self.transient_fraction
                return kind, transient
        return None

    def fault_for(self, path: str, attempt: int) -> Fault | None:
        """The fault of the ``attempt``-th request (1-based) of ``path``, if any."""
        assigned = self.assign(path)
        if assigned is None:
            return None
        kind, transient = assigned
        if transient and attempt > self.heal_after:
            return None
        return KINDS[kind][0]


def huge_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A valid-looking PNG header declaring an enormous image, with a token of data."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
