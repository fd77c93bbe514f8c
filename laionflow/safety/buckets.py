"""SD aspect-ratio buckets (SD 2.x / SDXL style): each sample gets the bucket whose aspect
ratio is nearest its own (in log ratio, so 2:1 and 1:2 are equally far from 1:1), as the
trainers compute it at load time — here computed once, from the original size (the image as
published) and from the stored size (after img2dataset's resize), and written next to the
part's annotations as ``images/part_NNNNN_buckets.parquet``.
"""

from __future__ import annotations

import math

from laionflow.safety.config import BucketConfig


def nearest(width: float | None, height: float | None, sizes: list[tuple[int, int]]) -> str | None:
    """``"WxH"`` of the bucket nearest the aspect ratio, None without a size."""
    if not width or not height or width <= 0 or height <= 0:
        return None
    ratio = math.log(width / height)
    w, h = min(sizes, key=lambda s: (abs(math.log(s[0] / s[1]) - ratio), -s[0] * s[1]))
    return f"{w}x{h}"


def assign(rows: list[dict], cfg: BucketConfig) -> list[dict]:
    """Per sample (shard-parquet rows): key, sizes, ``bucket`` (by the original size, the
    stored one when the original is unknown) and ``stored_bucket``."""
    sizes = cfg.bucket_sizes()
    out = []
    for r in rows:
        stored = nearest(r.get("width"), r.get("height"), sizes)
        original = nearest(r.get("original_width"), r.get("original_height"), sizes)
        out.append(
            {
                "key": r["key"],
                "url": r.get("url"),
                "width": r.get("width"),
                "height": r.get("height"),
                "original_width": r.get("original_width"),
                "original_height": r.get("original_height"),
                "bucket": original or stored,
                "stored_bucket": stored,
            }
        )
    return out
