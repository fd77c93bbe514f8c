import subprocess
import sys


def test_query_command_prints_k_hits_from_the_index(pipeline):
    index_dir = f"{pipeline['recipe'].dataset_root}/index"
    out = subprocess.run(
        [sys.executable, "-m", "laionflow", "query", index_dir, "red cat", "-k", "5"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 5
    assert all("http://127.0.0.1" in line for line in lines)


def test_run_command_rejects_a_part_stage_without_part(pipeline, tmp_path):
    from laionflow.plan import write_run_config

    config = write_run_config(pipeline["recipe"], "cli-test")
    out = subprocess.run(
        [sys.executable, "-m", "laionflow", "run", "download", "--config", config],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "needs --part" in out.stderr
