"""What a person does first, in a real browser: ``laionflow up`` (what ``make up`` runs) started
as a process, headless Chromium (Debian's ``chromium``, driven by Playwright) against its
api-server on 127.0.0.1. Log in, open laion400m's trigger form and find the recipe's values in
it (image size, resize mode, output format, TLS switch: recipe, then site defaults), change
two Params (image size, part ids), trigger, watch the run succeed in the grid, open the run's
"Dataset report" tab (the plugin's page in the UI's iframe); run the ``laionflow backfill``
line that ``up`` printed for parts 1-2 and find exactly those two runs, by their native
partition keys, in the UI's runs list, and a second backfill of them find nothing to do. A
second ``up`` on the same root refuses; Ctrl-C (SIGINT) leaves no process and no listening port.

The same services carry the REST checks: a token is required, invalid trigger input is
refused with the field's name, and every listener is on 127.0.0.1. A transient fault is
planted (part 0's ``annotate`` fails on its first try), so the form's run also shows the
retry policy at work through the REST API: that task failed once, was retried, and succeeded.
The services start once for all of it.

Screenshots land in the test's tmp folder; with ``LAIONFLOW_README_SHOTS=docs/img`` they are
also written there, small, as the README's images."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import psutil
import pytest

from laionflow import fs
from laionflow.backfill import AirflowApi
from laionflow.failpoints import spend

CHROMIUM = os.environ.get("LAIONFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAIONFLOW = [sys.executable, "-m", "laionflow"]
BANNER = re.compile(r"Airflow UI: (\S+)\s+user: (\S+)\s+password: (\S+)")


def _wait_banner(proc: subprocess.Popen, log: Path, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        found = BANNER.search(text)
        if found and "backfill:" in text:
            line = next(x for x in text.splitlines() if x.startswith("backfill:"))
            url, user, password = found.groups()
            return {"url": url, "user": user, "password": password, "backfill": line[9:].strip()}
        assert proc.poll() is None, f"laionflow up exited {proc.returncode}:\n{text}"
        time.sleep(1)
    raise TimeoutError(f"no banner from laionflow up:\n{log.read_text()}")


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    """``laionflow up`` on a fresh root, its own session: Ctrl-C is a signal to its PID."""
    home = tmp_path_factory.mktemp("up")
    log = home / "up.log"
    cmd = [*LAIONFLOW, "up", "--root", str(home / "root"), "--rows", "320", "--port", "0"]
    failpoints = home / "failpoints"  # part 0's annotate fails once: the retry policy's test
    failpoints.mkdir()
    for part in (1, 2):  # the backfill's parts go through on their first try
        images = home.resolve() / "root" / "data" / "laion400m" / "images" / f"part_{part:05d}"
        spend(str(failpoints), "annotate.start", str(images))
    env = {
        **os.environ,
        "LAIONFLOW_FAILPOINTS": "annotate.start.once",
        "LAIONFLOW_FAILPOINTS_DIR": str(failpoints),
    }
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    info = {**_wait_banner(proc, log), "proc": proc, "home": home, "log": log}
    info["api"] = AirflowApi(info["url"], username=info["user"], password=info["password"])
    yield info
    if proc.poll() is None:  # a test failed before the Ctrl-C test
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


@pytest.fixture(scope="module")
def page(up):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        assert os.path.exists(CHROMIUM), "chromium missing: `make test` installs it (scripts/)"
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1280, "height": 860})
        pg.set_default_timeout(30_000)
        pg.goto(f"{up['url']}/")
        pg.locator("input[name=username]").fill(up["user"])
        pg.locator("input[name=password]").fill(up["password"])
        pg.get_by_role("button", name="Sign in").click()
        pg.wait_for_url(f"{up['url']}/")
        yield pg
        browser.close()


def _shot(page, folder: Path, name: str, **kwargs) -> Path:
    """A screenshot in the test's folder; a small copy (64 colours) for the README when
    ``$LAIONFLOW_README_SHOTS`` names a folder."""
    path = folder / name
    page.screenshot(path=str(path), **kwargs)
    if os.environ.get("LAIONFLOW_README_SHOTS"):
        readme_copy(path, Path(os.environ["LAIONFLOW_README_SHOTS"]))
    return path


def readme_copy(shot: Path, folder: Path) -> Path:
    """A screenshot as the README shows it: at most 1000 px wide, 64 colours (~50 KB)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    img = Image.open(shot).convert("RGB")
    img.thumbnail((1000, 1000))
    img.quantize(colors=64).save(folder / shot.name, optimize=True)
    return folder / shot.name


