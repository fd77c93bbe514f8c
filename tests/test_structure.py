"""The house rules, checked: small modules, short functions, the Airflow-free core, no import
between the report and the stages in either direction, and ``laionflow/jobs/`` holding stage
modules only (every one of them in the stage table)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("laionflow", "operators", "spark_jobs", "dags", "plugins", "bench", "scripts")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(
        p
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if p.is_file()  # laionflow/testing/ too: it ships (the simulated web, the fixture)
    )


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_no_module_over_300_lines():
    long = {
        _rel(p): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_over_80_lines():
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{_rel(path)}:{node.lineno} {node.name}"] = lines
    assert long == {}


def test_the_core_imports_no_airflow():
    bad = [
        _rel(p)
        for p in (ROOT / "laionflow").rglob("*.py")
        if any(m == "airflow" or m.startswith("airflow.") for m in _imports(p))
    ]
    assert bad == []


def test_reporting_and_jobs_do_not_import_each_other():
    def importing(pkg: str, other: str) -> list[str]:
        return [
            _rel(p)
            for p in (ROOT / "laionflow" / pkg).rglob("*.py")
            if any(m == f"laionflow.{other}" or m.startswith(f"laionflow.{other}.")
                   for m in _imports(p))
        ]  # fmt: skip

    assert importing("reporting", "jobs") == []
    assert importing("jobs", "reporting") == []


def test_jobs_holds_the_stage_modules_of_the_stage_table_only():
    from laionflow.stages import STAGES

    stage_modules = {s.module for s in STAGES.values()}
    jobs = {
        f"laionflow.jobs.{p.stem}"
        for p in (ROOT / "laionflow" / "jobs").glob("*.py")
        if p.stem != "__init__"
    }
    in_process = {"laionflow.jobs.estimate"}  # run by the DAG's short-circuit ``estimate`` task
    assert jobs - stage_modules - in_process == set()
