"""Benchmark: parse time of each DAG file, as the dag-processor sees it (Airflow already
imported), plus the cold time of a fresh interpreter. Goal: < 0.5 s per file.

    .venv/bin/python bench/parse.py
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

DAGS = Path(__file__).resolve().parents[1] / "dags"


def warm_parse(path: Path, repeat: int = 5) -> float:
    best = float("inf")
    for i in range(repeat):
        for mod in [m for m in sys.modules if m.startswith("operators")]:
            del sys.modules[mod]  # re-import our own code each time, as a fresh parse would
        t = time.perf_counter()
        spec = importlib.util.spec_from_file_location(f"dag_{path.stem}_{i}", path)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        best = min(best, time.perf_counter() - t)
    return best


def cold_parse(path: Path) -> float:
    code = (
        "import time, importlib.util; t = time.perf_counter(); "
        f"s = importlib.util.spec_from_file_location('d', {str(path)!r}); "
        "s.loader.exec_module(importlib.util.module_from_spec(s)); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import airflow.sdk  # noqa: F401  (the dag-processor has it imported already)
    from airflow.providers.apache.spark.operators import spark_submit  # noqa: F401

    print(f"{'DAG file':<28}{'warm (s)':>10}{'cold (s)':>10}   goal < 0.5 s warm")
    for path in sorted(DAGS.glob("*.py")):
        warm = warm_parse(path)
        print(
            f"{path.name:<28}{warm:>10.3f}{cold_parse(path):>10.3f}   "
            f"{'ok' if warm < 0.5 else 'SLOW'}"
        )


if __name__ == "__main__":
    main()
