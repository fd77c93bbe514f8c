import os
import sys

from operators.spark import LaionflowSparkSubmitOperator, driver_conf, job_path, runtime_env


def test_job_path_points_at_the_installed_spark_job():
    path = job_path("filter_dedup.py")
    assert os.path.isfile(path) and path.endswith("spark_jobs/filter_dedup.py")


def test_runtime_env_uses_this_python_and_its_spark_submit():
    env = runtime_env()
    assert env["PYSPARK_DRIVER_PYTHON"] == sys.executable
    bin_dir = env["PATH"].split(os.pathsep)[0]
    assert os.path.exists(os.path.join(bin_dir, "spark-submit"))
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"


def test_driver_binds_loopback_and_disables_the_ui_by_default(monkeypatch):
    monkeypatch.delenv("LAIONFLOW_SPARK_DRIVER_HOST", raising=False)
    assert driver_conf() == {
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
    }


def test_operator_is_the_providers_spark_submit_operator():
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    op = LaionflowSparkSubmitOperator(
        task_id="f", job="filter_dedup.py", application_args=["--config", "c.json"]
    )
    assert isinstance(op, SparkSubmitOperator)
    assert "application_args" in op.template_fields
    assert op.name == "laionflow-filter_dedup"


def test_job_arguments_are_a_pure_function_of_the_rendered_fields():
    from operators.spark import job_arguments

    assert job_arguments("r/config.json", "True", "r/summaries/filter.json") == [
        "--config",
        "r/config.json",
        "--force",
        "True",
        "--summary-out",
        "r/summaries/filter.json",
    ]
    assert job_arguments("c.json", False) == ["--config", "c.json", "--force", "False"]


def test_spark_job_arguments_parse_back():
    from laionflow.layout import stage_summary
    from laionflow.spark import job_args
    from operators.spark import job_arguments

    summary = stage_summary("s3://b/d/runs/r1/config.json", "embed")
    assert summary == "s3://b/d/runs/r1/summaries/embed.json"
    args = job_args(job_arguments("s3://b/d/runs/r1/config.json", "true", summary))
    assert (args.config, args.force, args.summary_out, args.parts) == (
        "s3://b/d/runs/r1/config.json",
        True,
        summary,
        None,
    )
