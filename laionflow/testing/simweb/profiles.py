"""Seeded host profiles, URLs and ground truth of the simulated web.

Everything is a pure function of the :class:`WebSpec`, so a test knows before any download what
each URL must end as (``truth``), and the server (another process) derives the very same hosts
from the same spec. Rare traits are allocated by count, not by chance, so even a small web has
at least one host of each kind and a test can rely on finding it.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import astuple, dataclass
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

DNS_KINDS = ("ok", "nxdomain", "servfail", "slow", "drop")
ALIVE_KINDS = ("ok", "refused", "blackhole")
ROBOTS_KINDS = ("none", "allow", "disallow_path", "disallow_token", "crawl_delay", "error", "slow")
#: every final reason a URL of this web can end with
REASONS = (
    "success", "dns_nxdomain", "dns_servfail", "dns_timeout", "connection_refused", "deadline",
    "optout_robots", "robots_unavailable", "optout_tdmrep", "optout_content_usage",
    "optout_x_robots_tag",
)  # fmt: skip
#: one trait per host, exclusive, so each kind also appears alone: (field, value) -> fraction
SPECIAL: dict[tuple[str, object], float] = {
    ("dns", "nxdomain"): 0.03, ("dns", "servfail"): 0.02, ("dns", "slow"): 0.03,
    ("dns", "drop"): 0.02, ("alive", "refused"): 0.03, ("alive", "blackhole"): 0.02,
    ("robots", "disallow_path"): 0.05, ("robots", "disallow_token"): 0.03,
    ("robots", "crawl_delay"): 0.05, ("robots", "error"): 0.02, ("robots", "slow"): 0.02,
    ("x_robots_tag", True): 0.02, ("tdm_header", True): 0.02, ("tdmrep", True): 0.04,
    ("content_usage", True): 0.02,
}  # fmt: skip
RATE_LIMITED = 0.20  # of all hosts, independent of the special trait
ENCODED = {"gzip": 0.06, "deflate": 0.04}
PRIVATE = 0.20  # hosts with /private/ paths, besides disallow_path and tdmrep hosts (always)
OVERLAP = 0.25  # of disallow_path / tdmrep hosts that also send an opt-out header
PRIVATE_URLS = 0.25  # of the URLs of a host with private paths
REDIRECT_URLS = 0.06  # of the URLs of a host that can redirect
TRICKLE_URLS = 0.009  # of the URLs of a plain host
PATH_RE = re.compile(r"^/(img|private|r|trickle)/(\d{6,})\.(jpg|png|webp)$")


@dataclass
class WebSpec:
    seed: int = 0
    hosts: int = 200
    urls: int = 5000
    subnet: str = "127.77"
    token: str = "laionflow"
    domain: str = "sim.test"


@dataclass(frozen=True)
class HostProfile:
    name: str
    ip: str
    dns: str = "ok"
    alive: str = "ok"
    latency_s: float = 0.01
    bandwidth_bps: float = 5e6
    rate_limit: float | None = None
    robots: str = "allow"
    x_robots_tag: bool = False
    tdm_header: bool = False
    tdmrep: bool = False
    content_usage: bool = False
    encoding: str | None = None
    dns_delay_s: float = 0.0  # slow DNS: seconds before the answer
    retry_after_s: int = 1  # the Retry-After this host announces with a 429
    private: bool = False  # whether its URLs include /private/ paths


@dataclass(frozen=True)
class SimUrl:
    url: str
    host: str
    path: str
    truth: str


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) from its arguments: stable across processes and runs."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _cumulative(fractions: dict[str, float]) -> list[tuple[str, float]]:
    total, out = 0.0, []
    for kind, fraction in fractions.items():
        total += fraction
        out.append((kind, total))
    return out


def _counts(n: int) -> dict[tuple[str, object], int]:
    """How many hosts carry each special trait: at least one each when the web has room."""
    counts = {k: max(1, round(f * n)) for k, f in SPECIAL.items()}
    if sum(counts.values()) > n:
        counts = {k: math.floor(f * n) for k, f in SPECIAL.items()}
    return counts


def _draw(seed: int, i: int, name: str, ip: str, trait: tuple[str, object] | None) -> HostProfile:
    """One host: its special trait plus independently drawn benign traits."""

    def u(what: str) -> float:
        return _unit(seed, i, what)

    fields: dict[str, object] = {"robots": "none" if u("robots") < 0.35 else "allow"}
    if trait is not None:
        fields[trait[0]] = trait[1]
    if fields.get("robots") == "disallow_path" or fields.get("tdmrep"):
        if u("overlap") < OVERLAP:
            fields["x_robots_tag" if u("overlap-kind") < 0.5 else "content_usage"] = True
    z = NormalDist().inv_cdf(min(max(u("latency"), 1e-9), 1 - 1e-9))
    enc_u = u("encoding")
    return HostProfile(
        name=name,
        ip=ip,
        latency_s=round(min(0.2, 0.01 * math.exp(0.9 * z)), 4),
        bandwidth_bps=round(0.5e6 * 40 ** u("bandwidth")),
        rate_limit=round(2 + 8 * u("rate"), 1) if u("limited") < RATE_LIMITED else None,
        encoding=next((k for k, c in _cumulative(ENCODED) if enc_u < c), None),
        dns_delay_s=round(0.2 + 0.4 * u("dns-delay"), 3) if fields.get("dns") == "slow" else 0.0,
        retry_after_s=1 if u("retry-after") < 0.5 else 2,
        private=bool(
            fields.get("robots") == "disallow_path"
            or fields.get("tdmrep")
            or u("private") < PRIVATE
        ),
        **fields,  # type: ignore[arg-type]
    )


@lru_cache(maxsize=16)
def _profiles(key: tuple) -> tuple[HostProfile, ...]:
    spec = WebSpec(*key)
    if spec.hosts > 254 * 254:
        raise ValueError(f"at most {254 * 254} hosts fit in {spec.subnet}.0.0/16")
    order = list(range(spec.hosts))
    random.Random(f"simweb-hosts-{spec.seed}").shuffle(order)
    traits: list[tuple[str, object] | None] = [None] * spec.hosts
    slot = 0
    for trait, count in _counts(spec.hosts).items():
        for _ in range(count):
            traits[order[slot]] = trait
            slot += 1
    return tuple(
        _draw(
            spec.seed,
            i,
            f"h{i:04d}.{spec.domain}",
            f"{spec.subnet}.{1 + i // 254}.{1 + i % 254}",
            traits[i],
        )
        for i in range(spec.hosts)
    )


def host_profiles(spec: WebSpec) -> list[HostProfile]:
    """The hosts of the web, in name order (``h0000`` ...)."""
    return list(_profiles(astuple(spec)))


def robots_disallows(robots: str, path: str) -> bool:
    """Whether a host's robots.txt (by kind) disallows ``path`` for our token."""
    if path == "/robots.txt":
        return False
    if robots == "disallow_token":
        return True
    return robots == "disallow_path" and path.startswith("/private/")


