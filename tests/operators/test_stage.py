import json
import sys

import pytest

from operators.stage import LaionflowStageOperator


def test_command_is_built_from_fields():
    op = LaionflowStageOperator(
        task_id="t",
        stage="download",
        config_path="/r/config.json",
        part=3,
        force="True",
        python="/py",
    )
    assert op.command("/tmp/s.json") == [
        "/py",
        "-m",
        "laionflow",
        "run",
        "download",
        "--config",
        "/r/config.json",
        "--summary-out",
        "/tmp/s.json",
        "--part",
        "3",
        "--force",
    ]
    op = LaionflowStageOperator(task_id="t", stage="index", config_path="/c", force=False)
    assert op.command("/s")[0] == sys.executable
    assert "--part" not in op.command("/s") and "--force" not in op.command("/s")


def test_execute_runs_the_stage_cli_and_returns_its_summary(pipeline, tmp_path):
    from laionflow.plan import write_run_config

    config = write_run_config(pipeline["recipe"], "unit-test")
    op = LaionflowStageOperator(task_id="report", stage="report", config_path=config)
    summary = op.execute(context={})
    assert summary["stage"] == "report" and summary["balanced"] is True
    assert json.loads(json.dumps(summary)) == summary  # XCom-serialisable


def test_a_failing_stage_fails_the_task_with_its_exit_code(tmp_path):
    missing = tmp_path / "nope.json"
    op = LaionflowStageOperator(task_id="t", stage="index", config_path=str(missing))
    with pytest.raises(RuntimeError, match="stage 'index' failed with exit code 1"):
        op.execute(context={})
