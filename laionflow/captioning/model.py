"""Loading a captioner and captioning a batch of PIL images, for any ``transformers`` model
that ``AutoProcessor`` + ``AutoModelForImageTextToText`` load (BLIP, GIT, Florence-2,
SmolVLM, Qwen2-VL...): by Hub id, or from a local folder with ``local_files_only`` so that a
path never reaches the network (the way the tiny CLIP is loaded from a checkpoint path).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from laionflow.captioning.config import RecaptionConfig


class MissingModelError(FileNotFoundError):
    pass


def is_local(model: str) -> bool:
    """A folder (or something spelled like a path) rather than a Hub id ``owner/name``."""
    return os.path.isdir(model) or model.startswith(("/", "./", "../", "~"))


def pick_dtype(dtype: str, device: str) -> Any:
    """``auto``: float16 on CUDA, float32 on CPU."""
    import torch

    if dtype == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


@dataclass
class Captioner:
    processor: Any
    model: Any
    device: str
    dtype: Any
    #: what goes to the processor as text: the prompt, or the chat template applied to it
    text: str
    max_new_tokens: int


def prompt_text(processor: Any, cfg: RecaptionConfig) -> str:
    """The prompt as the processor expects it: plain (a caption prefix for BLIP/GIT) or an
    image-plus-text user turn in the processor's chat template (instruction models)."""
    has_template = bool(getattr(processor, "chat_template", None))
    if cfg.chat_template == "no" or (cfg.chat_template == "auto" and not has_template):
        return cfg.prompt
    turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": cfg.prompt}]}]
    return processor.apply_chat_template(turn, add_generation_prompt=True)


def load(cfg: RecaptionConfig, device: str) -> Captioner:
    """The processor and model of ``cfg.model`` in eval mode on ``device``."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    local = is_local(cfg.model)
    if local and not os.path.isdir(os.path.expanduser(cfg.model)):
        raise MissingModelError(f"captioning model folder not found: {cfg.model} (recaption.model)")
    kwargs = {"local_files_only": True} if local else {}
    name = os.path.expanduser(cfg.model) if local else cfg.model
    dtype = pick_dtype(cfg.dtype, device)
    processor = AutoProcessor.from_pretrained(name, **kwargs)
    model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype, **kwargs)
    model.to(device).eval()
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None:  # decoder-only models generate after the prompt: pad on the left
        tokenizer.padding_side = "left"
    return Captioner(
        processor, model, device, dtype, prompt_text(processor, cfg), cfg.max_new_tokens
    )


def caption(cap: Captioner, images: list) -> list[str]:
    """One caption per image (greedy decoding: the same image gives the same caption)."""
    import torch

    inputs = cap.processor(
        images=images, text=[cap.text] * len(images), return_tensors="pt", padding=True
    )
    inputs = {
        k: v.to(cap.device, dtype=cap.dtype) if v.is_floating_point() else v.to(cap.device)
        for k, v in inputs.items()
        if hasattr(v, "to")
    }
    with torch.inference_mode():
        out = cap.model.generate(**inputs, max_new_tokens=cap.max_new_tokens, do_sample=False)
    ids = inputs.get("input_ids")
    if ids is not None and out.shape[1] > ids.shape[1] and torch.equal(out[:, : ids.shape[1]], ids):
        out = out[:, ids.shape[1] :]  # decoder-only: the prompt comes back first
    texts = cap.processor.batch_decode(out, skip_special_tokens=True)
    return [" ".join(t.split()) for t in texts]