def tdm_reserved(host: HostProfile, path: str) -> bool:
    """Whether the host's ``/.well-known/tdmrep.json`` reserves ``path``."""
    return host.tdmrep and path.startswith("/private/")


def _plain(host: HostProfile) -> bool:
    """Reachable, allowing, no opt-out header: redirect targets and trickles live here."""
    return (
        host.dns == "ok"
        and host.alive == "ok"
        and host.robots in ("none", "allow")
        and not (host.x_robots_tag or host.tdm_header or host.content_usage or host.tdmrep)
    )


def _can_redirect(host: HostProfile) -> bool:
    return (
        host.dns in ("ok", "slow")
        and host.alive == "ok"
        and host.robots not in ("error", "disallow_token")
    )


def redirect_target(spec: WebSpec, source: str, path: str) -> tuple[HostProfile, str]:
    """Where ``/r/ID.EXT`` on host ``source`` redirects: ``/img/ID.EXT`` on another plain
    host (the source itself only when no other plain host exists)."""
    match = PATH_RE.match(path)
    if match is None:
        raise ValueError(f"not a simulated web path: {path!r}")
    plain = [h for h in _profiles(astuple(spec)) if _plain(h)]
    others = [h for h in plain if h.name != source] or plain
    if not others:
        raise ValueError("the web has no plain host to redirect to")
    target = others[int(_unit(spec.seed, "redirect", source, path) * len(others))]
    return target, f"/img/{match.group(2)}.{match.group(3)}"


