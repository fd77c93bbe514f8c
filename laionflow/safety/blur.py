"""Face blurring (DataComp's resharder ``--apply-blur`` idea): each face box is replaced by a
Gaussian blur of itself; every pixel outside the boxes is left exactly as it was. A sample
with faces is therefore re-encoded losslessly (PNG, entry ``png`` instead of ``jpg``); a
sample without faces is copied byte for byte.
"""

from __future__ import annotations

import io
import math

from PIL import Image, ImageFilter


def box_region(box: list[float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The integer pixel rectangle a float box ``[x0, y0, x1, y1]`` covers, clipped."""
    w, h = size
    x0, y0, x1, y1 = box
    return (
        max(0, math.floor(x0)),
        max(0, math.floor(y0)),
        min(w, math.ceil(x1)),
        min(h, math.ceil(y1)),
    )


def blur_image(image: Image.Image, boxes: list[list[float]], radius: float) -> Image.Image:
    """A copy with each box blurred (radius: fraction of the box's longer side)."""
    out = image.convert("RGB").copy()
    for box in boxes:
        x0, y0, x1, y1 = box_region(box, out.size)
        if x1 <= x0 or y1 <= y0:
            continue
        crop = out.crop((x0, y0, x1, y1))
        r = max(2.0, radius * max(x1 - x0, y1 - y0))
        out.paste(crop.filter(ImageFilter.GaussianBlur(r)), (x0, y0))
    return out


def blur_sample(sample: dict, boxes: list[list[float]], radius: float) -> dict:
    """A webdataset sample with its image blurred; unchanged (same bytes) without boxes."""
    from laionflow import samples

    data = {k: v for k, v in sample.items() if k == "__key__" or not k.startswith("__")}
    if not boxes or not samples.has_image(sample):
        return data
    image = samples.open_image(samples.image_bytes(sample))
    buf = io.BytesIO()
    blur_image(image, boxes, radius).save(buf, "PNG")
    for ext in samples.IMAGE_EXT:
        data.pop(ext, None)
    data["png"] = buf.getvalue()
    return data
