"""Part ids and names, in every spelling laionflow, img2dataset and Spark write."""

from __future__ import annotations

import pytest

from laionflow.layout import Layout, part_id, part_name, shard_path, stage_summary


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("part_00007", 7),
        ("s3://bucket/ds/images/part_00012/", 12),
        ("/data/ds/metadata/filtered/part-00003.parquet", 3),
        ("_part=11", 11),
        ("part_00000_stats.csv", None),
        ("part_00000_summary.json", None),
        ("part-00001.csv", None),
        ("part_1", None),
        ("_done.json", None),
    ],
)
def test_part_id(name, part):
    assert part_id(name) == part


def test_names_round_trip_and_paths_keep_the_protocol():
    layout = Layout("s3://bucket/ds")
    for part in (0, 7, 123456):
        assert part_id(part_name(part)) == part
        assert part_id(layout.filtered_part(part)) == part
        assert part_id(layout.images_part(part)) == part
    assert layout.embedding_batch(2, 1)["img"] == (
        "s3://bucket/ds/embeddings/part_00002/img_emb/img_emb_1.npy"
    )
    assert shard_path(layout.images_part(1), 3, "_stats.json") == (
        "s3://bucket/ds/images/part_00001/00003_stats.json"
    )
    assert stage_summary("s3://bucket/ds/runs/r/config.json", "filter") == (
        "s3://bucket/ds/runs/r/summaries/filter.json"
    )


def test_done_parts_needs_the_marker(tmp_path):
    layout = Layout(str(tmp_path))
    for part, done in ((0, True), (1, False), (2, True)):
        folder = tmp_path / "scores" / part_name(part)
        folder.mkdir(parents=True)
        if done:
            (folder / "_done.json").write_text("{}")
    (tmp_path / "scores" / "kept.parquet").write_text("")
    assert layout.done_parts(layout.scores) == [0, 2]


def test_part_id_specs():
    from laionflow.layout import parse_parts

    assert parse_parts("3-5,12") == [3, 4, 5, 12]
    assert parse_parts("1,0") == [0, 1]
    with pytest.raises(ValueError):
        parse_parts("5-3")
