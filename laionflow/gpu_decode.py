"""The fast image path of the inference job: JPEG bytes decoded and preprocessed as a batch
on the model's device (``torchvision.io.decode_jpeg(device="cuda")`` on a GPU), instead of PIL
in DataLoader workers, which then only read tars and hand over bytes; and the batch size
chosen from the GPU's free memory.

The preprocessing reproduces open_clip's own transform from the model's ``preprocess_cfg``
(resize the shortest side with bicubic antialiasing, centre crop, scale, normalise) with torch
ops, so it runs wherever the tensors are — the same code is tested on CPU. Non-JPEG samples
(PNG, WebP) are decoded by torchvision's generic decoder on CPU and joined to the batch.
"""

from __future__ import annotations

import torch


def available(device: str) -> bool:
    """Batch decoding on ``device``: always on CPU; on CUDA if torchvision's nvjpeg works."""
    if not device.startswith("cuda"):
        return True
    try:
        from torchvision.io import decode_jpeg

        decode_jpeg([torch.frombuffer(bytearray(_tiny_jpeg()), dtype=torch.uint8)], device=device)
        return True
    except Exception:  # noqa: BLE001 - no nvjpeg: fall back to PIL
        return False


def decode(blobs: list[bytes], device: str) -> list[torch.Tensor]:
    """RGB uint8 CHW tensors on ``device``: JPEGs in one batched call, others one by one."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    jpeg = [i for i, b in enumerate(blobs) if b[:3] == b"\xff\xd8\xff"]
    out: list[torch.Tensor | None] = [None] * len(blobs)
    if jpeg:
        decoded = decode_jpeg([tensors[i] for i in jpeg], mode=ImageReadMode.RGB, device=device)
        for i, img in zip(jpeg, decoded, strict=True):
            out[i] = img
    for i, img in enumerate(out):
        if img is None:
            out[i] = decode_image(tensors[i], mode=ImageReadMode.RGB).to(device)
    return out  # type: ignore[return-value]


def preprocess(images: list[torch.Tensor], cfg: dict) -> torch.Tensor:
    """open_clip's eval transform on a list of uint8 CHW tensors → a normalised float batch."""
    import torch.nn.functional as F  # noqa: N812 - torch's own convention

    h, w = cfg["size"] if isinstance(cfg["size"], (tuple, list)) else (cfg["size"],) * 2
    mean = torch.tensor(cfg["mean"], device=images[0].device).view(3, 1, 1)
    std = torch.tensor(cfg["std"], device=images[0].device).view(3, 1, 1)
    mode = "bicubic" if cfg.get("interpolation", "bicubic") == "bicubic" else "bilinear"
    batch = []
    for img in images:
        x = img.float().unsqueeze(0)
        ih, iw = x.shape[-2:]
        scale = max(h / ih, w / iw)  # shortest side to the target size
        nh, nw = max(h, round(ih * scale)), max(w, round(iw * scale))
        x = F.interpolate(x, size=(nh, nw), mode=mode, antialias=True, align_corners=False)
        top, left = (nh - h) // 2, (nw - w) // 2
        x = x[..., top : top + h, left : left + w].clamp(0, 255) / 255.0
        batch.append((x[0] - mean) / std)
    return torch.stack(batch)


def fit_batch_size(free_bytes: int, per_sample_bytes: int, floor: int, cap: int = 4096) -> int:
    """Largest power of two ≥ ``floor`` whose activations use at most half the free memory."""
    n = max(1, floor)
    while n * 2 <= cap and n * 2 * per_sample_bytes <= free_bytes // 2:
        n *= 2
    return n


def batch_size_for(model, device: str, configured: int) -> int:
    """On CUDA, measure one small batch's peak memory per sample and size the batch from the
    free memory (never below the configured size); elsewhere the configured size."""
    if not device.startswith("cuda"):
        return configured
    side = min(model.visual.image_size)
    probe = torch.zeros(8, 3, side, side, device=device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
        model.encode_image(probe)
    per_sample = max(1, (torch.cuda.max_memory_allocated(device) - before) // 8)
    free, _ = torch.cuda.mem_get_info(device)
    return fit_batch_size(free, int(per_sample), configured)


def _tiny_jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    return buf.getvalue()
