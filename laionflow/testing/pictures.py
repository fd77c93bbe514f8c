"""Pixels of the fixture images: smooth random pictures (the default, distinct per seed, no
content) and, for the demo, pictures that show what their caption says — one coloured shape
on a dim, noisy background — so a model fitted on them can answer a text query honestly.

Everything follows from the generator passed in, so a corpus stays deterministic.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

#: colour words and the RGB each names (a gray image's colour word is "gray", see :func:`scene`)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 170, 60),
    "blue": (35, 70, 220),
    "yellow": (240, 215, 40),
}
SHAPES = ("circle", "square", "triangle")


def smooth_noise(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Upsampled 6×6 noise: a smooth picture, distinct per seed, of exactly w×h pixels."""
    small = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small, "RGB").resize((w, h), Image.BICUBIC)


def scene(rng: np.random.Generator, w: int, h: int, gray: bool = False):
    """``(image, colour word, shape word)``: a shape of one of :data:`COLOURS` covering about
    a third of a w×h picture, on a dark low-contrast background. A picture that will be stored
    gray is named "gray", since that is what it shows."""
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    dim = rng.integers(40, 90, size=(6, 6, 1)) + rng.integers(-10, 11, size=(6, 6, 3))
    img = Image.fromarray(dim.clip(0, 255).astype(np.uint8), "RGB").resize((w, h), Image.BICUBIC)
    side = min(w, h)
    r = side * rng.uniform(0.3, 0.42)
    cx = w / 2 + rng.uniform(-0.08, 0.08) * side
    cy = h / 2 + rng.uniform(-0.08, 0.08) * side
    jitter = rng.integers(-20, 21, size=3)
    fill = tuple(int(c) for c in np.clip(np.array(COLOURS[colour]) + jitter, 0, 255))
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        s = r * 0.9
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
    return img, ("gray" if gray else colour), shape


def encode(img: Image.Image, fmt: str) -> bytes:
    """The bytes of ``img`` in one of the corpus formats (gray = L-mode jpeg; exif = a jpeg
    stored rotated with EXIF orientation 6, which a viewer shows upright)."""
    buf = io.BytesIO()
    if fmt == "gray":
        img.convert("L").save(buf, "JPEG", quality=90)
    elif fmt == "exif":
        exif = Image.Exif()
        exif[0x0112] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=90, exif=exif)
    elif fmt == "png":
        img.save(buf, "PNG")
    elif fmt == "webp":
        img.save(buf, "WEBP", quality=85)
    else:
        img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def dominant_colour(img: Image.Image) -> str:
    """The colour word of the most saturated pixels' mean (nearest of :data:`COLOURS`), or
    "gray" when the picture has no saturated pixels: what a person would name it."""
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
    sat = rgb.max(axis=-1) - rgb.min(axis=-1)
    mask = sat > 60
    if mask.mean() < 0.05:
        return "gray"
    mean = rgb[mask].mean(axis=0)
    return min(COLOURS, key=lambda c: float(np.sum((np.array(COLOURS[c]) - mean) ** 2)))
