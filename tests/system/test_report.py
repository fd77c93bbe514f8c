"""The run report of a real laion400m run: ``laionflow report RUN_DIR`` rebuilds it, its
numbers are the run's ``summary.json`` and the stages' own files, the dataset card names the
sources, filters with thresholds, counts at each step and the model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd

from laionflow import fs
from laionflow.layout import Layout


def test_report_command_rebuilds_the_runs_report(laion400m_run):
    run, root = laion400m_run
    run_dir = Layout(str(root)).run_dir(run.run_id)
    report = f"{run_dir}/report"
    assert fs.exists(f"{report}/index.html")  # built by the run's report task
    fs.rm(report, recursive=True)
    out = subprocess.run(
        [sys.executable, "-m", "laionflow", "report", run_dir],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"report: {run_dir}/report/index.html" in out.stdout
    page = open(f"{report}/index.html").read()
    assert page.count("<svg") == 8 and 'id="ledger"' in page
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{report}/plots")) == sorted(
        f"{n}.svg"
        for n in (
            "success_rate",
            "failure_reasons",
            "resolution",
            "aspect_ratio",
            "caption_length",
            "clip_score",
            "dedup",
            "stage_time",
        )
    )


def test_report_numbers_equal_the_run(laion400m_run):
    run, root = laion400m_run
    run_dir = Layout(str(root)).run_dir(run.run_id)
    numbers = json.loads(open(f"{run_dir}/report/report.json").read())
    summary = fs.read_json(f"{run_dir}/summary.json")
    led = summary["ledger"]
    assert summary == fs.read_json(f"{root}/summary.json")  # the run's copy is the dataset's
    assert numbers["balanced"] is True
    assert numbers["ledger"]["raw rows"] == led["raw_rows"]
    assert numbers["ledger"]["downloaded"] == led["downloaded"] == numbers["samples"]
    assert numbers["failures"] == led["failed"]
    assert numbers["dedup"]["exact duplicates (filter)"] == led["duplicates"]
    semdedup = fs.read_json(f"{root}/dedup/_summary.json")
    assert numbers["dedup"]["semantic duplicates (semdedup)"] == semdedup["removed"]
    assert set(numbers["stages_seconds"]) >= {"filter", "download", "embed", "index"}
    # the CLIP median is computed from the stored embeddings, not made up
    img = np.load(f"{root}/embeddings/part_00000/img_emb/img_emb_0.npy").astype(np.float32)
    txt = np.load(f"{root}/embeddings/part_00000/text_emb/text_emb_0.npy").astype(np.float32)
    img2 = np.load(f"{root}/embeddings/part_00001/img_emb/img_emb_0.npy").astype(np.float32)
    txt2 = np.load(f"{root}/embeddings/part_00001/text_emb/text_emb_0.npy").astype(np.float32)
    sims = np.concatenate([(img * txt).sum(1), (img2 * txt2).sum(1)])
    assert abs(numbers["clip_score_median"] - float(np.median(sims))) < 1e-2
    for entry in numbers["parts"]:
        frames = [
            pd.read_parquet(p)
            for p in fs.ls(f"{root}/images/part_{entry['part']:05d}")
            if p.endswith(".parquet")
        ]
        statuses = pd.concat(frames)["status"]
        assert entry["successes"] == int((statuses == "success").sum())
        assert entry["input_rows"] == len(statuses)


def test_dataset_card(laion400m_run):
    run, root = laion400m_run
    card = open(f"{Layout(str(root)).run_dir(run.run_id)}/report/README.md").read()
    summary = fs.read_json(f"{root}/summary.json")
    led = summary["ledger"]
    assert card.startswith("---\npretty_name: laion400m")
    for url in summary["config"]["metadata"]["urls"]:
        assert f"- {url}" in card
    for rule in summary["config"]["filter"]["rules"]:
        removed = led["filtered"].get(rule["name"], 0)
        row = f"| {rule['name']} | {rule['column']} | {rule['op']} {rule['value']} | {removed} |"
        assert row in card
    assert f"| downloaded | {led['downloaded']} |" in card
    assert f"| in the kNN index | {led['index_size']} |" in card
    assert "CLIP: `laionflow-tiny`" in card and "webdataset" in card
