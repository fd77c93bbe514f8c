"""laion6m through dag.test(): the prepackaged path and the re-derive path."""

import pandas as pd

from laionflow import fs
from laionflow.testing.packs import build_repo
from tests.helpers import run_dag, small_run_conf


def _run(conf):
    return run_dag("laion6m", conf)


def test_prepackaged_path_fetches_extracts_and_indexes(airflow_db, fixture_server, tmp_path):
    repo = build_repo(fixture_server.root, repo="t/laion6m-dag", images=24, packs=3)
    run, states = _run(
        {
            "root": str(tmp_path),
            "source": "prepackaged",
            "extract_workers": 2,
            "overrides": {
                "prepackaged.repo": "t/laion6m-dag",
                "prepackaged.endpoint": fixture_server.base_url,
            },
        }
    )
    assert str(run.state) == "success", states
    assert all(states[(t, -1)] == "success" for t in ("pack_fetch", "pack_extract", "pack_index"))
    assert all(
        states[k] == "skipped"
        for k in states
        if k[0] in ("metadata_available", "metadata", "filter", "download", "report")
    )
    summary = fs.read_json(f"{tmp_path}/laion6m/packs/_summary.json")
    assert summary["balanced"] and summary["ok"] == 24
    assert {m["member"] for m in summary["rejected_members"]} == set(repo["bad_members"])
    index = pd.read_parquet(tmp_path / "laion6m" / "packs" / "index.parquet")
    assert index["image_path"].map(lambda p: p.startswith(str(tmp_path))).all()


def test_rederive_path_filters_aspect_ratio_and_runs_the_pipeline(
    airflow_db, umap_corpus, checkpoint, tmp_path
):
    conf = small_run_conf(tmp_path, umap_corpus.metadata_urls, checkpoint, source="rederive")
    run, states = _run(conf)
    assert str(run.state) == "success", states
    assert states[("pack_fetch", -1)] == "skipped"
    root = tmp_path / "laion6m"
    led = fs.read_json(f"{root}/summary.json")["ledger"]
    assert led["balanced"] and led["filtered"]["max_aspect_ratio"] > 0
    assert led["embedding_rows"] == led["downloaded"] == led["index_size"]
    kept = pd.concat(
        pd.read_parquet(f"{root}/metadata/filtered/part-{p:05d}.parquet") for p in (0, 1)
    )
    ratio = kept[["width", "height"]].max(axis=1) / kept[["width", "height"]].min(axis=1)
    assert (ratio <= 3).all()
