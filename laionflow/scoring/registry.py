"""Models, preprocessors and postprocessors of the scores stage.

A model is a ``torch.nn.Module`` class with dataset2metadata's static fields: ``name``,
``raw_inputs`` (``"image"``/``"text"``), ``preprocessors`` (one per raw input), ``dependencies``
(models whose outputs follow the inputs in ``forward``) and ``to_device``; it is built as
``cls(device)``. A postprocessor maps ``{model name: output}`` of a batch to one value per
sample (a parquet column) or to an array (an npz feature). ``custom_pypath`` files add to the
same four lookups with the same names dataset2metadata uses.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from laionflow import clip_model
from laionflow.recipes.schema import ClipConfig
from laionflow.scoring.config import HeadConfig, ScoresConfig


def dhash_gray(image) -> torch.Tensor:
    """Preprocessor ``phash-gray``: 9×8 grayscale thumbnail for a 64-bit difference hash."""
    return torch.from_numpy(np.asarray(image.convert("L").resize((9, 8)), dtype=np.int16))


class PHash(torch.nn.Module):
    """Perceptual (difference) hash: bit (r, c) is ``pixel[r, c+1] > pixel[r, c]``."""

    name = "phash"
    raw_inputs = ["image"]
    preprocessors = ["phash-gray"]
    dependencies: list[str] = []
    to_device = False

    def __init__(self, device: str) -> None:
        super().__init__()

    def forward(self, gray: torch.Tensor) -> list[str]:
        bits = (gray[:, :, 1:] > gray[:, :, :-1]).reshape(len(gray), 64).numpy()
        weights = 1 << np.arange(63, -1, -1, dtype=np.uint64)
        return [f"{int((b.astype(np.uint64) * weights).sum()):016x}" for b in bits]


def detoxify_class(checkpoint: str | None) -> type:
    """Text toxicity with Unitary's detoxify (optional package), from a local checkpoint."""

    class Detox(torch.nn.Module):
        name = "detoxify"
        raw_inputs = ["text"]
        preprocessors = ["raw-text"]
        dependencies: list[str] = []
        to_device = False

        def __init__(self, device: str) -> None:
            super().__init__()
            from detoxify import Detoxify

            self.model = Detoxify("original", checkpoint=checkpoint, device=device)

        def forward(self, captions: list[str]):
            return self.model.predict(captions)["toxicity"]

    return Detox


def clip_model_class(cfg: ClipConfig) -> type:
    """The recipe's open_clip model as a registry model: normalised image and text embeddings."""

    class Clip(torch.nn.Module):
        name = "clip"
        raw_inputs = ["image", "text"]
        preprocessors = ["clip-aug", "clip-tokens"]
        dependencies: list[str] = []
        to_device = True

        def __init__(self, device: str) -> None:
            super().__init__()
            self.model, self.preprocess, self.tokenizer = clip_model.load(cfg, device)

        def forward(self, images: torch.Tensor, tokens: torch.Tensor):
            norm = torch.nn.functional.normalize
            img = norm(self.model.encode_image(images).float(), dim=-1)
            txt = norm(self.model.encode_text(tokens).float(), dim=-1)
            return img, txt

    return Clip


def head_class(name: str, head: HeadConfig) -> type:
    """A linear head on the CLIP image (or text) embedding, weights from a file."""

    class Head(torch.nn.Module):
        raw_inputs: list[str] = []
        preprocessors: list[str] = []
        dependencies = ["clip"]
        to_device = True

        def __init__(self, device: str) -> None:
            super().__init__()
            if head.weights.endswith(".npz"):
                data = np.load(head.weights)
                w, b = torch.from_numpy(data["W"]), torch.from_numpy(data["b"])
            else:
                state = torch.load(head.weights, map_location="cpu", weights_only=True)
                w, b = state["weight"], state["bias"]
            self.linear = torch.nn.Linear(w.shape[1], w.shape[0]).to(device)
            self.linear.load_state_dict({"weight": w.float(), "bias": b.float()})

        def forward(self, clip_out):
            x = self.linear(clip_out[0 if head.input == "image" else 1])
            if head.activation == "sigmoid":
                x = torch.sigmoid(x)
            elif head.activation == "softmax":
                x = torch.softmax(x, dim=-1)
            return x

    Head.name = name
    return Head


