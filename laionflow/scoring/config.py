"""The scores YAML, in the spirit of DataComp's dataset2metadata::

    models: [clip, aesthetic, phash, my-model]   # built-in names, heads, or custom_pypath's
    # offline safety models: nsfw-image, faces, text-area, pdq (laionflow.safety.detectors)
    heads:                                       # CLIP-embedding heads (a Linear on an embedding)
      aesthetic: {weights: /models/aesthetic.pt, input: image, activation: none}
    postprocess_columns: [clip-score, aesthetic-score, phash, my-model-out]  # -> parquet
    postprocess_features: [clip-image, clip-text]                          # -> npz
    additional_fields: [url, caption, original_width]   # from each sample's json
    custom_pypath: ./my_models.py   # model_lookup, preprocessor_lookup, postprocess_*_lookup
    batch_size: 256

Everything is checked when the file is loaded — unknown names, a column whose model is not
listed, a missing weights file or python file — so a mistake fails before any work, naming it.
"""

from __future__ import annotations

import os
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from laionflow.clip_model import MissingWeightsError


class HeadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: torch state dict of a ``Linear(dim, n)`` (``weight``, ``bias``) or an ``.npz`` (W, b)
    weights: str
    input: Literal["image", "text"] = "image"
    activation: Literal["none", "sigmoid", "softmax"] = "none"


class ScoresConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[str] = Field(min_length=1)
    heads: dict[str, HeadConfig] = Field(default_factory=dict)
    postprocess_columns: list[str] = Field(default_factory=list)
    postprocess_features: list[str] = Field(default_factory=list)
    additional_fields: list[str] = Field(default_factory=list)
    custom_pypath: str | None = None
    #: checkpoint of the optional ``detoxify`` model (text toxicity; ``pip install detoxify``)
    detoxify_checkpoint: str | None = None
    #: ``faces``: ``mtcnn`` (facenet-pytorch) or ``nudenet`` (its FACE_* classes)
    faces_detector: Literal["mtcnn", "nudenet"] = "mtcnn"
    face_min_score: float = Field(default=0.9, ge=0, le=1)
    #: ``text-area``: OCR boxes whose recognised text scores below this do not count
    text_score: float = Field(default=0.5, ge=0, le=1)
    batch_size: int = Field(default=256, ge=1)
    num_workers: int = Field(default=0, ge=0)


#: scores YAMLs that ship with laionflow (``scores: sd21_safety.yaml`` in a recipe)
BUNDLED = os.path.join(os.path.dirname(os.path.dirname(__file__)), "recipes", "scores")


def resolve(path: str) -> str:
    """A recipe's ``scores`` entry: a file path, or the name of a bundled scores YAML."""
    bundled = os.path.join(BUNDLED, path)
    return bundled if not os.path.exists(path) and os.path.exists(bundled) else path


def load_config(path: str) -> ScoresConfig:
    """Read and validate a scores YAML; relative paths are relative to the file."""
    path = resolve(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"scores config not found: {path}")
    with open(path) as fh:
        cfg = ScoresConfig.model_validate(yaml.safe_load(fh))
    base = os.path.dirname(os.path.abspath(path))

    def here(p: str) -> str:
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    for name, head in cfg.heads.items():
        head.weights = here(head.weights)
        if not os.path.exists(head.weights):
            raise MissingWeightsError(f"weights of head {name!r} not found: {head.weights}")
    if "detoxify" in cfg.models:
        import importlib.util

        if importlib.util.find_spec("detoxify") is None:
            raise ImportError("model 'detoxify' needs the detoxify package: pip install detoxify")
        if not cfg.detoxify_checkpoint or not os.path.exists(here(cfg.detoxify_checkpoint)):
            raise MissingWeightsError(
                f"model 'detoxify' needs detoxify_checkpoint (a local file): "
                f"{cfg.detoxify_checkpoint!r} not found"
            )
        cfg.detoxify_checkpoint = here(cfg.detoxify_checkpoint)
    _check_safety_models(cfg)
    if cfg.custom_pypath:
        cfg.custom_pypath = here(cfg.custom_pypath)
        if not os.path.exists(cfg.custom_pypath):
            raise FileNotFoundError(f"custom_pypath not found: {cfg.custom_pypath}")
    return cfg


def _check_safety_models(cfg: ScoresConfig) -> None:
    """The offline detectors' packages and in-wheel weights, before any work."""
    from laionflow.safety.detectors import check_installed

    for name in cfg.models:
        if name == "faces":
            check_installed(f"faces:{cfg.faces_detector}")
        elif name in ("nsfw-image", "text-area", "pdq"):
            check_installed(name)
