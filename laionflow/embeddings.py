"""Reading published embedding batches: what ``_done.json`` lists, nothing else.

The index, the semantic dedup and the report read the embeddings the same way, through
here, so a batch is visible to all of them exactly when the embed stage publishes it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from laionflow import fs
from laionflow.layout import Layout


def embedded_parts(layout: Layout) -> list[int]:
    """Parts whose embeddings are published (their ``_done.json`` exists)."""
    return layout.done_parts(layout.embeddings)


def load_array(path: str) -> np.ndarray:
    with fs.open(path) as fh:
        return np.load(fh)


def embedding_batches(layout: Layout) -> Iterator[dict]:
    """Every published embedding batch, in part then batch order: its part and the paths of
    its image and text vectors and its metadata (``part``, ``img``, ``txt``, ``meta``)."""
    for part in embedded_parts(layout):
        for b in fs.read_json(layout.embeddings_done(part))["batches"]:
            yield {"part": part, **layout.embedding_batch(part, b["batch"])}
