"""Airflow 3 UI plugin: the laionflow reports inside the Airflow UI.

A FastAPI app mounted by the api-server under ``/laionflow`` and two external views: a
navigation entry (recipes and their runs) and a tab on every DAG run ("Dataset report") that
shows the report the run's ``report`` task built. Every endpoint requires the same
authentication as the Airflow API — a JWT as ``Authorization: Bearer`` or the UI's session
cookie — through Airflow's own security dependencies; run pages also require read access to
the DAG's runs. Unauthenticated requests get 401; an unknown run or a run without a report
gets 404. Registered by the ``airflow.plugins`` entry point in ``pyproject.toml``.
"""

from __future__ import annotations

import html
from typing import Any

from airflow.api_fastapi.core_api.security import requires_access_dag, requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, PlainTextResponse

PREFIX = "/laionflow"
app = FastAPI(title="laionflow reports", docs_url=None, redoc_url=None, openapi_url=None)


def _plan(dag_id: str, run_id: str) -> dict[str, Any]:
    """The run's ``plan`` result (its run folder and config), or 404."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            raise HTTPException(404, f"no run {run_id!r} of {dag_id!r}")
        query = XComModel.get_many(
            run_id=run_id, key="return_value", task_ids="plan", dag_ids=dag_id
        )
        xcom = session.scalars(query).first()
        planned = XComModel.deserialize_value(xcom) if xcom is not None else None
    if not isinstance(planned, dict) or "run_dir" not in planned:
        raise HTTPException(404, f"{dag_id} run {run_id!r} was not planned by laionflow")
    return planned


def _read(path: str) -> str:
    from laionflow import fs
    from operators.credentials import aws_environment

    with aws_environment():  # an S3 dataset root: the connection's keys
        if not fs.exists(path):
            raise HTTPException(404, "no report yet: the run's report task has not finished")
        with fs.open(path, "r") as fh:
            return fh.read()


@app.get("/", response_class=HTMLResponse, dependencies=[Depends(requires_authenticated())])
def runs_index() -> str:
    """Navigation page: every laionflow DAG and its runs, newest first, linked to reports."""
    from airflow.models.dag import DagModel, DagTag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dag_ids = session.scalars(
            select(DagTag.dag_id).where(DagTag.name == "laionflow").distinct()
        ).all()
        dag_ids = sorted(d for d in dag_ids if session.get(DagModel, d) is not None)
        runs = session.execute(
            select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.start_date)
            .where(DagRun.dag_id.in_(dag_ids))
            .order_by(DagRun.start_date.desc())
        ).all()
    sections = []
    for dag_id in dag_ids:
        rows = "".join(
            f'<tr><td><a href="runs/{html.escape(d)}/{html.escape(r)}">{html.escape(r)}</a></td>'
            f"<td>{html.escape(str(s))}</td><td>{html.escape(str(t or ''))}</td></tr>"
            for d, r, s, t in runs
            if d == dag_id
        )
        sections.append(
            f"<h2>{html.escape(dag_id)}</h2><table><tr><th>run</th><th>state</th>"
            f"<th>started</th></tr>{rows or '<tr><td colspan=3>no runs</td></tr>'}</table>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>laionflow</title><style>"
        "body{font-family:system-ui,sans-serif;margin:1.5rem}td,th{padding:.2rem .6rem}"
        "</style></head><body><h1>laionflow recipes and runs</h1>"
        + "".join(sections)
        + "</body></html>"
    )


RUN_ACCESS = [Depends(requires_access_dag("GET"))]


@app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=RUN_ACCESS)
def run_report(dag_id: str, run_id: str) -> str:
    return _read(f"{_plan(dag_id, run_id)['run_dir']}/report/index.html")


@app.get("/runs/{dag_id}/{run_id}/card", response_class=PlainTextResponse, dependencies=RUN_ACCESS)
def run_card(dag_id: str, run_id: str) -> str:
    return _read(f"{_plan(dag_id, run_id)['run_dir']}/report/README.md")


@app.get("/runs/{dag_id}/{run_id}/report.json", dependencies=RUN_ACCESS)
def run_numbers(dag_id: str, run_id: str) -> Any:
    import json

    return json.loads(_read(f"{_plan(dag_id, run_id)['run_dir']}/report/report.json"))


class LaionflowPlugin(AirflowPlugin):
    name = "laionflow"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "laionflow reports"}]
    external_views = [
        {
            "name": "laionflow reports",
            "href": "laionflow/",
            "destination": "nav",
            "category": "browse",
            "url_route": "laionflow",
        },
        {
            "name": "Dataset report",
            "href": "laionflow/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "laionflow-run",
        },
    ]
