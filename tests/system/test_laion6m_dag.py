"""laion6m through dag.test(): the prepackaged path and the re-derive path."""

import io
import json

import pandas as pd
import webdataset as wds
from PIL import Image

from laionflow import fs
from laionflow.testing.packs import build_repo
from tests.helpers import run_dag, small_run_conf


def _run(conf):
    return run_dag("laion6m", conf)


def test_prepackaged_path_fetches_extracts_and_indexes(airflow_db, fixture_server, tmp_path):
    repo = build_repo(fixture_server.root, repo="t/laion6m-dag", images=24, packs=3)
    run, states = _run(
        {
            "root": str(tmp_path),
            "source": "prepackaged",
            "extract_workers": 2,
            "overrides": {
                "prepackaged.repo": "t/laion6m-dag",
                "prepackaged.endpoint": fixture_server.base_url,
            },
        }
    )
    assert str(run.state) == "success", states
    assert all(states[(t, -1)] == "success" for t in ("pack_fetch", "pack_extract", "pack_index"))
    assert all(
        states[k] == "skipped"
        for k in states
        if k[0] in ("metadata_available", "metadata", "filter", "download", "report")
    )
    summary = fs.read_json(f"{tmp_path}/laion6m/packs/_summary.json")
    assert summary["balanced"] and summary["ok"] == 24
    assert {m["member"] for m in summary["rejected_members"]} == set(repo["bad_members"])
    index = pd.read_parquet(tmp_path / "laion6m" / "packs" / "index.parquet")
    assert index["image_path"].map(lambda p: p.startswith(str(tmp_path))).all()


def test_rederive_path_filters_aspect_ratio_and_runs_the_pipeline(
    airflow_db, umap_corpus, checkpoint, tmp_path
):
    from laionflow.captioning.tiny import save_tiny_captioner

    conf = small_run_conf(tmp_path, umap_corpus.metadata_urls, checkpoint, source="rederive")
    conf["overrides"].update(  # laion6m re-captions: with the tiny BLIP, loaded from its folder
        {
            "recaption.model": save_tiny_captioner(tmp_path / "tiny-blip"),
            "recaption.device": "cpu",
            "recaption.max_new_tokens": 6,
            "recaption.gate": "original",
        }
    )
    run, states = _run(conf)
    assert str(run.state) == "success", states
    assert states[("pack_fetch", -1)] == "skipped"
    assert states[("openuni_export", -1)] == "success"
    assert {states[("recaption", p)] for p in (0, 1)} == {"success"}
    root = tmp_path / "laion6m"
    led = fs.read_json(f"{root}/summary.json")["ledger"]
    assert led["balanced"] and led["filtered"]["max_aspect_ratio"] > 0
    assert led["embedding_rows"] == led["downloaded"] == led["index_size"]
    rec = led["recaption"]  # the gate's verdicts, counted in the report
    assert rec["caption_rows"] == rec["openuni_samples"] == led["downloaded"] > 0
    assert rec["kept"] + rec["rejected"] == rec["caption_rows"] and rec["gate"] == "original"
    kept = pd.concat(
        pd.read_parquet(f"{root}/metadata/filtered/part-{p:05d}.parquet") for p in (0, 1)
    )
    ratio = kept[["width", "height"]].max(axis=1) / kept[["width", "height"]].min(axis=1)
    assert (ratio <= 3).all()
    _export_is_complete(root, led["downloaded"])
    _caption_row_rederives_from_its_key(root)


def _export_is_complete(root, downloaded: int) -> None:
    """OpenUni's three paths: every data.json entry's image and caption file exists."""
    out = root / "export" / "openuni"
    data = json.loads((out / "data.json").read_text())
    assert len(data) == downloaded == len({d["image"] for d in data})
    for d in data:
        assert (out / "raw" / d["image"]).is_file()
        assert json.loads((out / "captions" / d["annotation"]).read_text())["caption"]


def _caption_row_rederives_from_its_key(root) -> None:
    """A key from the index metadata: its caption row (part, key) is the captioner's output
    for that key's image in the shards, and the index carries the selected caption."""
    from laionflow.captioning import model as captioner
    from laionflow.captioning.config import RecaptionConfig

    meta = pd.read_parquet(root / "index" / "metadata")
    sample = meta.iloc[len(meta) // 2]
    part, key = int(sample["part"]), sample["key"]
    caps = pd.read_parquet(root / "captions" / f"part_{part:05d}" / "captions.parquet")
    row = caps.set_index("key").loc[key]
    assert sample["recaption"] == row["selected_caption"]
    images = root / "images" / f"part_{part:05d}"
    tar = images / f"{int(row['shard']):05d}.tar"
    found = [s for s in wds.WebDataset(f"file:{tar}", shardshuffle=False) if s["__key__"] == key]
    assert len(found) == 1 and found[0]["recap.txt"].decode() == row["selected_caption"]
    config = fs.read_json(f"{root}/summary.json")["config"]["recaption"]
    cap = captioner.load(RecaptionConfig(**config), "cpu")
    image = Image.open(io.BytesIO(found[0]["jpg"])).convert("RGB")
    assert captioner.caption(cap, [image]) == [row["caption"]]
