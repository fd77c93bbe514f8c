"""Deterministic LAION-400M-like fixture: metadata parts (parquet and csv, real column
names) pointing at images served over HTTP, with planted duplicates, dead URLs and rows that
each filter rule rejects. Everything follows from ``seed``, so tests can predict counts.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from laionflow.testing import pictures

FORMATS = ("jpeg", "png", "webp", "gray", "exif")  # gray = L-mode jpeg; exif = rotated jpeg
FORMAT_WEIGHTS = (0.5, 0.2, 0.15, 0.1, 0.05)
EXT = {"jpeg": "jpg", "png": "png", "webp": "webp", "gray": "jpg", "exif": "jpg"}
#: the column sets of the LAION releases, as they spell them
FLAVOURS: dict[str, tuple[str, ...]] = {
    "laion400m": (
        "SAMPLE_ID",
        "URL",
        "TEXT",
        "HEIGHT",
        "WIDTH",
        "LICENSE",
        "NSFW",
        "similarity",
        "punsafe",
        "pwatermark",
        "hash",
    ),
    "laion2b_aesthetics": (
        "URL",
        "TEXT",
        "WIDTH",
        "HEIGHT",
        "similarity",
        "punsafe",
        "pwatermark",
        "AESTHETIC_SCORE",
        "hash",
    ),
    "laion_art": (
        "URL",
        "TEXT",
        "WIDTH",
        "HEIGHT",
        "similarity",
        "LANGUAGE",
        "hash",
        "pwatermark",
        "punsafe",
        "aesthetic",
    ),
    "aesthetics_12m_umap": (
        "URL",
        "TEXT",
        "WIDTH",
        "HEIGHT",
        "similarity",
        "hash",
        "punsafe",
        "pwatermark",
        "aesthetic",
        "x",
        "y",
    ),
}
WORDS = (
    "red cat sofa mountain river city night blue car old house beach dog tree sky "
    "flower portrait vintage poster logo food bread street bridge snow forest"
).split()


@dataclass
class CorpusSpec:
    rows: int = 2000
    parts: int = 4
    seed: int = 0
    dead_fraction: float = 0.05
    duplicate_fraction: float = 0.03
    low_similarity_fraction: float = 0.04
    nsfw_fraction: float = 0.03
    small_fraction: float = 0.03
    formats: tuple[str, ...] = ("parquet", "csv")  # alternated over parts
    flavour: str = "laion400m"  # which LAION column set to write (see FLAVOURS)
    low_aesthetic_fraction: float = 0.04
    unsafe_fraction: float = 0.03
    wide_fraction: float = 0.03
    foreign_fraction: float = 0.04
    min_side: int = 96
    max_side: int = 640
    #: groups of planted near-duplicates: an image, an exact copy and a resized copy, each at
    #: its own URL with its own caption (exact url+caption dedup keeps all three)
    near_duplicates: int = 0
    #: pictures that show their caption ("red circle #12", see :mod:`pictures`), for the demo
    semantic: bool = False


@dataclass
class CorpusManifest:
    base_url: str
    spec: dict
    metadata_files: list[str]
    metadata_urls: list[str]
    rows: int
    dead_urls: int
    duplicates: int
    images: int
    planted: dict = field(default_factory=dict)
    near_duplicate_groups: list[list[str]] = field(default_factory=list)


def _image_bytes(rng: np.random.Generator, w: int, h: int, fmt: str) -> bytes:
    """A smooth random picture (upsampled noise), distinct per seed, of exactly w×h pixels."""
    return pictures.encode(pictures.smooth_noise(rng, w, h), fmt)


def _plant_near_duplicates(df, out: Path, base_url: str, spec: CorpusSpec, rng) -> list:
    """Pick clean live rows (no filter rule of any recipe rejects them) and add, per row, an
    exact copy and a 60 % resized copy of its image under new names and captions."""
    clean = df[
        ~df["URL"].str.contains("/gone-")
        & (df["similarity"] >= 0.3)
        & (df["NSFW"] != "NSFW")
        & (df["WIDTH"] >= 128)
        & (df["HEIGHT"] >= 128)
        & (df["WIDTH"] <= 3 * df["HEIGHT"])
        & (df["HEIGHT"] <= 3 * df["WIDTH"])
        & (df["punsafe"] < 0.98)
        & (df["AESTHETIC_SCORE"] >= 4.5)
        & (df["LANGUAGE"] == "en")
    ]
    picks = rng.choice(clean.index.to_numpy(), size=spec.near_duplicates, replace=False)
    groups = []
    for g, i in enumerate(sorted(picks)):
        src = df.loc[i]
        name = src["URL"].rsplit("/", 1)[1]
        data = (out / "images" / name).read_bytes()
        exact = f"dupx-{g:04d}-{name}"
        (out / "images" / exact).write_bytes(data)
        img = Image.open(io.BytesIO(data)).convert("RGB")
        small = img.resize((max(1, img.width * 3 // 5), max(1, img.height * 3 // 5)), Image.LANCZOS)
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=92)
        resized = f"dupr-{g:04d}.jpg"
        (out / "images" / resized).write_bytes(buf.getvalue())
        copies = pd.DataFrame([src, src])
        copies["URL"] = [f"{base_url}/images/{exact}", f"{base_url}/images/{resized}"]
        copies["TEXT"] = [f"{src['TEXT']} (copy)", f"{src['TEXT']} (resized)"]
        copies["SAMPLE_ID"] = [str(3_000_000 + 2 * g), str(3_000_001 + 2 * g)]
        groups.append(([src["URL"], *copies["URL"]], copies))
    return groups


def _live_rows(out: Path, base_url: str, spec: CorpusSpec, rng) -> tuple[list[dict], int]:
    """One metadata row per sample; the image file written unless the URL is to be dead."""
    n = spec.rows
    kinds = rng.choice(len(FORMATS), size=n, p=FORMAT_WEIGHTS)
    widths = rng.integers(spec.min_side, spec.max_side + 1, size=n)
    heights = rng.integers(spec.min_side, spec.max_side + 1, size=n)
    rows, dead = [], 0
    for i in range(n):
        fmt = FORMATS[kinds[i]]
        name = f"{i:06d}.{EXT[fmt]}"
        w, h = int(widths[i]), int(heights[i])
        if rng.random() < spec.dead_fraction:
            dead += 1
            name = f"gone-{i:06d}.jpg"
        caption = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) + f" #{i}"
        img_rng = np.random.default_rng([spec.seed, i])  # pixels never draw from ``rng``
        if spec.semantic:
            img, colour, shape = pictures.scene(img_rng, w, h, gray=fmt == "gray")
            caption = f"{colour} {shape} #{i}"
        if not name.startswith("gone-"):
            data = pictures.encode(img, fmt) if spec.semantic else _image_bytes(img_rng, w, h, fmt)
            (out / "images" / name).write_bytes(data)
        rows.append(
            {
                "SAMPLE_ID": str(1_000_000 + i),
                "URL": f"{base_url}/images/{name}",
                "TEXT": caption,
                "HEIGHT": h,
                "WIDTH": w,
                "LICENSE": "?" if rng.random() < 0.8 else "creativecommons.org/licenses/by/4.0",
                "NSFW": "UNLIKELY",
                "similarity": float(np.round(rng.uniform(0.3, 0.45), 6)),
                "punsafe": float(np.round(rng.uniform(0, 0.2), 6)),
                "pwatermark": float(np.round(rng.uniform(0, 0.5), 6)),
                "hash": str(int(rng.integers(-(2**62), 2**62))),
            }
        )
    return rows, dead


def _plant_filtered(df: pd.DataFrame, spec: CorpusSpec, rng) -> dict:
    """Rows each filter rule must remove (on live URLs too, so they are not "dead" as well)."""
    n, planted = len(df), {}
    for col, frac, value in (
        ("similarity", spec.low_similarity_fraction, 0.1),
        ("NSFW", spec.nsfw_fraction, "NSFW"),
    ):
        idx = rng.choice(n, size=int(n * frac), replace=False)
        df.loc[idx, col] = value
        planted[col] = len(idx)
    small = rng.choice(n, size=int(n * spec.small_fraction), replace=False)
    df.loc[small, "WIDTH"] = 32
    planted["small"] = len(small)
    df["AESTHETIC_SCORE"] = np.round(rng.uniform(4.6, 7.5, size=n), 4)
    df["LANGUAGE"] = "en"
    df["x"], df["y"] = np.round(rng.normal(size=n), 4), np.round(rng.normal(size=n), 4)
    for col, frac, value in (
        ("AESTHETIC_SCORE", spec.low_aesthetic_fraction, 3.9),
        ("punsafe", spec.unsafe_fraction, 0.995),
        ("LANGUAGE", spec.foreign_fraction, "de"),
    ):
        idx = rng.choice(n, size=int(n * frac), replace=False)
        df.loc[idx, col] = value
        planted[col] = len(idx)
    wide = rng.choice(n, size=int(n * spec.wide_fraction), replace=False)
    df.loc[wide, "WIDTH"] = df.loc[wide, "HEIGHT"] * 4  # declared aspect ratio 4 (> 3)
    planted["wide"] = len(wide)
    df["aesthetic"] = df["AESTHETIC_SCORE"]
    return planted


def _write_parts(df: pd.DataFrame, out: Path, base_url: str, spec: CorpusSpec):
    """The metadata parts in the spec's formats; returns (files, URLs)."""
    files, urls = [], []
    bounds = np.linspace(0, len(df), spec.parts + 1).astype(int)
    for part in range(spec.parts):
        chunk = df.iloc[bounds[part] : bounds[part + 1]]
        fmt = spec.formats[part % len(spec.formats)]
        if fmt == "csv":  # the csv releases spell the columns in lower case
            chunk = chunk.rename(
                columns={"URL": "url", "TEXT": "caption", "WIDTH": "width", "HEIGHT": "height"}
            )
            name = f"part-{part:05d}.csv"
            chunk.to_csv(out / "metadata" / name, index=False)
        else:
            name = f"part-{part:05d}.snappy.parquet"
            chunk.to_parquet(out / "metadata" / name, index=False)
        files.append(str(out / "metadata" / name))
        urls.append(f"{base_url}/metadata/{name}")
    return files, urls


