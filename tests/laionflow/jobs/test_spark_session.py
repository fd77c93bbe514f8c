"""``spark_session`` defaults (loopback driver, UI off) give way to what spark-submit was
given: a deployment whose executors run on other hosts sets the driver host without code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from operators.spark import runtime_env

SCRIPT = """
import json
from laionflow.spark import spark_session
spark = spark_session(app="laionflow-default", conf={"spark.executorEnv.X": "1"})
c = spark.sparkContext.getConf()
keys = ["spark.app.name", "spark.driver.host", "spark.sql.shuffle.partitions",
        "spark.ui.enabled", "spark.executorEnv.X"]
print("CONF " + json.dumps({k: c.get(k) for k in keys}))
spark.stop()
"""


def _submit(tmp_path, *conf: str) -> dict:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    args = [a for kv in conf for a in ("--conf", kv)]
    out = subprocess.run(
        ["spark-submit", "--master", "local[1]", *args, str(script)],
        env={**os.environ, **runtime_env(), "PYSPARK_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("CONF "))
    return json.loads(line[5:])


def test_defaults_apply_when_nothing_was_submitted(tmp_path):
    conf = _submit(tmp_path)
    conf.pop("spark.app.name")  # spark-submit always names the app (the script, by default)
    assert conf == {
        "spark.driver.host": "127.0.0.1",
        "spark.sql.shuffle.partitions": os.environ.get("LAIONFLOW_SHUFFLE_PARTITIONS", "8"),
        "spark.ui.enabled": "false",
        "spark.executorEnv.X": "1",
    }


def test_submitted_settings_win(tmp_path):
    conf = _submit(
        tmp_path,
        "spark.app.name=site-job",
        "spark.driver.host=localhost",
        "spark.sql.shuffle.partitions=3",
    )
    assert conf["spark.app.name"] == "site-job"
    assert conf["spark.driver.host"] == "localhost"
    assert conf["spark.sql.shuffle.partitions"] == "3"
    assert conf["spark.executorEnv.X"] == "1"  # the job's own needs still apply
