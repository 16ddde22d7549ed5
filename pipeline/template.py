"""One mask template for every image (a fixed-position watermark), placed per image size.

- anchor `fill`: the template covers the whole image (resized; aspect ratios must match).
- other anchors (`bottom-right`, `top`, `center`, ...): the template is a patch pinned to that
  corner/edge, `offset` (pixels or % of the image) inward from it, and scaled so that its
  width is `scale` x the image width (`scale` None: its own pixel size). Parts falling
  outside the image are cut off.
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache

import numpy as np
from PIL import Image

from spl_model.masks import prepare_mask


@lru_cache(maxsize=4)
def _template_bits(digest: str, data: bytes) -> np.ndarray:
    """The template's own hole map (bool, its native size), decoded once per process."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return prepare_mask(img, (img.height, img.width))


def template_hole(data: bytes) -> np.ndarray:
    return _template_bits(hashlib.sha1(data).hexdigest(), data)


def place_template(
    data: bytes,
    shape: tuple[int, int],
    anchor: str = "fill",
    offset: tuple[str, str] = ("0", "0"),
    scale: float | None = None,
) -> np.ndarray:
    """The hole map (bool H x W) of the template placed on an image of `shape` = (H, W)."""
    height, width = shape
    bits = template_hole(data)
    if anchor == "fill":
        return prepare_mask(bits.astype(np.uint8) * 255, (height, width))
    th, tw = bits.shape
    if scale is not None:
        new_w = max(1, round(width * scale))
        new_h = max(1, round(new_w * th / tw))
        if (new_w, new_h) != (tw, th):
            patch = Image.fromarray(bits.astype(np.uint8) * 255).resize(
                (new_w, new_h), Image.Resampling.BILINEAR
            )
            bits = np.asarray(patch) > 127
            th, tw = new_h, new_w
    dx, dy = _pixels(offset[0], width), _pixels(offset[1], height)
    x = _position(anchor, "left", "right", width, tw, dx)
    y = _position(anchor, "top", "bottom", height, th, dy)
    hole = np.zeros((height, width), dtype=bool)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + tw, width), min(y + th, height)
    if x1 > x0 and y1 > y0:
        hole[y0:y1, x0:x1] = bits[y0 - y : y1 - y, x0 - x : x1 - x]
    return hole


def _pixels(text: str, size: int) -> int:
    return round(float(text[:-1]) / 100 * size) if text.endswith("%") else int(text)


def _position(anchor: str, low: str, high: str, size: int, extent: int, offset: int) -> int:
    """Top-left coordinate along one axis; offsets point inward from the anchored edge."""
    if low in anchor:
        return offset
    if high in anchor:
        return size - extent - offset
    return (size - extent) // 2 + offset
