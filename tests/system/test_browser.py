"""What users do most, in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright) against the real api-server on 127.0.0.1 with the laionflow plugin loaded. Log in,
open the laion400m trigger form, change a Param (image size), trigger, wait until the run shows
success, check the run's conf carries the value, then open the run's "Dataset report" tab
(the plugin's page in the UI's iframe) and find the plots and the ledger table. Screenshots
land in the test's output folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from urllib.parse import unquote

import pytest
import requests

from laionflow import fs
from laionflow.testing.airflow_services import AirflowServices
from tests.helpers import small_overrides

CHROMIUM = os.environ.get("LAIONFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def ui(tmp_path_factory, corpus, checkpoint, fixture_server):
    home = tmp_path_factory.mktemp("browser")
    # the site's defaults: where data goes, the fixture's metadata, the tiny local model —
    # so the trigger form, as a user leaves it, runs offline
    site = small_overrides(home / "data", corpus, checkpoint)
    (home / "site.json").write_text(json.dumps(site))
    mp = pytest.MonkeyPatch()
    mp.setenv("LAIONFLOW_SITE_OVERRIDES", str(home / "site.json"))
    try:
        svc = AirflowServices(home / "airflow").start()
    finally:
        mp.undo()
    yield svc, home
    svc.stop()
    assert all(p.poll() is not None for p in svc.procs.values())


@pytest.fixture(scope="module")
def page(ui):
    from playwright.sync_api import sync_playwright

    svc, _ = ui
    with sync_playwright() as p:
        assert os.path.exists(CHROMIUM), "chromium missing: `make test` installs it (scripts/)"
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(30_000)
        pg.goto(f"{svc.url}/")
        pg.locator("input[name=username]").fill(svc.user)
        pg.locator("input[name=password]").fill(svc.password)
        pg.get_by_role("button", name="Sign in").click()
        pg.wait_for_url(f"{svc.url}/")
        yield pg
        browser.close()


def _run_state(svc: AirflowServices, run_id: str) -> str:
    from laionflow.backfill import AirflowApi

    return AirflowApi(svc.url, username=svc.user, password=svc.password).run_state(
        "laion400m", run_id
    )


def test_trigger_form_run_and_report_in_the_ui(ui, page, tmp_path, corpus):
    svc, home = ui
    page.goto(f"{svc.url}/dags/laion400m")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Images", exact=True).click()  # the form's section
    dialog.get_by_label("Image size").fill("40")
    page.screenshot(path=str(tmp_path / "trigger-form.png"))
    dialog.get_by_role("button", name="Trigger").click()
    page.wait_for_url(re.compile(r".*/dags/laion400m/runs/.+"))
    run_id = unquote(page.url.rsplit("/runs/", 1)[1])

    deadline = time.monotonic() + 900
    while _run_state(svc, run_id) not in ("success", "failed"):
        assert time.monotonic() < deadline, "run did not finish"
        time.sleep(5)
    page.reload()
    page.get_by_text("Success", exact=True).first.wait_for()  # the run's state badge
    page.screenshot(path=str(tmp_path / "run-succeeded.png"))
    assert _run_state(svc, run_id) == "success"

    from laionflow.backfill import AirflowApi

    api = AirflowApi(svc.url, username=svc.user, password=svc.password)
    run = requests.get(
        f"{svc.url}/api/v2/dags/laion400m/dagRuns/{run_id}", headers=api._headers(), timeout=30
    ).json()
    assert run["conf"]["image_size"] == 40  # the changed Param reached the run

    page.get_by_text("Dataset report", exact=True).first.click()
    frame = page.frame_locator("iframe").first
    ledger = frame.locator("table#ledger")
    ledger.wait_for()
    assert frame.locator("figure svg").count() == 8
    led = fs.read_json(f"{home}/data/laion400m/summary.json")["ledger"]
    text = ledger.inner_text()
    assert str(led["raw_rows"]) in text and str(led["downloaded"]) in text
    assert led["raw_rows"] == corpus.rows
    page.screenshot(path=str(tmp_path / "dataset-report.png"), full_page=True)
    assert (tmp_path / "dataset-report.png").stat().st_size > 10_000


def test_plugin_nav_page_lists_the_run(ui, page):
    svc, _ = ui
    page.goto(f"{svc.url}/laionflow/")
    page.get_by_text("laionflow recipes and runs").wait_for()
    assert page.locator("a[href^='runs/laion400m/']").count() >= 1
