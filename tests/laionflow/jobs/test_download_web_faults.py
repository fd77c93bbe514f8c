"""The download faults a new user met on a fault server, each ending as it must: compressed
bodies decoded (not ``decode_error``), a trickle stopped by the fetch deadline (not kept after
minutes), a zero-byte body and a redirect loop named from the fixed vocabulary, credentials in
a URL refused as ``invalid_url`` and a host with a trailing dot fetched like the host itself."""

from __future__ import annotations

import contextlib

from laionflow.shards import reason_of, states
from laionflow.testing.corpus import CorpusSpec, build_corpus
from laionflow.testing.faults import Fault
from laionflow.testing.server import FixtureServer
from laionflow.web.reasons import is_known
from tests.helpers import part_recipe

FAULTS = {
    "gzip": (Fault("encoding", 200, times=-1, headers={"Content-Encoding": "gzip"}), "success"),
    "deflate": (
        Fault("encoding", 200, times=-1, headers={"Content-Encoding": "deflate"}),
        "success",
    ),
    "trickle": (Fault("trickle", delay=12.0, times=-1), "deadline"),
    "empty": (Fault("empty", times=-1), "empty_body"),
    "loop": (Fault("redirect", 302, times=-1, location="{path}"), "redirect_loop"),
}


@contextlib.contextmanager
def _fixture(tmp_path, monkeypatch, rows: int):
    """The fixture server with ``rows`` images, allowlisted; yields it and the image URLs."""
    import pandas as pd

    with FixtureServer(tmp_path / "srv") as srv:
        monkeypatch.setenv("LAIONFLOW_FETCH_ALLOW", srv.allow_entry)
        monkeypatch.setenv("LAIONFLOW_WEB_STATE", str(tmp_path / "state"))
        corpus = build_corpus(
            tmp_path / "srv",
            srv.base_url,
            CorpusSpec(rows=rows, parts=1, dead_fraction=0, duplicate_fraction=0, max_side=120),
        )
        yield srv, list(pd.read_parquet(corpus.metadata_files[0])["URL"])


def test_each_fault_ends_with_its_reason(tmp_path, monkeypatch):
    with _fixture(tmp_path, monkeypatch, 12) as (srv, urls):
        want = {}
        for (name, (fault, reason)), url in zip(FAULTS.items(), urls, strict=False):
            srv.faults[url.replace(srv.base_url, "")] = fault
            want[url] = (name, reason)
        port = srv.server_address[1]
        plain = urls[len(FAULTS)]
        path = plain.replace(srv.base_url, "")
        want[f"http://user@127.0.0.1:{port}{path}"] = ("userinfo", "invalid_url")
        want[f"http://localhost.:{port}{path}"] = ("trailing dot", "success")
        recipe = part_recipe(
            tmp_path / "ds",
            list(want),
            **{"download.timeout_s": 2, "download.deadline_s": 3},
        )
        from laionflow.jobs import download

        summary = download.run(recipe, 0)
    got = {s.url: s for s in states(f"{tmp_path}/ds/laion400m/images/part_00000").values()}
    outcome = {
        u: (want[u][0], "success" if s.success else reason_of(s.row["error_message"]))
        for u, s in got.items()
    }
    assert outcome == want
    assert all(is_known(r) for _, r in outcome.values() if r != "success")
    assert summary["successes"] + summary["failed_total"] == len(want)


def test_a_zero_byte_reason_does_not_depend_on_the_decoder_version():
    opencv = (
        "OpenCV(4.11.0) /io/opencv/modules/imgcodecs/src/loadsave.cpp:9: error: (-215:Assertion"
        " failed) !buf.empty() in function 'imdecode_'"
    )
    assert reason_of(opencv) == "decode_error"
    assert reason_of(opencv.replace("4.11.0", "4.12.0")) == "decode_error"
    loop = "HTTP Error 302: The HTTP server returned a redirect error that would lead to an "
    assert reason_of(loop + "infinite loop.") == "redirect_loop"
    assert reason_of("something nobody has seen") == "other"


def test_robots_txt_is_honoured_and_switching_it_off_is_never_silent(tmp_path, monkeypatch, caplog):
    from laionflow import fs
    from laionflow.jobs import download
    from laionflow.layout import Layout

    with _fixture(tmp_path, monkeypatch, 8) as (srv, urls):
        (tmp_path / "srv" / "robots.txt").write_text(
            "User-agent: laionflow\nDisallow: /images/\n\nUser-agent: *\nAllow: /\n"
        )
        urls = urls[:4]
        polite = part_recipe(tmp_path / "polite", urls)
        summary = download.run(polite, 0)
        assert summary["successes"] == 0 and summary["failed"] == {"optout_robots": 4}
        table = fs.read_json(Layout(polite.dataset_root).optout_table(0))
        assert [(e["host"], e["signal"], e["urls"]) for e in table] == [
            ("127.0.0.1", "optout_robots", 4)
        ]
        assert not any(p.startswith("/images/") for p in srv.hits)  # never fetched
        off = part_recipe(tmp_path / "off", urls, **{"download.optout.robots": False})
        with caplog.at_level("WARNING"):
            summary = download.run(off, 0)
    assert summary["successes"] == 4 and summary["optout_signals_off"] == ["robots"]
    assert "opt-out signal 'robots' is OFF" in caplog.text
