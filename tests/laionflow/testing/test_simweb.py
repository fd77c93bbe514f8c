"""The simulated web over real sockets: its DNS answers, what each kind of host sends, the rate
limit and its request log, determinism, and that nothing of it outlives its ``with`` block."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import socket
import subprocess
import time
import urllib.robotparser
import zlib

import dns.exception
import dns.resolver
import pandas as pd
import pytest
from PIL import Image

from laionflow.testing.simweb import REASONS, SimWeb, WebSpec, host_profiles, truth, web_urls
from laionflow.testing.simweb import profiles as profiles_mod
from laionflow.testing.simweb.analysis import (
    max_rate_per_host,
    peak_concurrency_per_host,
    violations,
)
from laionflow.testing.simweb.content import TDMREP_JSON, image_bytes
from laionflow.testing.simweb.server import EARLY_GRACE_S

SPEC = WebSpec(seed=1, hosts=40, urls=400)
UA = "simweb-test/1.0 (compatible; laionflow)"


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    with SimWeb(SPEC, tmp_path_factory.mktemp("simweb")) as running:
        yield running
    assert f"{SPEC.subnet}." not in _listeners(running.port)


def _listeners(port: int, proto: str = "t") -> str:
    """Listening TCP (``t``) or UDP (``u``) sockets on ``port`` (``ss`` output lines)."""
    out = subprocess.run(["ss", f"-Hl{proto}n"], capture_output=True, text=True, check=True).stdout
    return "\n".join(line for line in out.splitlines() if f":{port} " in line)


def _host(web: SimWeb, *, alive: str = "ok", **want) -> profiles_mod.HostProfile:
    """The first host with these profile values (rate-limited ones last, to keep 429s away)."""
    hosts = sorted(web.hosts, key=lambda h: h.rate_limit is not None)
    for h in hosts:
        if h.alive == alive and all(getattr(h, k) == v for k, v in want.items()):
            return h
    pytest.fail(f"no host with {want} in this web (every kind exists from 15 hosts on)")


def _plain(web: SimWeb) -> profiles_mod.HostProfile:
    return _host(
        web, robots="allow", x_robots_tag=False, tdm_header=False, tdmrep=False,
        content_usage=False, encoding=None, rate_limit=None,
    )  # fmt: skip


def _get(web, host, path, method="GET", ua=UA):
    conn = http.client.HTTPConnection(host.ip, web.port, timeout=5)
    try:
        conn.request(method, path, headers={"Host": f"{host.name}:{web.port}", "User-Agent": ua})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _records(web, ua, n, timeout=3.0):
    """The log records of user-agent ``ua``, once ``n`` are there (lines land after replies)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in web.requests() if r["ua"] == ua]
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _resolver(web, lifetime=2.0):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = web.dns_port
    resolver.lifetime = resolver.timeout = lifetime
    return resolver


def test_dns_answers_per_host_kind(web):
    res = _resolver(web)
    ok = _host(web, dns="ok")
    assert [a.address for a in res.resolve(ok.name, "A")] == [ok.ip]
    assert [a.address for a in res.resolve(ok.name, "A", tcp=True)] == [ok.ip]
    assert res.resolve(ok.name, "A").rrset.ttl == 300
    with pytest.raises(dns.resolver.NoAnswer):
        res.resolve(ok.name, "AAAA")
    for kind, error in (
        ("nxdomain", dns.resolver.NXDOMAIN),
        ("servfail", dns.resolver.NoNameservers),
    ):
        with pytest.raises(error):
            res.resolve(next(h for h in web.hosts if h.dns == kind).name, "A")
    with pytest.raises(dns.resolver.NXDOMAIN):
        res.resolve(f"nope.{SPEC.domain}", "A")
    slow = next(h for h in web.hosts if h.dns == "slow")
    t0 = time.monotonic()
    assert [a.address for a in res.resolve(slow.name, "A")] == [slow.ip]
    assert 0.2 <= slow.dns_delay_s <= time.monotonic() - t0 < 1.5
    drop = next(h for h in web.hosts if h.dns == "drop")
    with pytest.raises(dns.exception.Timeout):
        _resolver(web, lifetime=0.5).resolve(drop.name, "A")


def test_plain_image_decodes_and_unknown_path_is_404(web):
    host = _plain(web)
    status, headers, body = _get(web, host, "/img/000007.png")
    assert status == 200 and headers["content-type"] == "image/png"
    assert int(headers["content-length"]) == len(body) and body == image_bytes("/img/000007.png")
    img = Image.open(io.BytesIO(body))
    img.load()
    assert 48 <= img.width <= 128 and 48 <= img.height <= 128
    assert not {"x-robots-tag", "tdm-reservation", "content-usage", "content-encoding"} & set(
        headers
    )
    assert _get(web, host, "/nothing-here")[0] == 404
    assert _get(web, host, "/.well-known/tdmrep.json")[0] == 404