def _reason(host: HostProfile, path: str) -> str:
    """The final reason of ``path`` on ``host`` by the documented precedence (redirects
    aside: their target decides once the source let the client in)."""
    for field, kinds in (
        (host.dns, {"nxdomain": "dns_nxdomain", "servfail": "dns_servfail", "drop": "dns_timeout"}),
        (host.alive, {"refused": "connection_refused", "blackhole": "deadline"}),
        (host.robots, {"error": "robots_unavailable"}),
    ):
        if field in kinds:
            return kinds[field]
    if robots_disallows(host.robots, path):
        return "optout_robots"
    if path.startswith("/r/"):
        return "success"
    if tdm_reserved(host, path):
        return "optout_tdmrep"
    if host.x_robots_tag:
        return "optout_x_robots_tag"
    if host.tdm_header:
        return "optout_tdmrep"
    if host.content_usage:
        return "optout_content_usage"
    if path.startswith("/trickle/"):
        return "deadline"
    return "success"


def url_truth(spec: WebSpec, host: HostProfile, path: str) -> str:
    """The reason a downloader must end with for ``path`` on ``host``."""
    reason = _reason(host, path)
    if reason == "success" and path.startswith("/r/"):
        target, target_path = redirect_target(spec, host.name, path)
        return _reason(target, target_path)
    return reason


def _path(spec: WebSpec, host: HostProfile, i: int) -> str:
    ext_u = _unit(spec.seed, "ext", i)
    ext = "jpg" if ext_u < 0.6 else "png" if ext_u < 0.85 else "webp"
    kind_u, trick_u = _unit(spec.seed, "kind", i), _unit(spec.seed, "trick", i)
    if host.private and kind_u < PRIVATE_URLS:
        kind = "private"
    elif _can_redirect(host) and trick_u < REDIRECT_URLS:
        kind = "r"
    elif _plain(host) and trick_u > 1 - TRICKLE_URLS:
        kind = "trickle"
    else:
        kind = "img"
    return f"/{kind}/{i:06d}.{ext}"


def web_urls(spec: WebSpec, port: int = 80) -> list[SimUrl]:
    """Exactly ``spec.urls`` URLs, dealt round-robin over every host, then shuffled."""
    hosts = host_profiles(spec)
    urls = []
    for i in range(spec.urls):
        host = hosts[i % len(hosts)]
        path = _path(spec, host, i)
        urls.append(
            SimUrl(f"http://{host.name}:{port}{path}", host.name, path, url_truth(spec, host, path))
        )
    random.Random(f"simweb-urls-{spec.seed}").shuffle(urls)
    return urls


def truth(spec: WebSpec, port: int = 80) -> dict[str, str]:
    """URL -> the reason a downloader must end with (``success`` for a servable image)."""
    return {u.url: u.truth for u in web_urls(spec, port)}


def write_metadata(spec: WebSpec, folder: str | Path, parts: int, port: int = 80) -> list[str]:
    """LAION-like parquet parts listing every URL once (see :mod:`.metadata`)."""
    from laionflow.testing.simweb.metadata import write_parts  # pandas only when needed

    return write_parts(spec, folder, parts, port)
