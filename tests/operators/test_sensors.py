from laionflow.plan import write_run_config
from laionflow.recipes import load_recipe
from laionflow.testing.server import FixtureServer
from operators.sensors import MetadataAvailableSensor


def test_sensor_waits_until_every_source_answers(tmp_path):
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "a.parquet").write_bytes(b"x")
    with FixtureServer(tmp_path / "srv") as srv:
        urls = [f"{srv.base_url}/a.parquet", f"{srv.base_url}/b.parquet"]
        recipe = load_recipe("laion400m", {"root": str(tmp_path), "metadata.urls": urls})
        sensor = MetadataAvailableSensor(task_id="s", config_path=write_run_config(recipe, "r"))
        assert sensor.mode == "reschedule"
        assert sensor.poke(context={}) is False
        (tmp_path / "srv" / "b.parquet").write_bytes(b"y")
        assert sensor.poke(context={}) is True
        assert srv.hits["/b.parquet"] == 2