def test_robots_variants(web):
    token = SPEC.token
    bodies = {}
    for kind in ("none", "allow", "disallow_path", "disallow_token", "crawl_delay", "error"):
        status, _, body = _get(web, _host(web, robots=kind), "/robots.txt")
        assert status == {"none": 404, "error": 503}.get(kind, 200), kind
        bodies[kind] = body.decode()
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(bodies["disallow_token"].splitlines())
    assert not parser.can_fetch(token, "/img/000001.jpg")
    assert parser.can_fetch("someone-else", "/img/000001.jpg")
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(bodies["disallow_path"].splitlines())
    assert not parser.can_fetch(token, "/private/000001.jpg")
    assert parser.can_fetch(token, "/img/000001.jpg")
    assert "Crawl-delay: 0.2" in bodies["crawl_delay"]
    t0 = time.monotonic()
    status, _, body = _get(web, _host(web, robots="slow"), "/robots.txt")
    assert status == 200 and b"Allow: /" in body and time.monotonic() - t0 >= 1.0


def test_tdmrep_and_optout_headers(web):
    host = _host(web, tdmrep=True)
    status, headers, body = _get(web, host, "/.well-known/tdmrep.json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert (
        json.loads(body)
        == json.loads(TDMREP_JSON)
        == [{"location": "/private/*", "tdm-reservation": 1}]
    )
    for field, header, value in (
        ("x_robots_tag", "x-robots-tag", "noai"),
        ("tdm_header", "tdm-reservation", "1"),
        ("content_usage", "content-usage", "train-ai=n"),
    ):
        status, headers, _ = _get(web, _host(web, **{field: True}), "/img/000011.jpg")
        assert status == 200 and headers[header] == value


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_decode(web, encoding):
    host = _host(web, encoding=encoding)
    status, headers, body = _get(web, host, "/img/000012.webp")
    assert status == 200 and headers["content-encoding"] == encoding
    raw = gzip.decompress(body) if encoding == "gzip" else zlib.decompress(body)
    assert raw == image_bytes("/img/000012.webp") != body
    Image.open(io.BytesIO(raw)).load()


def test_redirect_goes_to_a_plain_host_by_name(web):
    source = _host(web, robots="allow", dns="ok")
    status, headers, _ = _get(web, source, "/r/000013.jpg")
    assert status == 302
    target_name, _, rest = headers["location"].removeprefix("http://").partition(":")
    assert rest == f"{web.port}/img/000013.jpg" and target_name != source.name
    target = web.host(target_name)
    assert [a.address for a in _resolver(web).resolve(target_name, "A")] == [target.ip]
    assert _get(web, target, "/img/000013.jpg")[2] == image_bytes("/r/000013.jpg")


def test_rate_limit_answers_429_and_flags_early_requests(web):
    host = min(
        (h for h in web.hosts if h.rate_limit and h.alive == "ok"), key=lambda h: h.retry_after_s
    )
    ua = "simweb-test-rate/1.0"
    time.sleep(2 / host.rate_limit + 0.05)  # a full bucket (burst 2), whatever ran before
    statuses = []
    for _ in range(20):
        status, headers, _ = _get(web, host, "/img/000021.jpg", method="HEAD", ua=ua)
        statuses.append(status)
        if status == 429:
            break
    assert statuses[-1] == 429 and statuses.count(200) >= 2
    assert headers["retry-after"] == str(host.retry_after_s)
    time.sleep(EARLY_GRACE_S + 0.05)  # sooner, it may have been on its way: not "early"
    status, headers, _ = _get(web, host, "/robots.txt", ua=ua)  # any path, inside the window
    assert status == 429 and 1 <= int(headers["retry-after"]) <= host.retry_after_s
    time.sleep(host.retry_after_s + 0.05)
    assert _get(web, host, "/img/000021.jpg", ua=ua)[0] == 200
    records = _records(web, ua, len(statuses) + 2)
    assert [r["status"] for r in records] == [*statuses, 429, 200]
    assert [r["early"] for r in records[-3:]] == [False, True, False]
    assert violations(records)["early"] == 1
    assert max_rate_per_host(records)[host.name] >= 3


