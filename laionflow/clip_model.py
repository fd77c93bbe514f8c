"""Load an open_clip model the same way in every job: by name, with ``pretrained`` either an
open_clip tag or a local checkpoint path (open_clip's own ``pretrained=<path>`` loading).

laionflow's bundled configs (``laionflow/models/*.json``, e.g. the 7.6M-parameter
``laionflow-tiny`` used by tests and the demo) are registered with open_clip first.
"""

from __future__ import annotations

import os
from pathlib import Path

from laionflow.recipes.schema import ClipConfig

MODELS_DIR = Path(__file__).parent / "models"


class MissingWeightsError(FileNotFoundError):
    pass


def looks_like_path(pretrained: str | None) -> bool:
    return bool(pretrained) and (
        "/" in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))
    )


def check_weights(cfg: ClipConfig) -> None:
    """Fail before any work when a checkpoint path is missing, naming the path."""
    if looks_like_path(cfg.pretrained) and not os.path.exists(cfg.pretrained):
        raise MissingWeightsError(f"CLIP checkpoint not found: {cfg.pretrained} (clip.pretrained)")


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load(cfg: ClipConfig, device: str = "cpu"):
    """Return ``(model, preprocess, tokenizer)`` in eval mode on ``device``."""
    import open_clip

    check_weights(cfg)
    open_clip.add_model_config(MODELS_DIR)
    model, _, preprocess = open_clip.create_model_and_transforms(
        cfg.model, pretrained=cfg.pretrained or None, device=device
    )
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(cfg.model)


def save_random_checkpoint(model_name: str, path: str | os.PathLike, seed: int = 0) -> str:
    """Create ``model_name`` with random weights (fixed seed) and save its state dict — a real
    checkpoint for offline demos and tests, loaded back through ``pretrained=<path>``."""
    import open_clip
    import torch

    open_clip.add_model_config(MODELS_DIR)
    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, pretrained=None)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return str(path)
