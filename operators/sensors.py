"""Sensors. They run in ``reschedule`` mode: between pokes the worker slot is free, and no
trigger is needed (so nothing has to live in the triggerer's import path)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator


class MetadataAvailableSensor(BaseSensorOperator):
    """Wait until every metadata source of the run answers a HEAD (or exists locally)."""

    template_fields: Sequence[str] = ("config_path",)

    def __init__(self, *, config_path: Any, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", timedelta(minutes=5).total_seconds())
        kwargs.setdefault("timeout", timedelta(hours=24).total_seconds())
        super().__init__(**kwargs)
        self.config_path = config_path

    def poke(self, context: Any) -> bool:
        from laionflow.jobs.metadata import missing_sources
        from laionflow.recipes import resolve
        from operators.credentials import aws_environment

        with aws_environment():  # the run config lives under the dataset root
            missing = missing_sources(resolve(self.config_path))
        if missing:
            self.log.info("waiting for %d metadata source(s): %s", len(missing), missing[:5])
        return not missing
