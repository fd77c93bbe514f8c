"""What the simulated hosts send: images, robots.txt variants, tdmrep.json, opt-out headers.

Bodies are pure functions of the path (and the host's kind), cached, so the server answers
hundreds of requests a second from one event loop and a test can compute the exact bytes a
download must hold.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from functools import cache

import numpy as np
from PIL import Image

from laionflow.testing.simweb.profiles import PATH_RE, HostProfile, _unit

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
PIL_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
#: the opt-out headers images of a host carry, by profile field
OPTOUT_HEADERS = {
    "x_robots_tag": ("X-Robots-Tag", "noai"),
    "tdm_header": ("tdm-reservation", "1"),
    "content_usage": ("Content-Usage", "train-ai=n"),
}
TDMREP_JSON = json.dumps([{"location": "/private/*", "tdm-reservation": 1}]).encode()
CRAWL_DELAY_S = 0.2
ROBOTS_SLOW_S = 1.0
TRICKLE_TOTAL_S = 30.0
TRICKLE_TICK_S = 0.5


def robots_txt(kind: str, token: str) -> tuple[int, bytes]:
    """``(status, body)`` of a host's ``/robots.txt`` by its kind."""
    if kind == "none":
        return 404, b"not found\n"
    if kind == "error":
        return 503, b"service unavailable\n"
    text = {
        "allow": "User-agent: *\nAllow: /\n",
        "slow": "User-agent: *\nAllow: /\n",
        "disallow_path": "User-agent: *\nDisallow: /private/\n",
        "disallow_token": f"User-agent: {token}\nDisallow: /\n\nUser-agent: *\nAllow: /\n",
        "crawl_delay": f"User-agent: *\nCrawl-delay: {CRAWL_DELAY_S}\nAllow: /\n",
    }[kind]
    return 200, text.encode()


@cache
def image_bytes(path: str) -> bytes:
    """The picture at ``/KIND/ID.EXT``: 48-128 px, smooth noise seeded by ``ID.EXT`` (a
    redirect and its target, ``/r/ID`` and ``/img/ID``, hold the same picture)."""
    match = PATH_RE.match(path)
    if match is None:
        raise ValueError(f"not an image path: {path!r}")
    key, ext = f"{match.group(2)}.{match.group(3)}", match.group(3)
    w = 48 + int(_unit("w", key) * 81)
    h = 48 + int(_unit("h", key) * 81)
    seed = int(_unit("pixels", key) * 2**32)
    small = np.random.default_rng(seed).integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    img = Image.fromarray(small, "RGB").resize((w, h), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, PIL_FORMATS[ext], **({"quality": 90} if ext != "png" else {}))
    return buf.getvalue()


@cache
def encoded(path: str, encoding: str | None) -> bytes:
    """The image body as sent with ``Content-Encoding: encoding`` (deflate is the zlib
    format, as RFC 9110 defines it)."""
    body = image_bytes(path)
    if encoding == "gzip":
        return gzip.compress(body, mtime=0)
    if encoding == "deflate":
        return zlib.compress(body)
    return body


def image_headers(host: HostProfile, path: str) -> list[tuple[str, str]]:
    """Headers of a 200 image answer, opt-out ones included, ``Content-Length`` excluded."""
    ext = path.rsplit(".", 1)[1]
    headers = [("Content-Type", CONTENT_TYPES[ext])]
    if host.encoding and not path.startswith("/trickle/"):
        headers.append(("Content-Encoding", host.encoding))
    for field, header in OPTOUT_HEADERS.items():
        if getattr(host, field):
            headers.append(header)
    return headers
