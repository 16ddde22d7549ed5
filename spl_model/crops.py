"""Full-resolution strategies: which square windows of an image the 256² model sees.

- `resize`: one window, the whole image (reflection-padded to a square, then resized to 256²;
  at 256² it is exactly the paper's evaluation input).
- `crop`: one square context window per group of nearby hole regions, a few times the group's
  size (at least `min_side` px), clamped to the image; windows that cannot be square because the
  image is too narrow are padded by reflection.
The model sees every hole pixel inside a window as a hole, but only the hole pixels of the
window's own group are pasted back, so overlapping windows never fight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .masks import dilate

MODEL_SIZE = 256  # the side of every window the network sees


@dataclass(frozen=True)
class Window:
    """A region of an image to inpaint: `box` = (x0, y0, x1, y1), exclusive ends."""

    box: tuple[int, int, int, int]
    paste: np.ndarray  # bool, box-sized: the hole pixels this window fills

    @property
    def side(self) -> int:
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, y1 - y0)


def plan_windows(
    hole: np.ndarray,
    strategy: str = "crop",
    context: float = 3.0,
    min_side: int = MODEL_SIZE,
    merge_gap: int = 32,
) -> list[Window]:
    """Windows covering every hole pixel exactly once."""
    height, width = hole.shape
    if not hole.any():
        return []
    if strategy == "resize":
        return [Window((0, 0, width, height), hole)]
    if strategy != "crop":
        raise ValueError(f"unknown strategy {strategy!r}; choose crop or resize")
    # Regions closer than `merge_gap` share a window: group by components of the grown mask,
    # found inside the holes' bounding box grown by `merge_gap` (the image outside it is empty).
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(hole).view(np.uint8))
    cx0, cy0 = max(0, x - merge_gap), max(0, y - merge_gap)
    cx1, cy1 = min(width, x + w + merge_gap), min(height, y + h + merge_gap)
    near = hole[cy0:cy1, cx0:cx1]
    count, groups, stats, _ = cv2.connectedComponentsWithStats(
        dilate(near, merge_gap).astype(np.uint8), connectivity=8
    )
    windows = []
    for label in range(1, count):
        gx, gy, gw, gh = (int(v) for v in stats[label, :4])
        ys, xs = np.nonzero(
            near[gy : gy + gh, gx : gx + gw] & (groups[gy : gy + gh, gx : gx + gw] == label)
        )
        if len(xs) == 0:
            continue
        ys, xs = ys + gy + cy0, xs + gx + cx0  # image coordinates
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        extent = max(x1 - x0, y1 - y0)
        side = max(math.ceil(context * extent), extent, min_side)  # the group always fits
        bx0, bx1 = _span(x0, x1, side, width)
        by0, by1 = _span(y0, y1, side, height)
        paste = np.zeros((by1 - by0, bx1 - bx0), bool)
        paste[ys - by0, xs - bx0] = True
        windows.append(Window((bx0, by0, bx1, by1), paste))
    return windows


def _span(lo: int, hi: int, side: int, limit: int) -> tuple[int, int]:
    """A `side`-long interval centred on [lo, hi), shifted inside [0, limit), clamped to it."""
    if side >= limit:
        return 0, limit
    start = (lo + hi) // 2 - side // 2
    start = min(max(start, 0), limit - side)
    return int(start), int(start + side)


def square_pad(crop: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad an H×W(×C) crop to a square by reflection; returns it and the (top, left) offset."""
    height, width = crop.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    if side == height and side == width:
        return crop, (0, 0)
    pad = [(top, side - height - top), (left, side - width - left)] + [(0, 0)] * (crop.ndim - 2)
    return np.pad(crop, pad, mode="symmetric"), (top, left)


def to_model_size(crop: np.ndarray, hole: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize a square image crop and its hole map to size², never shrinking a hole away."""
    side = crop.shape[0]
    if side == size:
        return crop, hole
    if side > size:
        image = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        cover = cv2.resize(hole.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        return image, cover > 0  # any hole pixel under a model pixel makes it a hole
    image = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC)
    grown = cv2.resize(hole.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    return image, grown > 0


def from_model_size(prediction: np.ndarray, side: int) -> np.ndarray:
    """Resize a size²×3 uint8 prediction back to side² (area when shrinking, cubic when
    growing)."""
    if prediction.shape[0] == side:
        return prediction
    interp = cv2.INTER_AREA if side < prediction.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(prediction, (side, side), interpolation=interp)


@dataclass(frozen=True)
class ModelWindow:
    """A window cut out for the model: its place in the image and its model-size pixels."""

    window: Window
    offset: tuple[int, int]  # (top, left) of the box inside its square, reflection-padded form
    image: np.ndarray  # size×size×3 uint8, what the model sees
    hole: np.ndarray  # size×size bool: every hole pixel in the window, other groups' included


def cut_windows(
    image: np.ndarray,
    hole: np.ndarray,
    strategy: str = "crop",
    context: float = 3.0,
    min_side: int = MODEL_SIZE,
    size: int = MODEL_SIZE,
) -> list[ModelWindow]:
    """The model-size windows of one image and its (already dilated) hole map."""
    cut = []
    for window in plan_windows(hole, strategy, context, min_side):
        x0, y0, x1, y1 = window.box
        crop, offset = square_pad(image[y0:y1, x0:x1])
        square_hole, _ = square_pad(hole[y0:y1, x0:x1])
        crop, square_hole = to_model_size(crop, square_hole, size)
        cut.append(ModelWindow(window, offset, np.ascontiguousarray(crop), square_hole))
    return cut


def paste_window(
    output: np.ndarray, window: Window, offset: tuple[int, int], prediction: np.ndarray
) -> np.ndarray:
    """Paste a size×size×3 uint8 prediction of `window` (cut at `offset` in its padded square)
    into `output`, in place and only on the window's own hole pixels; returns the box-sized map
    of the pixels that changed."""
    x0, y0, x1, y1 = window.box
    top, left = offset
    restored = from_model_size(prediction, window.side)
    restored = restored[top : top + y1 - y0, left : left + x1 - x0]
    target = output[y0:y1, x0:x1]
    changed = window.paste & np.any(target != restored, axis=2)
    target[window.paste] = restored[window.paste]
    return changed
