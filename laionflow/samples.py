"""One reader of webdataset samples as img2dataset writes them (``KEY.jpg|png|webp``,
``KEY.txt``, ``KEY.json``): the embed and scores stages and the training loader decode them
here, so a new image extension or a decoding trick (JPEG draft mode) is added once.

Every class is picklable: they run in DataLoader worker processes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

#: sample entries that hold an image, in the order they are looked for
IMAGE_EXT = ("jpg", "jpeg", "png", "webp")
#: the recaption stage's member: the caption a trainer should use (``laionflow.jobs.recaption``)
RECAP_EXT = "recap.txt"


def has_image(sample: dict) -> bool:
    return any(e in sample for e in IMAGE_EXT)


def image_bytes(sample: dict) -> bytes:
    """The encoded image of a sample (its first image entry)."""
    return next(sample[e] for e in IMAGE_EXT if e in sample)


def caption(sample: dict) -> str:
    return sample.get("txt", b"").decode("utf-8")


def meta(sample: dict) -> dict:
    """The sample's json (img2dataset's per-sample metadata), ``{}`` when absent; plus the
    recaption stage's caption (``KEY.recap.txt``) as ``recaption``, so the embeddings metadata
    and the index metadata built from it carry that column."""
    out = json.loads(sample["json"]) if "json" in sample else {}
    if RECAP_EXT in sample:
        out["recaption"] = sample[RECAP_EXT].decode("utf-8")
    return out


def open_image(raw: bytes, draft_size: int | None = None):
    """An RGB PIL image. With ``draft_size`` (the model's input side), a JPEG at least twice
    that size is decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (DCT scaling, never below
    ``draft_size``): far less decoding and resizing when shards are stored larger than the
    model reads them."""
    from PIL import Image

    image = Image.open(io.BytesIO(raw))
    if draft_size and image.format == "JPEG":
        image.draft("RGB", (draft_size, draft_size))
    return image.convert("RGB")


class Decode:
    """``(key, transform(image), caption, meta)`` — the image decoded in the worker."""

    def __init__(self, transform: Callable[[Any], Any], draft_size: int | None = None) -> None:
        self.transform = transform
        self.draft_size = draft_size

    def __call__(self, sample: dict) -> tuple:
        image = open_image(image_bytes(sample), self.draft_size)
        return sample["__key__"], self.transform(image), caption(sample), meta(sample)


class Bytes:
    """``(key, encoded image bytes, caption, meta)`` — for decoding on the model's device."""

    def __call__(self, sample: dict) -> tuple:
        return sample["__key__"], image_bytes(sample), caption(sample), meta(sample)


class Each:
    """A transform applying several named preprocessors to one decoded image (the scores
    stage decodes once for every model that reads the image)."""

    def __init__(self, preprocessors: dict[str, Callable[[Any], Any]]) -> None:
        self.preprocessors = preprocessors

    def __call__(self, image) -> dict[str, Any]:
        return {name: f(image) for name, f in self.preprocessors.items()}