def test_second_up_on_the_same_root_refuses(up):
    again = subprocess.run(
        [*LAIONFLOW, "up", "--root", str(up["home"] / "root"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 1
    assert "already running" in again.stderr and str(up["proc"].pid) in again.stderr
    assert up["proc"].poll() is None  # the first one is untouched
    record = json.loads((up["home"] / "root" / "up.json").read_text())
    assert record["pid"] == up["proc"].pid and record["url"] == up["url"]


def test_form_shows_the_recipe_then_runs_and_reports(up, page, tmp_path):
    page.goto(f"{up['url']}/dags/laion400m")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Images", exact=True).click()  # the form's section
    # the effective values: laion400m's recipe (256 px, border, webdataset, TLS verified)
    assert dialog.get_by_label("Image size").input_value() == "256"
    assert dialog.locator("input[name=element_resize_mode]").input_value() == "border"
    assert dialog.locator("input[name=element_output_format]").input_value() == "webdataset"
    assert dialog.locator("input[name=element_ssl_verify]").is_checked()
    # ... then the site defaults `up` wrote (one download process, the tiny local model)
    assert dialog.locator("input[name=element_processes]").input_value() == "1"
    dialog.get_by_label("Image size").fill("40")
    _shot(page, tmp_path, "trigger-form.png")
    dialog.get_by_text("Where", exact=True).click()
    dialog.locator(".monaco-editor .view-lines").first.click()  # "Part ids": part 0 only
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text("[0]")
    dialog.get_by_role("button", name="Trigger").click()
    page.wait_for_url(re.compile(r".*/dags/laion400m/runs/.+"))
    run_id = unquote(page.url.rsplit("/runs/", 1)[1])

    assert up["api"].wait("laion400m", run_id, timeout=900, poll=3) == "success"
    page.reload()
    page.get_by_text("Success", exact=True).first.wait_for()  # the run's state badge
    _shot(page, tmp_path, "grid.png")
    run = next(r for r in up["api"].runs("laion400m") if r["dag_run_id"] == run_id)
    assert run["conf"]["image_size"] == 40 and run["conf"]["part_ids"] == [0]
    _assert_annotate_retried_once(up, run_id)

    page.get_by_text("Dataset report", exact=True).first.click()
    frame = page.frame_locator("iframe").first
    ledger = frame.locator("table#ledger")
    ledger.wait_for()
    assert frame.locator("figure svg").count() == 8
    data = up["home"] / "root" / "data" / "laion400m"
    led = fs.read_json(f"{data}/summary.json")["ledger"]
    text = ledger.inner_text()
    assert str(led["raw_rows"]) in text and str(led["downloaded"]) in text
    manifest = json.loads((up["home"] / "root/fixture/laion400m/manifest.json").read_text())
    assert led["raw_rows"] == manifest["rows"]  # the recipe's hf:// URLs reached the fixture
    assert sorted(p.name for p in (data / "images").glob("part_*_summary.json")) == [
        "part_00000_summary.json"  # the form's part ids chose the part
    ]
    assert led["balanced"] and led["embedding_rows"] == led["downloaded"] == led["index_size"] > 0
    assert _largest_side_in_shard(data / "images" / "part_00000" / "00000.tar") == 40
    _shot(page, tmp_path, "dataset-report.png")


def _assert_annotate_retried_once(up, run_id: str) -> None:
    """The planted transient fault, seen through the REST API: each mapped ``annotate`` failed
    on its first try and succeeded on the retry its policy allows; ``download`` ran once."""
    import requests

    api = up["api"]
    base = f"{up['url']}/api/v2/dags/laion400m/dagRuns/{run_id}"
    tis = requests.get(
        f"{base}/taskInstances", params={"limit": 100}, headers=api._headers(), timeout=30
    ).json()["task_instances"]
    annotate = [t for t in tis if t["task_id"] == "annotate"]
    assert annotate, tis
    for ti in annotate:
        assert ti["state"] == "success" and ti["try_number"] == 2, ti
        tries = requests.get(
            f"{base}/taskInstances/annotate/{ti['map_index']}/tries",
            headers=api._headers(),
            timeout=30,
        ).json()["task_instances"]
        states = [t["state"] for t in sorted(tries, key=lambda t: t["try_number"])]
        assert states == ["failed", "success"], tries
    assert all(t["try_number"] == 1 for t in tis if t["task_id"] == "download")


def _largest_side_in_shard(tar_path: Path) -> int:
    import tarfile

    from PIL import Image

    with tarfile.open(tar_path) as tar:
        jpg = next(m for m in tar.getmembers() if m.name.endswith(".jpg"))
        return max(Image.open(tar.extractfile(jpg)).size)


def test_backfill_line_makes_exactly_two_runs_by_part(up, page, tmp_path):
    env_words = shlex.split(up["backfill"])
    env = dict(os.environ)
    while "=" in env_words[0]:
        key, _, value = env_words.pop(0).partition("=")
        env[key] = value
    assert env_words[:2] == ["laionflow", "backfill"]
    cmd = [*LAIONFLOW, *env_words[1:], "--conf", '{"image_size": 40}', "--wait"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    keyed = {r["partition_key"]: r for r in up["api"].runs("laion400m") if r["partition_key"]}
    assert sorted(keyed) == ["part_00001", "part_00002"]
    assert keyed["part_00001"]["conf"]["part_ids"] == [1]
    assert keyed["part_00002"]["conf"]["part_ids"] == [2]
    # the runs list, filtered by partition key as a person would, shows exactly those runs
    page.goto(f"{up['url']}/dags/laion400m/runs?partition_key_pattern=part_0000")
    for key in ("part_00001", "part_00002"):
        page.get_by_text(keyed[key]["dag_run_id"]).wait_for()
    page.goto(f"{up['url']}/dags/laion400m/runs?partition_key_pattern=part_00001")
    page.get_by_text(keyed["part_00001"]["dag_run_id"]).wait_for()
    assert page.get_by_text(keyed["part_00002"]["dag_run_id"]).count() == 0
    page.goto(f"{up['url']}/dags/laion400m/runs/{keyed['part_00002']['dag_run_id']}")
    page.get_by_text("part_00002", exact=True).first.wait_for()  # the run's Partition Key
    _shot(page, tmp_path, "grid-by-part.png")
    data = up["home"] / "root" / "data" / "laion400m"
    produced = sorted(p.name for p in (data / "images").iterdir() if p.is_dir())
    assert produced == ["part_00000", "part_00001", "part_00002"]  # the form's, then these two
    led = fs.read_json(f"{data}/summary.json")["ledger"]
    assert led["balanced"] and led["raw_rows"] > led["downloaded"] > 0
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to do" in again.stdout  # complete parts are not run twice
    assert len([r for r in up["api"].runs("laion400m") if r["partition_key"]]) == 2


def test_api_requires_a_token(up):
    import requests

    assert requests.get(f"{up['url']}/api/v2/dags", timeout=10).status_code == 401


def test_invalid_trigger_input_is_rejected_with_the_reason(up):
    import requests

    for conf, field in (
        ({"image_size": "big"}, "image_size"),
        ({"output_format": "zip"}, "output_format"),
        ({"max_punsafe": 3}, "max_punsafe"),
    ):
        resp = requests.post(
            f"{up['url']}/api/v2/dags/laion400m/dagRuns",
            json={"logical_date": None, "conf": conf},
            headers=up["api"]._headers(),
            timeout=30,
        )
        assert resp.status_code == 400, resp.text
        assert field in resp.text


def test_plugin_nav_page_lists_the_runs(up, page):
    page.goto(f"{up['url']}/laionflow/")
    page.get_by_text("laionflow recipes and runs").wait_for()
    assert page.locator("a[href^='runs/laion400m/']").count() >= 3


def _listening(procs: list) -> set:
    """The (ip, port) addresses the processes listen on."""
    found = set()
    for proc in procs:
        try:
            conns = proc.net_connections("inet")
        except psutil.NoSuchProcess:
            continue
        found |= {c.laddr for c in conns if c.status == psutil.CONN_LISTEN}
    return found


def _alive(proc) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_ctrl_c_stops_every_process_and_port(up):
    proc = up["proc"]
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    addresses = _listening(tree)
    ports = {a.port for a in addresses}
    assert int(up["url"].rsplit(":", 1)[1]) in ports and len(tree) >= 5
    assert {a.ip for a in addresses} == {"127.0.0.1"}  # the services and the fixture web alike
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 0
    assert [p.pid for p in tree if _alive(p)] == []
    listening = {
        c.laddr.port for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN
    }
    assert ports and not ports & listening
    assert "stopped" in up["log"].read_text()
    assert not (up["home"] / "root" / "up.json").exists()
