"""The repair DAG's Asset events carry each repaired part as Airflow's native partition key
(``<recipe>.repaired_parts``), while ``<recipe>.repairs`` stays one unkeyed event per recipe
(Airflow queues non-partitioned DAGs, like ``<recipe>_refresh``, only on unkeyed events)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowSkipException
from airflow.sdk.execution_time.context import OutletEventAccessors

from operators.assets import RECIPES, part_events
from operators.repair_dag import publish_parts, repair_dag


def test_each_repaired_part_is_one_keyed_event():
    events = OutletEventAccessors()
    emit = publish_parts("laion400m").function
    config = "/data/laion400m/runs/r/config.json"
    published = {"laion400m": {"config_path": config, "parts": [3, 7]}}
    assert emit(published, outlet_events=events) == ["part_00003", "part_00007"]
    accessor = events[part_events("laion400m")]
    assert accessor.partition_keys == {"part_00003", "part_00007"}
    assert accessor.extra == {"config_path": config}
    with pytest.raises(AirflowSkipException):  # nothing repaired: no event at all
        publish_parts("laion6m").function(published, outlet_events=OutletEventAccessors())


def test_repair_dag_has_a_keyed_outlet_per_recipe():
    dag = repair_dag()
    for recipe in RECIPES:
        task = dag.get_task(f"parts_{recipe}")
        assert [o.name for o in task.outlets] == [f"{recipe}.repaired_parts"]
        assert task.upstream_task_ids == {"publish"}
