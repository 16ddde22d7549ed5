"""One mask template for every image (a fixed-position watermark), placed per image size.

- anchor `fill`: the template covers the whole image (resized; aspect ratios must match).
- other anchors (`bottom-right`, `top`, `center`, ...): the template is a patch pinned to that
  corner/edge, `offset` (pixels or % of the image) inward from it, and scaled so that its
  width is `scale` x the image width (`scale` None: its own pixel size). Parts falling
  outside the image are cut off.

With `search` > 0 (`mask_search`), the placed template is then looked for in each image within
±search px of that place (`spl_model.watermark.locate`) and moved to where it matches best; an
image where the match scores below `min_score` raises `NotFound` (a `skipped` row, never a
blind fill).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
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


@lru_cache(maxsize=4)
def _alpha_values(digest: str, data: bytes) -> np.ndarray:
    """An opacity map's 8-bit values (its native size), decoded once per process."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("L"))


def template_alpha(data: bytes, template_shape: tuple[int, int]) -> np.ndarray:
    """The opacity map of a template of `template_shape`; a map of another size is refused."""
    alpha = _alpha_values(hashlib.sha1(data).hexdigest(), data)
    if alpha.shape != template_shape:
        raise ValueError(
            f"the opacity map is {alpha.shape[1]}x{alpha.shape[0]} but the mask template is "
            f"{template_shape[1]}x{template_shape[0]}: they must be the same size"
        )
    return alpha


def place_template(
    data: bytes,
    shape: tuple[int, int],
    anchor: str = "fill",
    offset: tuple[str, str] = ("0", "0"),
    scale: float | None = None,
) -> np.ndarray:
    """The hole map (bool H x W) of the template placed on an image of `shape` = (H, W)."""
    bits = template_hole(data)
    if anchor == "fill":
        return prepare_mask(bits.astype(np.uint8) * 255, shape)
    return _place(bits.astype(np.uint8) * 255, shape, anchor, offset, scale) > 127


def place_alpha(
    data: bytes,
    template_shape: tuple[int, int],
    shape: tuple[int, int],
    anchor: str = "fill",
    offset: tuple[str, str] = ("0", "0"),
    scale: float | None = None,
) -> np.ndarray:
    """The template's opacity map (an 8-bit image the template's size) placed on an image of
    `shape` exactly as `place_template` places the template: uint8 H x W."""
    alpha = template_alpha(data, template_shape)
    if anchor == "fill":
        return np.asarray(Image.fromarray(alpha).resize(shape[::-1], Image.Resampling.BILINEAR))
    return _place(alpha, shape, anchor, offset, scale)


def _place(
    values: np.ndarray,
    shape: tuple[int, int],
    anchor: str,
    offset: tuple[str, str],
    scale: float | None,
) -> np.ndarray:
    """A uint8 patch pinned at `anchor`, `offset` inward, scaled to `scale` x the width."""
    height, width = shape
    th, tw = values.shape
    if scale is not None:
        new_w = max(1, round(width * scale))
        new_h = max(1, round(new_w * th / tw))
        if (new_w, new_h) != (tw, th):
            patch = Image.fromarray(values).resize((new_w, new_h), Image.Resampling.BILINEAR)
            values, th, tw = np.asarray(patch), new_h, new_w
    dx, dy = _pixels(offset[0], width), _pixels(offset[1], height)
    x = _position(anchor, "left", "right", width, tw, dx)
    y = _position(anchor, "top", "bottom", height, th, dy)
    placed = np.zeros((height, width), dtype=np.uint8)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + tw, width), min(y + th, height)
    if x1 > x0 and y1 > y0:
        placed[y0:y1, x0:x1] = values[y0 - y : y1 - y, x0 - x : x1 - x]
    return placed


def _pixels(text: str, size: int) -> int:
    return round(float(text[:-1]) / 100 * size) if text.endswith("%") else int(text)


def _position(anchor: str, low: str, high: str, size: int, extent: int, offset: int) -> int:
    """Top-left coordinate along one axis; offsets point inward from the anchored edge."""
    if low in anchor:
        return offset
    if high in anchor:
        return size - extent - offset
    return (size - extent) // 2 + offset


class NotFound(Exception):
    """The watermark was not found near its expected place in this image."""

    def __init__(self, message: str, score: float) -> None:
        super().__init__(message)
        self.score = score


@dataclass(frozen=True)
class Placement:
    """How a run's mask template lands on each image (see the module docstring)."""

    template: bytes | None
    anchor: str = "fill"
    offset: tuple[str, str] = ("0", "0")
    scale: float | None = None
    search: int = 0
    min_score: float = 0.3
    alpha: bytes | None = None  # the template's opacity map (`mask_alpha`)

    def place(self, rgb: np.ndarray) -> tuple[np.ndarray, float | None, str | None]:
        """(hole map, match score, "dx,dy") for one RGB image; score and shift are None
        without a search."""
        assert self.template is not None
        hole = place_template(self.template, rgb.shape[:2], self.anchor, self.offset, self.scale)
        if self.search <= 0 or not hole.any():
            return hole, None, None
        from spl_model.watermark import locate

        ys, xs = np.nonzero(hole)
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        dx, dy, score = locate(rgb, hole[y0:y1, x0:x1], (x0, y0), self.search)
        if score < self.min_score:
            raise NotFound(
                f"watermark not found within {self.search} px of its place (match score "
                f"{score:.2f} < mask_min_score {self.min_score:g}): left as it is",
                score,
            )
        return _shifted(hole, dx, dy), round(score, 4), f"{dx},{dy}"

    def place_alpha(self, shape: tuple[int, int], shift: str | None) -> np.ndarray:
        """The opacity map (uint8 H x W) where `place` put the template ("dx,dy" `shift`)."""
        assert self.template is not None and self.alpha is not None
        th, tw = template_hole(self.template).shape
        alpha = place_alpha(self.alpha, (th, tw), shape, self.anchor, self.offset, self.scale)
        if shift is None:
            return alpha
        dx, dy = (int(v) for v in shift.split(","))
        return _shifted(alpha, dx, dy)


def _shifted(hole: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """`hole` moved by (dx, dy); what moves past the border is cut off."""
    out = np.zeros_like(hole)
    h, w = hole.shape[:2]
    src = hole[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out
