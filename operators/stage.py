"""Run one laionflow stage as a subprocess of the worker and return its summary as XCom.

The operator decides *where* a stage runs, never *what* it does: it launches
``python -m laionflow run STAGE --config ... [--part N]`` (the same CLI a user can run by
hand), streams its log into the task log (progress lines included), and on success returns a
compact form of the summary the stage wrote (counts, bytes, rates) as its XCom, which the grid
view shows. A subprocess keeps torch/img2dataset imports and their worker pools out of the Airflow
worker, and lets ``on_kill`` stop the whole process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

#: map index of per-part tasks: ``part_00001``
MAP_INDEX = "part_{{ '%05d' % (task.part | int) }}"


class LaionflowStageOperator(BaseOperator):
    template_fields: Sequence[str] = ("config_path", "part", "force")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        stage: str,
        config_path: Any,
        part: Any = None,
        force: Any = False,
        python: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        #: AWS connection whose credentials the stage gets as ``AWS_*`` variables (S3 roots);
        #: default ``$LAIONFLOW_AWS_CONN_ID`` or ``aws_default``, skipped when it does not exist
        self.aws_conn_id = aws_conn_id
        self.stage = stage
        self.config_path = config_path
        self.part = part
        self.force = force
        self.python = python
        self._proc: subprocess.Popen | None = None

    def command(self, summary_path: str) -> list[str]:
        """The exact command line; a pure function of the operator's fields (tested as such)."""
        cmd = [
            self.python or sys.executable,
            "-m",
            "laionflow",
            "run",
            self.stage,
            "--config",
            str(self.config_path),
            "--summary-out",
            summary_path,
        ]
        if self.part is not None:
            cmd += ["--part", str(int(self.part))]
        if self.force in (True, "True", "true", "1"):
            cmd.append("--force")
        return cmd

    def execute(self, context: Any) -> dict:
        with tempfile.TemporaryDirectory(prefix="laionflow-") as tmp:
            summary_path = os.path.join(tmp, "summary.json")
            cmd = self.command(summary_path)
            self.log.info("running %s", " ".join(cmd))
            self._proc = subprocess.Popen(
                cmd,
                env={**os.environ, **self._credentials_env()},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                bufsize=1,
            )
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                self.log.info("%s", line.rstrip())
            code = self._proc.wait()
            if code != 0:
                raise RuntimeError(f"stage {self.stage!r} failed with exit code {code}")
            from laionflow.progress import compact

            with open(summary_path) as fh:
                return compact(json.load(fh))

    def _credentials_env(self) -> dict[str, str]:
        from operators.credentials import aws_env

        return aws_env(self.aws_conn_id, self.log)

    def on_kill(self) -> None:
        if self._proc and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
