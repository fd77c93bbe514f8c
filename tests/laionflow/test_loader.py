import json

import torch

from laionflow.loader import make_dataset, make_loader, shard_urls


def test_loader_streams_every_sample_of_a_recipe_output(pipeline, checkpoint):
    from laionflow import clip_model
    from laionflow.recipes.schema import ClipConfig

    root = pipeline["recipe"].dataset_root
    urls = shard_urls(root)
    assert len(urls) == sum(len(d["shards"]) for d in pipeline["download"].values())
    _, preprocess, tokenizer = clip_model.load(
        ClipConfig(model="laionflow-tiny", pretrained=checkpoint), "cpu"
    )
    loader = make_loader(urls, batch_size=32, image_transform=preprocess, tokenizer=tokenizer)
    seen = 0
    for images, texts in loader:
        assert images.shape[1:] == (3, 64, 64) and images.dtype == torch.float32
        assert texts.shape == (len(images), 77)
        seen += len(images)
    assert seen == pipeline["report"]["downloaded"]


def test_metadata_filters_and_part_selection(pipeline):
    root = pipeline["recipe"].dataset_root
    one_part = shard_urls(root, parts=[1])
    assert one_part and all("part_00001" in u for u in one_part)
    rows = list(make_dataset(shard_urls(root), with_meta=True))
    threshold = sorted(m["similarity"] for _, _, m in rows)[len(rows) // 2]
    kept = list(
        make_dataset(shard_urls(root), with_meta=True, where={"similarity": (">=", threshold)})
    )
    assert 0 < len(kept) < len(rows)
    assert all(m["similarity"] >= threshold for _, _, m in kept)
    assert not list(make_dataset(shard_urls(root), require=("image", "npy")))
    assert json.dumps(kept[0][2])  # the per-sample json comes through
