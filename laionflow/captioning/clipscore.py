"""CLIP image–text scores of captions, with the recipe's own CLIP model (``clip:`` section,
loaded by :mod:`laionflow.clip_model` exactly as the embed stage loads it), so a new caption
and the alt text it may replace are judged by the model the index is built with."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from laionflow import clip_model
from laionflow.recipes.schema import ClipConfig


class ClipScorer:
    """Cosine similarity of an image's and a text's normalised CLIP embeddings."""

    def __init__(self, cfg: ClipConfig, device: str) -> None:
        self.device = device
        self.model, self.preprocess, self.tokenizer = clip_model.load(cfg, device)

    def _text(self, texts: list[str]) -> Any:
        import torch

        emb = self.model.encode_text(self.tokenizer(texts).to(self.device))
        return torch.nn.functional.normalize(emb.float(), dim=-1)

    def scores(self, images: list, *captions: list[str]) -> list[np.ndarray]:
        """For each list of captions (one per image), the score of caption i against image i."""
        import torch

        autocast = (
            torch.autocast("cuda", dtype=torch.float16)
            if self.device.startswith("cuda")
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            pixels = torch.stack([self.preprocess(im) for im in images]).to(self.device)
            img = torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1)
            return [(img * self._text(texts)).sum(-1).cpu().numpy() for texts in captions]
