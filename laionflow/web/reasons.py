"""The fixed vocabulary of per-URL failure reasons.

Every failed row of a download ends with exactly one of these names (``http_NNN`` stands for
every status code), never with text built from a library's error message, so counts group the
same way whatever the OpenCV, Pillow or Python version. Each is *retryable* (the repair pass
tries the URL again later) or *final*. The README's reason table is generated from
:data:`REASONS`.
"""

from __future__ import annotations

import re

#: reason -> (retryable, what it means)
REASONS: dict[str, tuple[bool, str]] = {
    "http_4xx": (False, "the server answered a 4xx status (stored as http_404, http_410...)"),
    "http_408": (True, "request timeout status"),
    "http_429": (True, "rate limited by the server (Retry-After honoured)"),
    "http_5xx": (True, "the server answered a 5xx status (stored as http_500, http_503...)"),
    "dns_nxdomain": (False, "the host name does not exist"),
    "dns_servfail": (True, "the resolver failed (SERVFAIL, refused)"),
    "dns_timeout": (True, "no DNS answer in time"),
    "connection_refused": (True, "nothing listens at the host's address"),
    "connection_error": (True, "the connection broke (reset, closed early)"),
    "timeout": (True, "a socket operation timed out"),
    "deadline": (True, "the whole fetch (DNS + connect + headers + body) took too long"),
    "truncated": (True, "the body ended before its Content-Length"),
    "tls_error": (True, "the TLS handshake or certificate failed"),
    "host_unavailable": (True, "skipped: the host's circuit breaker is open after failures"),
    "rate_limited": (True, "skipped: the host's budget or Retry-After would wait too long"),
    "robots_unavailable": (True, "robots.txt answered 5xx or not at all: RFC 9309 disallow"),
    "optout_robots": (False, "robots.txt disallows the path for our user-agent token"),
    "optout_x_robots_tag": (False, "X-Robots-Tag forbids use (noai, noimageai...)"),
    "optout_tdmrep": (False, "TDMRep reserves text and data mining rights"),
    "optout_content_usage": (False, "aipref Content-Usage forbids AI training"),
    "blocked_address": (False, "the SSRF guard refused a non-public address"),
    "blocked_scheme": (False, "a scheme other than http(s), also as redirect target"),
    "invalid_url": (False, "the URL cannot be fetched as written (credentials, bad host)"),
    "redirect_loop": (False, "redirects loop or exceed the limit"),
    "unsupported_encoding": (False, "a Content-Encoding we cannot decode"),
    "empty_body": (False, "the server answered 200 with no bytes"),
    "decode_error": (False, "the bytes are not a decodable image"),
    "too_large": (False, "the image declares more pixels than allowed"),
    "too_small": (False, "the image is smaller than the minimum size"),
    "aspect_ratio": (False, "the image's aspect ratio is out of range"),
    "hash_mismatch": (False, "the bytes do not match the metadata's hash"),
    "other": (False, "anything else (the message is kept in the shard's parquet)"),
}
#: the repair policy's default: every retryable reason (``http_5xx`` covers every 5NN)
RETRYABLE = [name for name, (retry, _) in REASONS.items() if retry]

_OWN = re.compile(r"laionflow(?:-guard)?: ([a-z_0-9]+)")
_HTTP = (re.compile(r"HTTP Error (\d{3})"), re.compile(r"\b(\d{3}) (?:Client|Server) Error"))
#: urllib's redirect refusals come as ``HTTP Error 30x: ...``: matched before the status
_BEFORE_STATUS: tuple[tuple[str, str], ...] = (
    ("redirection to url", "blocked_scheme"),  # urllib refuses a redirect to e.g. file://
    ("infinite loop", "redirect_loop"),  # urllib's loop and 10-hop limit
)
#: img2dataset's and Python's messages, lower case, first match wins
_NEEDLES: tuple[tuple[str, str], ...] = (
    ("laionflow-guard: blocked address", "blocked_address"),
    ("laionflow-guard: blocked scheme", "blocked_scheme"),
    ("unknown url type", "blocked_scheme"),
    ("hash mismatch", "hash_mismatch"),
    ("incompleteread", "truncated"),
    ("cv_io_max_image_pixels", "too_large"),  # OpenCV's pixel limit: a bomb's header
    ("image area too large", "too_large"),
    ("certificate", "tls_error"),
    ("ssl", "tls_error"),
    ("timed out", "timeout"),
    ("timeout", "timeout"),
    ("connection refused", "connection_refused"),
    ("connection reset", "connection_error"),
    ("remote end closed", "connection_error"),
    ("broken pipe", "connection_error"),
    ("name or service not known", "dns_nxdomain"),
    ("no address associated", "dns_nxdomain"),
    ("temporary failure in name resolution", "dns_servfail"),
    ("x-robots-tag", "optout_x_robots_tag"),
    ("disallowed", "optout_x_robots_tag"),
    ("too small", "too_small"),
    ("too large", "too_large"),
    ("aspect ratio", "aspect_ratio"),
    # every image decoder's complaint: OpenCV (its text changes per version), Pillow, ours
    ("cannot identify image", "decode_error"),
    ("image decoding", "decode_error"),
    ("opencv", "decode_error"),
    ("imdecode", "decode_error"),
    ("decode", "decode_error"),
)


def classify(error_message: str | None) -> str:
    """The vocabulary word for an error message (``http_404``, ``deadline``, ``other``...)."""
    msg = (error_message or "").strip()
    if not msg:
        return "other"
    own = _OWN.search(msg)
    if own and own.group(1) in REASONS:
        return own.group(1)
    low = msg.lower()
    for needle, reason in _BEFORE_STATUS:
        if needle in low:
            return reason
    for pattern in _HTTP:
        m = pattern.search(msg)
        if m:
            return f"http_{m.group(1)}"
    for needle, reason in _NEEDLES:
        if needle in low:
            return reason
    return "other"


def is_known(reason: str) -> bool:
    """Whether ``reason`` belongs to the vocabulary (``http_NNN`` included)."""
    return reason in REASONS or bool(re.fullmatch(r"http_\d{3}", reason))


def is_retryable(reason: str, retryable: list[str] | None = None) -> bool:
    """``retryable`` defaults to the vocabulary's; ``http_5xx``/``http_4xx`` match every
    ``http_5NN``/``http_4NN`` not listed on its own."""
    allowed = RETRYABLE if retryable is None else retryable
    if reason in allowed:
        return True
    m = re.fullmatch(r"http_(\d)\d\d", reason)
    return bool(m) and f"http_{m.group(1)}xx" in allowed


def table_markdown() -> str:
    """The README's reason table."""
    rows = ["| reason | retried by repair | meaning |", "|---|---|---|"]
    rows += [f"| `{n}` | {'yes' if r else 'no'} | {d} |" for n, (r, d) in REASONS.items()]
    return "\n".join(rows)
