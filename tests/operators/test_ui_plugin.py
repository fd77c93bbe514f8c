"""The UI plugin through Airflow's own api-server app (``create_app``, plugins loaded from the
``airflow.plugins`` entry point) and FastAPI's TestClient: JWT or session cookie required,
401 without, 404 for a run that does not exist, and the page's numbers are the run's
``summary.json``."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from laionflow import fs


@pytest.fixture(scope="module")
def client(laion400m_run):
    from airflow.api_fastapi.app import create_app

    return TestClient(create_app())


@pytest.fixture(scope="module")
def token(client):
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))


def _paths(run_id: str) -> list[str]:
    base = f"/laionflow/runs/laion400m/{run_id}"
    return ["/laionflow/", base, f"{base}/card", f"{base}/report.json"]


def test_plugin_is_registered_with_its_views(client, token):
    plugins = client.get("/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}).json()
    ours = next(p for p in plugins["plugins"] if p["name"] == "laionflow")
    views = {v["destination"]: v["href"] for v in ours["external_views"]}
    assert views == {"nav": "laionflow/", "dag_run": "laionflow/runs/{DAG_ID}/{RUN_ID}"}


def test_unauthenticated_requests_get_401(client, laion400m_run):
    run, _ = laion400m_run
    for path in _paths(run.run_id):
        assert client.get(path).status_code == 401, path
    forged = {"Authorization": "Bearer not-a-jwt"}
    assert client.get(_paths(run.run_id)[1], headers=forged).status_code in (401, 403)


def test_authenticated_requests_get_the_pages(client, token, laion400m_run):
    run, root = laion400m_run
    headers = {"Authorization": f"Bearer {token}"}
    for path in _paths(run.run_id):
        assert client.get(path, headers=headers).status_code == 200, path
    nav = client.get("/laionflow/", headers=headers).text
    assert run.run_id in nav and "laion400m" in nav
    page = client.get(_paths(run.run_id)[1], headers=headers).text
    assert page.count("<svg") == 8 and 'id="ledger"' in page
    card = client.get(_paths(run.run_id)[2], headers=headers).text
    assert card.startswith("---") and "## Counts at each step" in card
    # the UI's iframe authenticates with the session cookie instead of a header
    cookie_client = TestClient(client.app, cookies={"_token": token})
    assert cookie_client.get(_paths(run.run_id)[1]).status_code == 200


def test_missing_run_gets_404(client, token):
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/laionflow/runs/laion400m/no-such-run", headers=headers).status_code == 404
    resp = client.get("/laionflow/runs/laion400m/no-such-run/card", headers=headers)
    assert resp.status_code == 404


def test_page_numbers_equal_the_runs_summary(client, token, laion400m_run):
    run, root = laion400m_run
    headers = {"Authorization": f"Bearer {token}"}
    page = client.get(_paths(run.run_id)[1], headers=headers).text
    table = page[page.index('<table id="ledger">') : page.index("</table>", page.index("ledger"))]
    shown = {
        label: int(n)
        for label, n in re.findall(r"<tr[^>]*><td>([^<]+)</td><td class=\"n\">(\d+)</td>", table)
    }
    led = fs.read_json(f"{root}/summary.json")["ledger"]
    expected = {"raw rows": led["raw_rows"], "duplicates": led["duplicates"]}
    expected |= {f"filtered: {k}": v for k, v in led["filtered"].items()}
    expected |= {f"failed: {k}": v for k, v in led["failed"].items()}
    expected |= {
        "downloaded": led["downloaded"],
        "not selected": led["not_selected"],
        "accounted": led["accounted"],
        "embedding rows": led["embedding_rows"],
        "index size": led["index_size"],
    }
    assert shown == expected
    numbers = client.get(_paths(run.run_id)[3], headers=headers).json()
    assert numbers["ledger"] == expected
    parts = {p["part"]: p for p in numbers["parts"]}
    for part, entry in parts.items():
        d = fs.read_json(f"{root}/images/part_{part:05d}_summary.json")
        assert (entry["successes"], entry["input_rows"]) == (d["successes"], d["input_rows"])
    assert sum(p["successes"] for p in parts.values()) == led["downloaded"]
    assert numbers["samples"] == led["downloaded"]
