"""The training side: a webdataset loader over a recipe's shards, as the LAION-5B guide
recommends — stream tars (local or s3://), keep samples that have the wanted parts and pass
metadata filters, transform images, tokenize captions, batch in a DataLoader.

    from laionflow.loader import shard_urls, make_loader
    loader = make_loader(shard_urls("/data/laion400m"), batch_size=256,
                         image_transform=preprocess, tokenizer=open_clip.get_tokenizer("ViT-B-32"),
                         where={"punsafe": ("<=", 0.5)})
    for images, texts in loader: ...
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any

from laionflow import fs, samples
from laionflow.layout import Layout, part_id, shard_path
from laionflow.shards import shard_ids

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


def shard_urls(dataset_root: str, parts: Iterable[int] | None = None) -> list[str]:
    """Complete shards (those with img2dataset's ``_stats.json``) of a dataset, in part order."""
    layout = Layout(dataset_root)
    wanted = set(parts) if parts is not None else None
    urls = []
    for folder in fs.ls(layout.images):
        part = part_id(folder)
        if part is None or (wanted is not None and part not in wanted):
            continue
        urls += [shard_path(folder, sid, ".tar") for sid in shard_ids(folder)]
    return fs.webdataset_urls(urls)


class _Keep:
    """Picklable predicate: required parts present and metadata conditions hold."""

    def __init__(self, require: tuple[str, ...], where: dict[str, tuple[str, Any]]):
        self.require, self.where = require, where

    def __call__(self, sample: dict) -> bool:
        for part in self.require:
            if part == "image":
                if not samples.has_image(sample):
                    return False
            elif part not in sample:
                return False
        if self.where:
            meta = samples.meta(sample)
            for field, (op, value) in self.where.items():
                got = meta.get(field)
                if got is None or not OPS[op](got, value):
                    return False
        return True


class _Decode:
    def __init__(self, image_transform, with_meta: bool):
        self.image_transform, self.with_meta = image_transform, with_meta

    def __call__(self, sample: dict):
        image = samples.open_image(samples.image_bytes(sample))
        if self.image_transform is not None:
            image = self.image_transform(image)
        if self.with_meta:
            return image, samples.caption(sample), samples.meta(sample)
        return image, samples.caption(sample)


def make_dataset(
    urls: list[str],
    *,
    image_transform=None,
    require=("image", "txt"),
    where: dict[str, tuple[str, Any]] | None = None,
    with_meta: bool = False,
    shuffle: int = 0,
):
    import webdataset as wds

    dataset = wds.WebDataset(
        urls, shardshuffle=bool(shuffle), empty_check=False, handler=wds.warn_and_continue
    )
    if shuffle:
        dataset = dataset.shuffle(shuffle)
    return dataset.select(_Keep(tuple(require), dict(where or {}))).map(
        _Decode(image_transform, with_meta), handler=wds.warn_and_continue
    )


def make_loader(
    urls: list[str],
    *,
    batch_size: int = 256,
    num_workers: int = 0,
    image_transform=None,
    tokenizer=None,
    **dataset_kwargs,
):
    """A DataLoader of ``(images, texts)`` batches; texts are token tensors when a tokenizer
    (e.g. ``open_clip.get_tokenizer(name)``) is given."""
    import torch

    dataset = make_dataset(urls, image_transform=image_transform, **dataset_kwargs)

    def collate(batch):
        images, texts = [b[0] for b in batch], [b[1] for b in batch]
        if isinstance(images[0], torch.Tensor):
            images = torch.stack(images)
        return images, (tokenizer(texts) if tokenizer is not None else texts)

    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate
    )