def _rows(x: Any) -> list:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    if isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] == 1:
        return x[:, 0].tolist()
    return x.tolist() if isinstance(x, np.ndarray) else list(x)


@dataclass
class Registry:
    models: dict[str, type] = field(default_factory=dict)
    preprocessors: dict[str, Callable] = field(default_factory=dict)
    columns: dict[str, Callable] = field(default_factory=dict)
    features: dict[str, Callable] = field(default_factory=dict)
    #: preprocessors that take the caption (run in the main process), by name
    text: set[str] = field(default_factory=set)


def build(cfg: ScoresConfig, clip_cfg: ClipConfig) -> Registry:
    reg = Registry(
        models={
            "clip": clip_model_class(clip_cfg),
            "phash": PHash,
            "detoxify": detoxify_class(cfg.detoxify_checkpoint),
        },
        preprocessors={"phash-gray": dhash_gray, "raw-text": lambda captions: captions},
        columns={
            "clip-score": lambda out: (out["clip"][0] * out["clip"][1]).sum(-1).tolist(),
            "phash": lambda out: out["phash"],
            "detoxify-toxicity": lambda out: _rows(out["detoxify"]),
        },
        features={
            "clip-image": lambda out: out["clip"][0].cpu().numpy().astype(np.float16),
            "clip-text": lambda out: out["clip"][1].cpu().numpy().astype(np.float16),
        },
        text={"clip-tokens", "raw-text"},
    )
    from laionflow.safety.detectors import lookups

    safety = lookups(cfg.faces_detector, cfg.face_min_score, cfg.text_score)
    reg.models.update(safety["models"])
    reg.preprocessors.update(safety["preprocessors"])
    reg.columns.update(safety["columns"])
    for name, head in cfg.heads.items():
        reg.models[name] = head_class(name, head)
        reg.columns[f"{name}-score"] = lambda out, n=name: _rows(out[n])
    if cfg.custom_pypath:
        spec = importlib.util.spec_from_file_location("laionflow_custom_models", cfg.custom_pypath)
        module = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(module)
        reg.models.update(getattr(module, "model_lookup", {}))
        reg.preprocessors.update(getattr(module, "preprocessor_lookup", {}))
        reg.columns.update(getattr(module, "postprocess_parquet_lookup", {}))
        reg.features.update(getattr(module, "postprocess_feature_lookup", {}))
        reg.text.update(getattr(module, "text_preprocessors", ()))
    _check(cfg, reg)
    return reg


def _check(cfg: ScoresConfig, reg: Registry) -> None:
    """Unknown or missing names fail here, before any data is read."""
    for name in cfg.models:
        if name not in reg.models:
            raise ValueError(f"unknown model {name!r}; known: {sorted(reg.models)}")
        for dep in reg.models[name].dependencies:
            if dep not in cfg.models:
                raise ValueError(f"model {name!r} needs {dep!r} in `models`")
    for kind, names, table in (
        ("postprocess_columns", cfg.postprocess_columns, reg.columns),
        ("postprocess_features", cfg.postprocess_features, reg.features),
    ):
        unknown = [n for n in names if n not in table]
        if unknown:
            raise ValueError(f"{kind}: unknown {unknown}; known: {sorted(table)}")


def order(cfg: ScoresConfig, reg: Registry) -> list[str]:
    """Models in dependency order (dependencies first)."""
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        if name in done:
            return
        if name in path:
            raise ValueError(f"dependency cycle: {' -> '.join((*path, name))}")
        for dep in reg.models[name].dependencies:
            visit(dep, (*path, name))
        done.append(name)

    for name in cfg.models:
        visit(name)
    return done
