"""Fit the demo's tiny CLIP model for a few seconds, so that its text queries mean something.

A random ``laionflow-tiny`` answers "red circle" with anything. Here it is trained
contrastively (CLIP's own loss) on freshly drawn (picture, caption) pairs of the kind the demo
corpus serves (:func:`laionflow.testing.pictures.scene`: a coloured shape the caption names),
each picture framed the way the pipeline frames it (img2dataset's ``border`` resize pads it to
a square with black) — never on the corpus itself. CPU, fixed seed, no Airflow; the result is
a plain state dict that the recipe loads through open_clip's ``pretrained=<path>``.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from laionflow.clip_model import MODELS_DIR
from laionflow.testing import pictures


@dataclass
class FitResult:
    path: str
    steps: int
    pairs: int
    first_loss: float
    last_loss: float
    seconds: float


def framed(img: Image.Image, size: int) -> Image.Image:
    """``img`` fitted into a black ``size``×``size`` square (img2dataset's ``border`` mode)."""
    scale = size / max(img.size)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    out = Image.new("RGB", (size, size))
    out.paste(img.resize((w, h), Image.BILINEAR), ((size - w) // 2, (size - h) // 2))
    return out


def pairs(n: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``n`` framed pictures (uint8, n×size×size×3) and their captions, drawn like the demo
    corpus (sides 96–640 px, one in ten stored gray) but from their own seeds."""
    rng = np.random.default_rng([seed, 1])
    images = np.zeros((n, size, size, 3), np.uint8)
    captions = []
    for k in range(n):
        w, h = (int(v) for v in rng.integers(96, 641, size=2))
        scale = size / max(w, h)  # draw small: the shape's geometry is relative to the sides
        gray = bool(rng.random() < 0.1)
        img, colour, shape = pictures.scene(
            np.random.default_rng([seed, 2, k]),
            max(8, round(w * scale)),
            max(8, round(h * scale)),
            gray,
        )
        if gray:
            img = img.convert("L").convert("RGB")
        images[k] = np.asarray(framed(img, size))
        captions.append(f"{colour} {shape} #{int(rng.integers(0, 100_000))}")
    return images, captions


def encode_text_short(model, tokens):
    """open_clip's ``CLIP.encode_text`` on the first ``tokens.shape[1]`` positions only. The
    text tower is causal and pools at the end-of-text token, so for captions that fit, the
    result equals the full 77-token pass — at a fraction of the cost."""
    from open_clip.transformer import text_global_pool

    n = tokens.shape[1]
    x = model.token_embedding(tokens) + model.positional_embedding[:n]
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:n, :n]))
    x = text_global_pool(x, tokens, model.text_pool_type)
    return x @ model.text_projection


def fit(
    model_name: str,
    path: str | os.PathLike,
    steps: int = 120,
    batch: int = 128,
    n_pairs: int = 1500,
    seed: int = 0,
) -> FitResult:
    """Train ``model_name`` from a seeded random start for ``steps`` steps and save its state
    dict at ``path``. The token embedding stays as initialised (random but distinct per token):
    only the towers learn, which is all a handful of caption words needs."""
    import open_clip
    import torch

    started = time.monotonic()
    threads = torch.get_num_threads()
    # one thread: a model this small gains little from more, and on a busy machine (a test
    # run's parallel jobs) torch's spinning threads made each step ten times slower
    torch.set_num_threads(1)
    open_clip.add_model_config(MODELS_DIR)
    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, pretrained=None)
    tokenizer = open_clip.get_tokenizer(model_name)
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple | list) else size
    images, captions = pairs(n_pairs, size, seed)
    cfg = model.visual.preprocess_cfg
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    pixels = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
    tokens = tokenizer(captions)
    tokens = tokens[:, : int((tokens != 0).sum(dim=1).max())]
    model.token_embedding.weight.requires_grad_(False)
    loss_fn = open_clip.ClipLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.05)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    losses: list[float] = []
    for _ in range(steps):
        idx = torch.randperm(n_pairs, generator=gen)[:batch]
        img_f = torch.nn.functional.normalize(model.encode_image(pixels[idx]), dim=-1)
        txt_f = torch.nn.functional.normalize(encode_text_short(model, tokens[idx]), dim=-1)
        loss = loss_fn(img_f, txt_f, model.logit_scale.exp())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    torch.set_num_threads(threads)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return FitResult(
        str(path),
        len(losses),
        n_pairs,
        losses[0],
        float(np.mean(losses[-10:])),
        time.monotonic() - started,
    )


def fit_once(model_name: str, path: str | os.PathLike, **params) -> tuple[FitResult, bool]:
    """:func:`fit`, unless ``path`` already holds a fit with the same parameters (recorded
    next to it in ``<path>.fit.json``; the fit is deterministic): ``(result, reused)``."""
    record = Path(f"{path}.fit.json")
    bound = inspect.signature(fit).bind(model_name, path, **params)
    bound.apply_defaults()  # the defaults count: a changed default means a new fit
    want = {k: v for k, v in bound.arguments.items() if k != "path"}
    if record.exists() and Path(path).exists():
        saved = json.loads(record.read_text())
        if saved.get("params") == want:
            return FitResult(**saved["result"]), True
    result = fit(model_name, path, **params)
    record.write_text(json.dumps({"params": want, "result": asdict(result)}, indent=2))
    return result, False
