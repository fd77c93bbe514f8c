"""The TLS switch, against a real HTTPS server with a self-signed certificate."""

import subprocess
import sys

import pandas as pd

from laionflow import fs
from laionflow.plan import resolve, write_run_config
from laionflow.testing.corpus import CorpusSpec, build_corpus
from laionflow.testing.server import FixtureServer
from laionflow.testing.tls import self_signed


def _download(root, base_url, ssl_verify):
    recipe = resolve(
        "laion400m",
        {
            "root": str(root),
            "processes": 1,
            "threads": 4,
            "ssl_verify": ssl_verify,
            "image_size": 32,
        },
    )
    config = write_run_config(recipe, f"tls-{ssl_verify}")
    return subprocess.run(
        [sys.executable, "-m", "laionflow", "run", "download", "--config", config, "--part", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ssl_verify_switch(tmp_path, monkeypatch):
    cert = self_signed(tmp_path / "tls")
    with FixtureServer(tmp_path / "srv", tls=cert) as srv:
        corpus = build_corpus(
            tmp_path / "srv",
            srv.base_url,
            CorpusSpec(rows=20, parts=1, dead_fraction=0, duplicate_fraction=0),
        )
        assert srv.base_url.startswith("https://127.0.0.1")
        monkeypatch.setenv("LAIONFLOW_FETCH_ALLOW", srv.allow_entry)
        rows = pd.read_parquet(corpus.metadata_files[0]).rename(
            columns={"URL": "url", "TEXT": "caption"}
        )[["url", "caption"]]
        for verify in (True, False):
            root = tmp_path / f"verify-{verify}"
            (root / "laion400m" / "metadata" / "filtered").mkdir(parents=True)
            rows.to_parquet(root / "laion400m" / "metadata" / "filtered" / "part-00000.parquet")
            out = _download(root, srv.base_url, verify)
            assert out.returncode == 0, out.stderr[-2000:]
            summary = fs.read_json(f"{root}/laion400m/images/part_00000_summary.json")
            if verify:
                assert summary["successes"] == 0 and summary["failed_total"] == len(rows)
                assert "ssl_verify is OFF" not in out.stdout + out.stderr
            else:
                assert summary["successes"] == len(rows)
                assert "ssl_verify is OFF" in out.stdout + out.stderr