def test_dead_hosts(web):
    refused = _host(web, alive="refused")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((refused.ip, web.port), timeout=2).close()
    hole = _host(web, alive="blackhole")
    with socket.create_connection((hole.ip, web.port), timeout=2) as sock:
        sock.sendall(f"GET /img/000001.jpg HTTP/1.1\r\nHost: {hole.name}\r\n\r\n".encode())
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_trickle_sends_a_few_bytes_at_a_time(web):
    host = _plain(web)
    with socket.create_connection((host.ip, web.port), timeout=2) as sock:
        sock.sendall(f"GET /trickle/000031.jpg HTTP/1.1\r\nHost: {host.name}\r\n\r\n".encode())
        data, deadline = b"", time.monotonic() + 1.2
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data += sock.recv(65536)
            except TimeoutError:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(next(x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length"))
                 .split(b":")[1])  # fmt: skip
    assert 0 < len(body) <= 3 * -(-length // 60) < length


def test_log_records_what_was_sent(web):
    ua = "simweb-test-log/1.0"
    private = _host(web, robots="disallow_path")
    reserved = _host(web, tdmrep=True)
    broken = _host(web, robots="error")
    sent = [
        (private, "/private/000041.jpg"),
        (reserved, "/private/000042.jpg"),
        (broken, "/img/000043.jpg"),
        (broken, "/robots.txt"),
    ]
    t0 = time.time()
    statuses = [_get(web, h, p, ua=ua)[0] for h, p in sent]
    records = _records(web, ua, len(sent))
    assert [(r["host"], r["ip"], r["path"], r["status"]) for r in records] == [
        (h.name, h.ip, p, s) for (h, p), s in zip(sent, statuses, strict=True)
    ]
    assert statuses[-1] == 503
    assert all(t0 <= r["t"] <= r["t_end"] and r["concurrent"] == 1 for r in records)
    assert [r["disallowed"] for r in records] == [True, False, False, False]
    assert [r["tdm_reserved"] for r in records] == [False, True, False, False]
    assert [r["robots_unavailable"] for r in records] == [False, False, True, False]
    assert violations(records) == {
        "disallowed": 1, "tdm_reserved": 1, "early": 0, "robots_unavailable": 1, "total": 3,
    }  # fmt: skip
    assert peak_concurrency_per_host(records) == {private.name: 1, reserved.name: 1, broken.name: 1}


def test_urls_truth_and_metadata(web, tmp_path):
    urls = web.urls
    assert len(urls) == SPEC.urls == len({u.url for u in urls})
    assert {u.host for u in urls} == {h.name for h in web.hosts}
    assert set(web.truth.values()) == set(REASONS)  # every reason occurs, even in a small web
    assert all(u.url == f"http://{u.host}:{web.port}{u.path}" for u in urls)
    by_name = {h.name: h for h in web.hosts}
    for u in urls:
        h = by_name[u.host]
        if h.dns == "nxdomain":
            assert u.truth == "dns_nxdomain"
        elif h.robots == "disallow_path" and h.alive == "ok" and h.dns in ("ok", "slow"):
            assert (u.truth == "optout_robots") == u.path.startswith("/private/")
    files = web.write_metadata(tmp_path / "meta", parts=3)
    assert [f.rsplit("/", 1)[1] for f in files] == [f"part-{i:05d}.parquet" for i in range(3)]
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    assert list(df.columns) == [
        "url", "caption", "width", "height", "similarity", "nsfw", "punsafe", "aesthetic",
        "sample_id",
    ]  # fmt: skip
    assert df["url"].tolist() == [u.url for u in urls]
    assert df["caption"].is_unique and df["sample_id"].is_unique
    assert (df["width"] == 256).all() and (df["nsfw"] == "UNLIKELY").all()


def test_profiles_are_deterministic_per_seed():
    a_hosts, a_truth = host_profiles(SPEC), truth(SPEC, port=8080)
    profiles_mod._profiles.cache_clear()
    assert host_profiles(WebSpec(seed=1, hosts=40, urls=400)) == a_hosts
    assert truth(WebSpec(seed=1, hosts=40, urls=400), port=8080) == a_truth
    other = WebSpec(seed=2, hosts=40, urls=400)
    assert host_profiles(other) != a_hosts and truth(other, port=8080) != a_truth
    assert [u.url for u in web_urls(SPEC)] != sorted(u.url for u in web_urls(SPEC))  # shuffled
    assert all(h.ip.rsplit(".", 1)[1] not in ("0", "255") for h in host_profiles(WebSpec()))


def test_rate_window_analysis():
    records = [{"host": "a", "t": t, "concurrent": c} for t, c in ((0.0, 1), (0.5, 2), (0.99, 1))]
    records += [{"host": "a", "t": 1.5, "concurrent": 1}, {"host": "b", "t": 3.0, "concurrent": 1}]
    assert max_rate_per_host(records) == {"a": 3, "b": 1}
    assert max_rate_per_host(records, window_s=0.4) == {"a": 1, "b": 1}
    assert peak_concurrency_per_host(records) == {"a": 2, "b": 1}


def test_nothing_is_left_after_exit(tmp_path):
    spec = WebSpec(seed=3, hosts=8, urls=16, subnet="127.78")
    t0 = time.monotonic()
    with SimWeb(spec, tmp_path) as small:
        started = time.monotonic() - t0
        pid, port, dns_port = small.pid, small.port, small.dns_port
        assert "127.78." in _listeners(port) and "127.0.0.1" in _listeners(dns_port, "u")
        host = small.hosts[0]
        assert _get(small, host, "/img/000001.jpg")[0] == 200
        t1 = time.monotonic()
    stopped = time.monotonic() - t1
    assert started < 30 and stopped < 5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "127.78." not in _listeners(port)
    assert not _listeners(dns_port) and not _listeners(dns_port, "u")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host.ip, port), timeout=2).close()
