"""Real photographs for the fixtures: scikit-image ships them in its wheel (astronaut and
cameraman faces, a cat, coffee, a text page, a chalkboard, a rocket), so the safety models
see real faces and real text, offline. Served by the fixture server like the synthetic
images; :func:`add_to_corpus` appends them as extra metadata rows of a built corpus.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

#: name -> (has a face, has text)
PHOTOS: dict[str, tuple[bool, bool]] = {
    "astronaut": (True, False),
    "camera": (True, False),
    "chelsea": (False, False),
    "coffee": (False, False),
    "page": (False, True),
    "text": (False, True),
    "rocket": (False, False),
}


def photo(name: str) -> Image.Image:
    """A scikit-image photograph as an RGB image."""
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def encode(image: Image.Image, fmt: str = "PNG", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def near_copy(image: Image.Image, scale: float = 0.8, quality: int = 70) -> bytes:
    """A resized, re-encoded (JPEG) copy: what a PDQ list must still match."""
    w, h = image.size
    return encode(image.resize((int(w * scale), int(h * scale)), Image.BICUBIC), "JPEG", quality)


def at_least(image: Image.Image, side: int) -> Image.Image:
    """Upscaled so the short side is at least ``side`` (metadata size filters keep it)."""
    ratio = side / min(image.size)
    if ratio <= 1:
        return image
    return image.resize((round(image.width * ratio), round(image.height * ratio)), Image.BICUBIC)


def write_photos(folder: str | Path, names=tuple(PHOTOS), min_side: int = 0) -> dict[str, str]:
    """``folder/<name>.png`` for each photo; returns name -> file name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        (folder / f"{name}.png").write_bytes(encode(at_least(photo(name), min_side)))
        out[name] = f"{name}.png"
    return out


def add_to_corpus(corpus_dir: str | Path, base_url: str, min_side: int = 512) -> list[str]:
    """Append one row per photo to the corpus's first metadata part (its own columns, values
    every sd21 rule keeps); the photos are served under ``photos/``. Returns their URLs."""
    corpus_dir = Path(corpus_dir)
    files = write_photos(corpus_dir / "photos", min_side=min_side)
    meta = sorted((corpus_dir / "metadata").glob("part-00000*.parquet"))[0]
    df = pd.read_parquet(meta)
    rows = []
    for name, file in files.items():
        with Image.open(corpus_dir / "photos" / file) as img:
            w, h = img.size
        url = f"{base_url}/photos/{file}"
        rows.append(_row(df.columns, url, f"a photograph: {name}", w, h))
    new = pd.DataFrame(rows)[list(df.columns)]
    for col in df.columns:  # the corpus's own types (its hash is a string, say)
        if df[col].dtype == object:
            new[col] = [None if pd.isna(v) else str(v) for v in new[col]]
        else:
            new[col] = new[col].astype(df[col].dtype)
    df = pd.concat([df, new], ignore_index=True)
    df.to_parquet(meta, index=False)
    return [r[_col(df.columns, "URL")] for r in rows]


def _col(columns, name: str) -> str:
    return name if name in columns else name.lower()


def _row(columns, url: str, caption: str, w: int, h: int) -> dict:
    """A metadata row that passes the quality rules (similarity, aesthetic, punsafe...)."""
    digest = int(hashlib.sha1(url.encode()).hexdigest()[:12], 16)
    values = {
        "URL": url,
        "TEXT": caption,
        "WIDTH": w,
        "HEIGHT": h,
        "similarity": 0.35,
        "punsafe": 0.01,
        "pwatermark": 0.05,
        "AESTHETIC_SCORE": 6.0,
        "aesthetic": 6.0,
        "hash": digest,
        "SAMPLE_ID": str(digest),
        "LICENSE": "?",
        "NSFW": "UNLIKELY",
        "LANGUAGE": "en",
    }
    row = {c: values.get(c, values.get(c.upper(), np.nan)) for c in columns}
    for c in columns:
        if c in ("url", "caption", "width", "height"):
            row[c] = values[{"url": "URL", "caption": "TEXT"}.get(c, c.upper())]
    return row
