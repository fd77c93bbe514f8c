"""Shared fixtures: real parts only — a fixture HTTP server on 127.0.0.1, one Spark
``local[2]`` session per test session, a real SQLite Airflow home, a real open_clip checkpoint.

Airflow reads its configuration on first import, so the embedded environment is configured
here, at conftest import time, before any test module imports Airflow.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest

from laionflow import embedded
from tests.helpers import small_overrides

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="laionflow-tests-"))
embedded.configure(_SESSION_TMP / "airflow", spark_master="local[2]")
os.environ["LAIONFLOW_SHUFFLE_PARTITIONS"] = "4"
# nothing in the tests may reach the real Hub: its default endpoint is a closed loopback port;
# tests that use the Hub emulation pass the fixture server's URL explicitly
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
# py4j logs at INFO while the interpreter exits ("Closing down clientserver connection"),
# through handlers whose streams pytest's capture has closed by then: a "Logging error"
# traceback after the summary line
logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def session_tmp() -> Path:
    return _SESSION_TMP


@pytest.fixture(scope="session")
def airflow_db(session_tmp: Path) -> Path:
    """A migrated SQLite metadata DB with the ``gpu`` and ``spark`` pools."""
    embedded.migrate(session_tmp / "airflow")
    return session_tmp / "airflow"


@pytest.fixture(scope="session")
def spark():
    from laionflow.spark import spark_session

    session = spark_session("local[2]", app="laionflow-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def fixture_server(session_tmp: Path):
    from laionflow.testing.server import FixtureServer

    with FixtureServer(session_tmp / "fixture") as server:
        # the deployment setting that lets downloads reach this one loopback server
        os.environ["LAIONFLOW_FETCH_ALLOW"] = server.allow_entry
        yield server


@pytest.fixture(scope="session")
def corpus(fixture_server, session_tmp: Path):
    """320-row LAION-400M-like corpus in 2 metadata parts (one parquet, one csv)."""
    from laionflow.testing.corpus import CorpusSpec, build_corpus

    return build_corpus(
        session_tmp / "fixture",
        fixture_server.base_url,
        CorpusSpec(rows=320, parts=2, seed=7, max_side=320),
    )


@pytest.fixture(scope="session")
def checkpoint(session_tmp: Path) -> str:
    from laionflow.clip_model import save_random_checkpoint

    return save_random_checkpoint("laionflow-tiny", session_tmp / "models" / "tiny.pt")


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, corpus, checkpoint, spark, fixture_server):
    """The whole chain run once, stage by stage, in-process: shared by the stage tests."""
    from laionflow.jobs import annotate, download, embed, index, metadata
    from laionflow.jobs.filter import run_spark
    from laionflow.recipes import load_recipe
    from laionflow.reporting import ledger as report

    root = tmp_path_factory.mktemp("pipeline")
    recipe = load_recipe("laion400m", small_overrides(root, corpus, checkpoint))
    out = {"recipe": recipe, "metadata": metadata.run(recipe), "filter": run_spark(spark, recipe)}
    parts = sorted(int(p) for p in out["filter"]["parts"])
    out["download"] = {p: download.run(recipe, p) for p in parts}
    out["annotate"] = {p: annotate.run(recipe, p) for p in parts}
    out["embed"] = {p: embed.run(recipe, p) for p in parts}
    out["index"] = index.run(recipe)
    out["report"] = report.run(recipe)
    return out


@pytest.fixture(scope="session")
def sd21_corpus(fixture_server, session_tmp: Path):
    """LAION2B-en improved-aesthetics column set, sizes around the 512 px threshold."""
    from laionflow.testing.corpus import CorpusSpec, build_corpus

    spec = CorpusSpec(
        rows=240,
        parts=2,
        seed=11,
        flavour="laion2b_aesthetics",
        min_side=300,
        max_side=760,
        formats=("parquet",),
    )
    return build_corpus(session_tmp / "fixture" / "sd21", f"{fixture_server.base_url}/sd21", spec)


@pytest.fixture(scope="session")
def umap_corpus(fixture_server, session_tmp: Path):
    """laion-aesthetics-12m-umap column set (for laion6m's re-derive path)."""
    from laionflow.testing.corpus import CorpusSpec, build_corpus

    spec = CorpusSpec(
        rows=200, parts=2, seed=13, flavour="aesthetics_12m_umap", max_side=300, wide_fraction=0.06
    )
    return build_corpus(session_tmp / "fixture" / "umap", f"{fixture_server.base_url}/umap", spec)


@pytest.fixture(scope="session")
def laion400m_run(airflow_db, corpus, checkpoint, fixture_server, tmp_path_factory):
    """The real laion400m DAG run once through ``dag.test()`` on the embedded default:
    ``(dag_run, dataset_root)``, shared by the end-to-end and the report/plugin tests."""
    from laionflow.demo import demo_conf
    from laionflow.embedded import load_dag

    root = tmp_path_factory.mktemp("e2e")
    conf = demo_conf(root, corpus.metadata_urls, checkpoint, parts=2)
    conf["overrides"]["download.number_sample_per_shard"] = 64
    conf["processes"] = 1
    run = load_dag("laion400m").test(run_conf=conf)
    return run, root / "laion400m"
