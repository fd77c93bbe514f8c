import json

import pytest

from laionflow import fs
from laionflow.reporting import ledger as report


def test_summary_proves_the_ledger(pipeline, corpus):
    summary = json.load(open(f"{pipeline['recipe'].dataset_root}/summary.json"))
    led = summary["ledger"]
    assert led["raw_rows"] == corpus.rows
    assert led["balanced"] and led["not_selected"] == 0
    assert (
        led["filtered_total"] + led["duplicates"] + led["downloaded"] + led["failed_total"]
        == led["raw_rows"]
    )
    assert led["downloaded"] == sum(d["successes"] for d in pipeline["download"].values())
    assert led["embedding_rows"] == led["downloaded"] == led["index_size"]
    assert led["failed"] == {"http_404": led["failed_total"]}


def test_an_unbalanced_ledger_fails_the_report(pipeline, tmp_path):
    import shutil

    recipe = pipeline["recipe"]
    copy = recipe.model_copy(update={"root": str(tmp_path)})
    shutil.copytree(recipe.dataset_root, copy.dataset_root)
    stats = fs.read_json(f"{copy.dataset_root}/metadata/filtered/_filter_stats.json")
    stats["raw_rows"] += 1  # a row that went nowhere
    fs.write_json(f"{copy.dataset_root}/metadata/filtered/_filter_stats.json", stats)
    with pytest.raises(RuntimeError, match="ledger does not balance"):
        report.run(copy)
