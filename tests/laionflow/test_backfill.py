import pytest

from laionflow import fs
from laionflow.backfill import (
    backfill,
    chunks,
    complete_parts,
    parse_parts,
    part_of_key,
    partition_key,
)
from laionflow.layout import Layout


def test_parse_parts_ranges_and_lists():
    assert parse_parts("3-7,12") == [3, 4, 5, 6, 7, 12]
    assert parse_parts(" 5, 2-3 ,5") == [2, 3, 5]
    for bad in ("", "7-3", "x", "-1"):
        with pytest.raises(ValueError):
            parse_parts(bad)


def test_chunks():
    assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]


class _RecordingApi:
    def __init__(self):
        self.calls = []

    def trigger(self, dag_id, conf, run_id=None, partition=None):
        self.calls.append((dag_id, conf, run_id, partition))
        return run_id


def test_partition_keys_name_parts():
    assert partition_key(3) == "part_00003" and part_of_key("part_00003") == 3
    assert part_of_key(partition_key(123456)) == 123456
    for bad in ("3", "part_", "part_x1", "shard_00003"):
        with pytest.raises(ValueError):
            part_of_key(bad)


def test_backfill_skips_complete_parts_unless_forced(tmp_path):
    root = str(tmp_path / "ds")
    fs.write_json(Layout(root).download_summary(4), {"successes": 1})
    assert complete_parts(root, [3, 4, 5]) == [4]
    api = _RecordingApi()
    ids = backfill(api, "laion400m", [3, 4, 5], root, {"image_size": 128}, chunk=1)
    assert [c[1]["part_ids"] for c in api.calls] == [[3], [5]]
    assert all(c[1]["image_size"] == 128 and c[1]["force"] is False for c in api.calls)
    assert ids[0].startswith("parts__3__")
    assert [c[3] for c in api.calls] == ["part_00003", "part_00005"]  # one part: its key
    api = _RecordingApi()
    backfill(api, "laion400m", [3, 4, 5], root, force=True, chunk=3)
    assert [c[1]["part_ids"] for c in api.calls] == [[3, 4, 5]]
    assert api.calls[0][1]["force"] is True
    assert api.calls[0][3] is None  # several parts: conf.part_ids only
    api = _RecordingApi()
    assert backfill(api, "laion400m", [4], root) == [] and api.calls == []
