"""Acceptance of the download stage on the simulated web (200 hosts, 5,000 URLs, seeded): after
the download and one repair pass every servable, allowed image is present exactly once, every
other URL is counted with its reason, and the web's own request log shows no request to a
robots-disallowed path or a TDM-reserved resource, no host over its budget and no request
before a ``Retry-After`` elapsed."""

from __future__ import annotations

import math
import tarfile

import pytest

from laionflow import fs, shards
from laionflow.jobs import download, patch
from laionflow.layout import Layout
from laionflow.recipes import load_recipe
from laionflow.testing.simweb import SimWeb, WebSpec
from laionflow.testing.simweb.analysis import (
    max_rate_per_host,
    peak_concurrency_per_host,
    violations,
)
from laionflow.web.reasons import is_known

PARTS = 2
RATE = 5.0  # our per-host budget in the test (requests per second)
CONCURRENCY = 2
#: a dead host's URLs end with the failure itself, or skipped by its open circuit
DEAD = {
    "refused": {"connection_refused", "host_unavailable"},
    "blackhole": {"timeout", "deadline", "host_unavailable"},
}


@pytest.fixture(scope="module")
def web_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    spec = WebSpec(seed=7, hosts=200, urls=5000)
    with SimWeb(spec, tmp / "web") as web, pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAIONFLOW_FETCH_ALLOW", web.allow_entry)
        mp.setenv("LAIONFLOW_DNS", web.dns)
        mp.setenv("LAIONFLOW_WEB_STATE", str(tmp / "state"))
        web.write_metadata(tmp / "ds" / "laion400m" / "metadata" / "filtered", parts=PARTS)
        recipe = load_recipe(
            "laion400m",
            {
                "root": str(tmp / "ds"),
                "download.processes": 2,
                "download.threads": 32,
                "download.image_size": 32,
                "download.number_sample_per_shard": 500,
                "download.timeout_s": 2,
                "download.deadline_s": 4,
                "download.per_domain_concurrency": CONCURRENCY,
                "download.politeness.rate_per_host": RATE,
                "download.politeness.breaker_failures": 3,
                "repair.backoff_s": 0,
            },
        )
        first = [download.run(recipe, part) for part in range(PARTS)]
        repaired = [patch.run(recipe, part) for part in range(PARTS)]
        yield web, recipe, first, repaired, web.requests()


def _final_states(recipe) -> dict[str, shards.UrlState]:
    layout = Layout(recipe.dataset_root)
    out = {}
    for part in range(PARTS):
        for state in shards.states(layout.images_part(part)).values():
            assert state.url not in out, f"{state.url} in two parts"
            out[state.url] = state
    return out


def test_every_url_ends_with_its_truth(web_run):
    web, recipe, *_ = web_run
    got = _final_states(recipe)
    assert set(got) == set(web.truth)
    wrong = {}
    for url, want in web.truth.items():
        state = got[url]
        reason = "success" if state.success else state.reason
        allowed = {want} | DEAD.get(web.host(_host(url)).alive, set())
        if reason not in allowed:
            wrong[url] = (want, reason, state.row.get("error_message"))
        assert reason == "success" or is_known(reason), reason
    assert not wrong, f"{len(wrong)} URLs with another outcome, e.g. {list(wrong.items())[:5]}"


def test_every_servable_image_is_in_a_tar_exactly_once(web_run):
    web, recipe, *_ = web_run
    layout = Layout(recipe.dataset_root)
    keys = []
    for part in range(PARTS):
        folder = layout.images_part(part)
        for path in sorted(fs.ls(folder)):
            if path.endswith(".tar"):
                with tarfile.open(path) as tar:
                    keys += [(part, m.name) for m in tar if m.name.endswith(".jpg")]
    assert len(keys) == len(set(keys))
    servable = sum(1 for t in web.truth.values() if t == "success")
    assert len(keys) == servable


def test_the_web_saw_a_polite_client(web_run):
    web, *_, records = web_run
    seen = violations(records)
    assert seen["disallowed"] == 0 and seen["tdm_reserved"] == 0
    assert seen["robots_unavailable"] == 0  # RFC 9309: a 5xx robots.txt disallows everything
    assert seen["early"] == 0  # nothing before a Retry-After elapsed
    assert max(peak_concurrency_per_host(records).values()) <= CONCURRENCY
    window = 2.0
    busiest = max(max_rate_per_host(records, window_s=window).values())
    assert busiest <= math.ceil(RATE * window) + 1
    robots = [r for r in records if r["path"] == "/robots.txt"]
    assert len(robots) == len({r["host"] for r in robots})  # fetched once per host, every part
    assert all("laionflow" in r["ua"] and "Mozilla" not in r["ua"] for r in records)


def test_the_ledger_balances_and_opt_outs_are_tabled(web_run):
    web, recipe, first, repaired, _ = web_run
    layout = Layout(recipe.dataset_root)
    rows = sum(s["input_rows"] for s in first)
    assert rows == len(web.truth)
    assert sum(s["successes"] + s["failed_total"] for s in first) == rows
    final = [fs.read_json(layout.download_summary(p)) for p in range(PARTS)]
    assert sum(s["successes"] + s["failed_total"] for s in final) == rows
    assert sum(s["successes"] for s in final) >= sum(s["successes"] for s in first)
    tabled = {}
    for part in range(PARTS):
        for entry in fs.read_json(layout.optout_table(part)):
            tabled.setdefault((entry["host"], entry["signal"]), 0)
            tabled[(entry["host"], entry["signal"])] += entry["urls"]
            assert entry["first_seen"].endswith("Z")
    want = {}
    for url, reason in web.truth.items():
        if reason.startswith("optout_") or reason == "robots_unavailable":
            key = (_host(url), reason)
            want[key] = want.get(key, 0) + 1
    assert tabled == want


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname
