"""The pieces of a polite fetch on their own: the shared resolver against a real DNS server,
host budgets across processes, opt-out parsing, the reason vocabulary, and a signal switched
off in the recipe (downloaded, but never silently)."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from laionflow.testing.simweb import SimWeb, WebSpec
from laionflow.web import optout, reasons
from laionflow.web.budget import Budget, HostBudgets
from laionflow.web.resolver import DnsError, Resolver


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    with SimWeb(WebSpec(seed=1, hosts=40, urls=200), tmp_path_factory.mktemp("web")) as w:
        yield w


def test_resolver_shares_one_lookup_per_name_and_splits_failures(web):
    res = Resolver(web.dns)
    plain = next(h for h in web.hosts if h.dns == "slow")  # answers after 0.2-0.6 s
    got = []
    threads = [
        threading.Thread(target=lambda: got.append(res.resolve(plain.name + ".", 3.0)))
        for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [[plain.ip]] * 16
    assert res.queries == 1  # one query for 16 threads: single flight, then the cache
    for kind, reason in (("nxdomain", "dns_nxdomain"), ("servfail", "dns_servfail")):
        host = next(h for h in web.hosts if h.dns == kind)
        for _ in range(2):
            with pytest.raises(DnsError) as err:
                res.resolve(host.name, 1.0)
            assert err.value.kind == reason and reasons.classify(str(err.value)) == reason
    assert res.queries == 3  # failures are cached too
    dropped = next(h for h in web.hosts if h.dns == "drop")
    with pytest.raises(DnsError, match="dns_timeout"):
        res.resolve(dropped.name, 0.5)
    assert not reasons.is_retryable("dns_nxdomain") and reasons.is_retryable("dns_servfail")


def _take_turns(state_dir: str, n: int, out) -> None:  # noqa: ANN001 - a Queue
    budgets = HostBudgets(state_dir, Budget(rate=10.0, concurrency=1))
    for _ in range(n):
        with budgets.turn("h.example"):
            out.put(time.time())


def test_a_host_budget_holds_across_processes_and_honours_retry_after(tmp_path):
    HostBudgets(str(tmp_path), Budget()).retry_after("h.example", 1.0)
    started = time.time()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_take_turns, args=(str(tmp_path), 5, out)) for _ in range(2)]
    for p in procs:
        p.start()
    times = sorted(out.get(timeout=60) for _ in range(10))
    for p in procs:
        p.join()
    assert times[0] >= started + 1.0  # nothing before the Retry-After elapsed
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.09  # the halved rate (8 -> 4/s) or the configured 10/s, never more


def test_the_breaker_opens_after_failures_and_a_success_closes_it(tmp_path):
    budgets = HostBudgets(str(tmp_path), Budget(breaker_failures=2, backoff_s=0.01))
    budgets.failure("h")
    budgets.reserve("h")
    budgets.failure("h")
    with pytest.raises(OSError, match="host_unavailable"):
        budgets.reserve("h")
    assert reasons.is_retryable("host_unavailable")
    budgets.success("h")
    budgets.reserve("h")


def test_header_signals_and_tdmrep_rules():
    from email.message import Message

    opt = optout.OptOut("/tmp/lf-optout-unit", "laionflow", optout.SIGNALS, ("noai",))
    for header, value, signal in (
        ("X-Robots-Tag", "noai", "optout_x_robots_tag"),
        ("X-Robots-Tag", "laionflow: noai", "optout_x_robots_tag"),
        ("tdm-reservation", "1", "optout_tdmrep"),
        ("Content-Usage", "search=y, train-ai=n", "optout_content_usage"),
    ):
        msg = Message()
        msg[header] = value
        with pytest.raises(OSError, match=signal):
            opt.after_headers(msg, "h")
    fine = Message()
    fine["X-Robots-Tag"] = "otherbot: noai"
    fine["Content-Usage"] = "train-ai=y"
    opt.after_headers(fine, "h")
    rules = optout.HostRules((404, ""), (200, '[{"location": "/private/*", "tdm-reservation": 1}]'))
    assert rules.tdm_reserved("/private/a.jpg") and not rules.tdm_reserved("/img/a.jpg")
    assert optout.HostRules((503, ""), (404, "")).robots_refusal("http://h/a", "x") == (
        "robots_unavailable"
    )


def test_the_vocabulary_is_closed_and_documented():
    for msg in ("HTTP Error 404: Not Found", "<urlopen error timed out>", None, "garbage"):
        assert reasons.is_known(reasons.classify(msg))
    assert "| `deadline` | yes |" in reasons.table_markdown()


def test_the_readme_lists_the_vocabulary_as_the_code_has_it():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert reasons.table_markdown() in readme