def build_corpus(
    out_dir: str | Path, base_url: str, spec: CorpusSpec | None = None
) -> CorpusManifest:
    """Write ``images/`` and ``metadata/`` under ``out_dir``; URLs point at ``base_url``."""
    spec = spec or CorpusSpec()
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "metadata").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    n = spec.rows
    rows, dead = _live_rows(out, base_url, spec, rng)
    df = pd.DataFrame(rows)
    planted = _plant_filtered(df, spec, rng)
    # exact url+caption duplicates of earlier rows (other columns may differ, as in the wild)
    n_dup = int(n * spec.duplicate_fraction)
    src = rng.choice(n, size=n_dup, replace=False)
    dups = df.loc[src].copy()
    dups["SAMPLE_ID"] = [str(2_000_000 + k) for k in range(n_dup)]
    dups["similarity"] = np.round(rng.uniform(0.3, 0.45, size=n_dup), 6)
    df = pd.concat([df, dups], ignore_index=True)
    groups = _plant_near_duplicates(df, out, base_url, spec, rng) if spec.near_duplicates else []
    if groups:
        df = pd.concat([df, *(g[1] for g in groups)], ignore_index=True)
    df = df.sample(frac=1.0, random_state=spec.seed).reset_index(drop=True)
    df = df[list(FLAVOURS[spec.flavour])]
    files, urls = _write_parts(df, out, base_url, spec)
    manifest = CorpusManifest(
        base_url=base_url,
        spec=asdict(spec),
        metadata_files=files,
        metadata_urls=urls,
        rows=len(df),
        dead_urls=dead,
        duplicates=n_dup,
        images=n - dead,
        planted=planted,
        near_duplicate_groups=[g[0] for g in groups],
    )
    (out / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2))
    return manifest
