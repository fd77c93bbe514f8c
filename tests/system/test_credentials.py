"""Credentials from the environment and from an Airflow connection reach the stages, and no
secret appears in any task log, XCom, run config or output of a full ``laion400m`` run."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.helpers import run_dag, small_run_conf

ENV_SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "envSecretKey-0123456789abcdef",
    "HF_TOKEN": "hf_envTokenSecret_0123456789",
}
CONNECTION = {
    "conn_type": "aws",
    "login": "AKIACONNLAIONFLOW42",
    "password": "connSecretKey-abcdef0123456789",
    "extra": {"region_name": "eu-west-1"},
}
SECRETS = [*ENV_SECRETS.values(), CONNECTION["password"]]


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_no_secret_in_logs_xcoms_or_outputs(
    airflow_db, corpus, checkpoint, fixture_server, tmp_path, monkeypatch, capfd
):
    from airflow import settings
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVLAIONFLOW0001")
    for key, value in ENV_SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(CONNECTION))
    run, states = run_dag("laion400m", small_run_conf(tmp_path, corpus.metadata_urls, checkpoint))
    assert str(run.state) == "success", states
    captured = capfd.readouterr()
    logs = captured.out + captured.err
    # the connection's credentials did reach the stage processes — as a fingerprint only
    assert "credentials: AWS key AKIA…OW42 (from connection aws_default)" in logs
    assert _leaks(logs) == []
    for path in Path(os.environ["AIRFLOW_HOME"], "logs").rglob("*"):
        if path.is_file():
            assert _leaks(path.read_text(errors="replace")) == [], path
    for path in tmp_path.rglob("*"):  # run configs, summaries, shards, embeddings, index
        if path.is_file():
            assert _leaks(path.read_bytes().decode("latin-1")) == [], path
    with settings.Session() as session:
        xcoms = session.scalars(select(XComModel).where(XComModel.run_id == run.run_id)).all()
    assert xcoms
    assert _leaks(json.dumps([x.value for x in xcoms], default=str)) == []
