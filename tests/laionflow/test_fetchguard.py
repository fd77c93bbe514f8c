"""Safety by default: the SSRF guard, scheme refusal, honest User-Agent, per-domain limit and
pixel limit — through the real download stage (img2dataset's spawned workers) against the
fixture server, and the address rules on their own."""

from __future__ import annotations

import pandas as pd
import pytest

from laionflow.fetchguard import FetchPolicy, check_address
from laionflow.jobs import download
from laionflow.shards import reason_of, states
from laionflow.testing.corpus import CorpusSpec, build_corpus
from laionflow.testing.faults import Fault
from laionflow.testing.server import FixtureServer
from tests.helpers import part_recipe


@pytest.mark.parametrize(
    "ip, blocked",
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("169.254.169.254", True),
        ("10.1.2.3", True),
        ("172.16.0.5", True),
        ("192.168.1.1", True),
        ("100.64.0.1", True),  # carrier-grade NAT
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("fe80::1", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("93.184.215.14", False),
        ("2606:4700::1111", False),
    ],
)
def test_address_rules(ip, blocked):
    policy = FetchPolicy()
    if blocked:
        with pytest.raises(OSError, match="laionflow-guard: blocked address"):
            check_address(policy, "h", ip, 80)
    else:
        check_address(policy, "h", ip, 80)


def test_allowlist_entries_are_exact():
    policy = FetchPolicy(allow=("127.0.0.1:8080", "10.0.0.0/8", "fixture.local"))
    check_address(policy, "x", "127.0.0.1", 8080)
    check_address(policy, "x", "10.200.0.1", 443)
    check_address(policy, "fixture.local", "192.168.0.9", 80)
    for host, ip, port in (
        ("x", "127.0.0.1", 8081),
        ("x", "127.0.0.2", 8080),
        ("y", "192.168.0.9", 80),
    ):
        with pytest.raises(OSError):
            check_address(policy, host, ip, port)


def _download(tmp_path, urls: list[str], **opts) -> tuple[dict, dict]:
    recipe = part_recipe(
        tmp_path / "ds",
        urls,
        **{"download.timeout_s": 3, **{f"download.{k}": v for k, v in opts.items()}},
    )
    summary = download.run(recipe, 0, force=True)
    got = {
        s.url: s.reason or "success"
        for s in states(recipe.dataset_root + "/images/part_00000").values()
    }
    return summary, got


@pytest.fixture
def server(tmp_path, monkeypatch):
    with FixtureServer(tmp_path / "srv") as srv:
        corpus = build_corpus(
            tmp_path / "srv",
            srv.base_url,
            CorpusSpec(rows=24, parts=1, dead_fraction=0, duplicate_fraction=0, max_side=96),
        )
        monkeypatch.setenv("LAIONFLOW_FETCH_ALLOW", srv.allow_entry)
        srv.image_urls = list(pd.read_parquet(corpus.metadata_files[0])["URL"])
        yield srv


def test_every_ssrf_target_is_refused_with_its_reason(tmp_path, server):
    port = server.server_address[1]
    good = server.image_urls[0]
    path = good.replace(server.base_url, "")
    redirect_to_loopback = server.image_urls[1]
    redirect_to_file = server.image_urls[2]
    server.faults[redirect_to_loopback.replace(server.base_url, "")] = Fault(
        "redirect", 302, times=-1, location=f"http://127.0.0.2:{port}/redirected{path}"
    )
    server.faults[redirect_to_file.replace(server.base_url, "")] = Fault(
        "redirect", 302, times=-1, location="file:///etc/passwd"
    )
    targets = {
        good: "success",
        f"http://127.0.0.2:{port}{path}": "blocked_address",  # loopback, not allowlisted
        f"http://localhost:{port + 1 if port < 65535 else 1}{path}": "blocked_address",
        "http://169.254.169.254/latest/meta-data/": "blocked_address",  # cloud metadata
        "http://10.0.0.1/a.jpg": "blocked_address",
        "file:///etc/passwd": "blocked_scheme",
        redirect_to_loopback: "blocked_address",
        redirect_to_file: "blocked_scheme",
    }
    summary, got = _download(tmp_path, list(targets))
    assert got == targets
    assert summary["successes"] == 1
    # nothing was served from the loopback address the redirect pointed at
    assert not any(p.startswith("/redirected") for p in server.hits)


def test_user_agent_is_honest_and_carries_the_opt_out_token(tmp_path, server):
    _download(tmp_path, server.image_urls[:4], user_agent_token="my-crawler-token")
    assert server.user_agents, "no request reached the server"
    for ua in server.user_agents:
        assert ua.startswith("laionflow/") and "my-crawler-token" in ua
        assert "Mozilla" not in ua and "Firefox" not in ua


def test_per_domain_concurrency_limit_holds_across_threads(tmp_path, server):
    for url in server.image_urls:
        server.faults[url.replace(server.base_url, "")] = Fault("slow", delay=0.25, times=-1)
    summary, _ = _download(tmp_path, server.image_urls, per_domain_concurrency=2)
    assert summary["successes"] == len(server.image_urls)
    assert server.max_concurrent <= 2
    server.max_concurrent = 0
    summary, _ = _download(tmp_path, server.image_urls)  # no limit: 8 threads overlap
    assert summary["successes"] == len(server.image_urls)
    assert server.max_concurrent > 2


def test_pixel_limit_refuses_before_decoding(tmp_path, server):
    summary, got = _download(tmp_path, server.image_urls[:6], max_image_pixels=500)
    assert summary["successes"] == 0
    assert set(got.values()) == {"too_large"}
    assert reason_of("image area too large") == "too_large"
