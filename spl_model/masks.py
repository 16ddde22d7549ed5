"""Masks: any user format in, a boolean hole map out; dilation; hole regions; random masks.

Convention: True / 1 = hole (to be filled), as in the SPL release.
"""

from __future__ import annotations

import cv2
import numba
import numpy as np
from PIL import Image

from .compiled import usable_cwd

THRESHOLD = 127
ASPECT_TOLERANCE = 0.01
RUNS_FROM = 8  # from this radius, dilating by runs beats OpenCV, whose cost grows with the area


class MaskError(ValueError):
    """A mask that cannot be used for its image."""


def prepare_mask(mask: Image.Image | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A boolean H×W hole map from a user mask, resized to `shape` = (H, W) when needed.

    Accepts PIL images (modes 1, L, LA, P, RGB, RGBA, I;16, I, F) and arrays (H×W, H×W×1/3/4,
    bool or integer). Colour masks use their brightest channel; RGBA/LA masks use alpha when the
    alpha varies (an all-opaque alpha carries no shape); palette masks are expanded first.
    A mask whose aspect ratio differs from the image's by more than 1% is refused rather than
    stretched. Values are thresholded at > 127 (on a 0-255 scale) after any resize; boolean and
    0/1 masks count 1 as hole.
    """
    gray = _to_gray(mask)
    height, width = shape
    if gray.shape != (height, width):
        mh, mw = gray.shape
        if mh == 0 or mw == 0 or abs((mw / mh) / (width / height) - 1) > ASPECT_TOLERANCE:
            raise MaskError(
                f"mask is {mw}x{mh} but the image is {width}x{height}: aspect ratios differ, "
                "so the mask cannot be scaled onto the image"
            )
        gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_LINEAR)
    return gray > THRESHOLD


def _to_gray(mask: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 H×W on a 0-255 scale."""
    if isinstance(mask, Image.Image):
        mask = _pil_to_array(mask)
    arr = np.asarray(mask)
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        alpha = arr[..., -1]
        if alpha.min() != alpha.max():
            arr = alpha
        else:
            arr = arr[..., :-1]
    if arr.ndim == 3:
        arr = arr.max(axis=2)
    if arr.ndim != 2:
        raise MaskError(f"mask must be 2-D or H×W×C, got shape {arr.shape}")
    if arr.dtype == bool or (arr.dtype.kind in "iu" and arr.size and arr.max() == 1):
        return (arr > 0).astype(np.uint8) * 255  # boolean or 0/1 masks
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        return np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
    top = 65535 if arr.max(initial=0) > 255 else 255
    return (arr.astype(np.float64) * (255.0 / top)).round().astype(np.uint8)


def _pil_to_array(img: Image.Image) -> np.ndarray:
    if img.mode == "P":
        img = img.convert("RGBA")
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img).astype(np.uint16)
    elif img.mode == "I":
        return np.asarray(img).astype(np.int64).clip(0, 65535).astype(np.uint16)
    elif img.mode == "F":
        return np.asarray(img)
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")
    return np.asarray(img)


def hole_box(mask: np.ndarray, margin: int = 0) -> tuple[int, int, int, int] | None:
    """The hole pixels' bounding box (x0, y0, x1, y1; exclusive ends), grown by `margin` and
    clipped to the map; None when there is no hole. Work that follows the hole runs in it."""
    x, y, w, h = cv2.boundingRect(_uint8(mask))
    if w == 0:
        return None
    height, width = mask.shape
    return (
        max(0, x - margin),
        max(0, y - margin),
        min(width, x + w + margin),
        min(height, y + h + margin),
    )


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow a boolean hole map by `pixels` with a disc (OpenCV's `MORPH_ELLIPSE` element, in
    the hole's box); 0 returns it unchanged."""
    box = hole_box(mask, pixels) if pixels > 0 else None
    if box is None:
        return mask
    x0, y0, x1, y1 = box
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    grown = np.zeros(mask.shape, bool)
    if pixels < RUNS_FROM:
        grown[y0:y1, x0:x1] = cv2.dilate(_uint8(mask[y0:y1, x0:x1]), kernel) > 0
        return grown
    usable_cwd()
    _dilate_runs(np.ascontiguousarray(mask[y0:y1, x0:x1]), *_row_reach(kernel),
                 grown[y0:y1, x0:x1])  # fmt: skip
    return grown


def _row_reach(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far a hole pixel reaches left and right in each row of a dilation by `kernel` (a
    centred element whose rows are single runs, as OpenCV's ellipse is)."""
    on = kernel != 0
    first = on.argmax(axis=1)
    last = on.shape[1] - 1 - on[:, ::-1].argmax(axis=1)
    if not on.any(axis=1).all() or not np.array_equal(on.sum(axis=1), last - first + 1):
        raise ValueError("each row of the element must be one run")
    centre = on.shape[1] // 2
    return (last - centre).astype(np.int64), (centre - first).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _dilate_runs(mask, left, right, out):
    """`out` = `mask` dilated, from its runs: each run of hole pixels in a row marks, in each
    row of the element's reach, the run widened by that row's reach; a count of open runs per
    row (starts less ends) then sets every covered pixel. Exactly `cv2.dilate`, at a cost that
    follows the runs instead of the element's area."""
    height, width = mask.shape
    centre = left.size // 2
    opened = np.zeros((height, width + 1), np.int32)
    for y in range(height):
        x = 0
        while x < width:
            if not mask[y, x]:
                x += 1
                continue
            start = x
            while x < width and mask[y, x]:
                x += 1
            for r in range(left.size):
                row = y + centre - r
                if 0 <= row < height:
                    opened[row, max(start - left[r], 0)] += 1
                    opened[row, min(x + right[r], width)] -= 1
    for y in range(height):
        count = 0
        for x in range(width):
            count += opened[y, x]
            out[y, x] = count > 0


def _uint8(mask: np.ndarray) -> np.ndarray:
    """A hole map as contiguous uint8 0/1 (a view when it is a contiguous bool map)."""
    if mask.dtype == bool:
        return np.ascontiguousarray(mask).view(np.uint8)
    return (mask != 0).astype(np.uint8)


def region_areas(mask: np.ndarray) -> np.ndarray:
    """Pixel counts of the 8-connected hole regions (found in the hole's box)."""
    box = hole_box(mask)
    if box is None:
        return np.zeros(0, np.int64)
    x0, y0, x1, y1 = box
    count, _, stats, _ = cv2.connectedComponentsWithStats(
        _uint8(mask[y0:y1, x0:x1]), connectivity=8
    )
    return stats[1:count, cv2.CC_STAT_AREA].astype(np.int64)


def random_mask(
    height: int,
    width: int,
    rng: np.random.Generator,
    ratio: tuple[float, float] = (0.1, 0.6),
    max_tries: int = 50,
) -> np.ndarray:
    """A free-form hole map (brush strokes and boxes) whose hole ratio falls within `ratio`.

    Strokes are added until the ratio reaches a target drawn uniformly from `ratio`; the result
    is returned once it lands inside the range (the closest attempt after `max_tries`).
    """
    low, high = ratio
    best, best_gap = np.zeros((height, width), bool), float("inf")
    for _ in range(max_tries):
        target = rng.uniform(low, high)
        canvas = np.zeros((height, width), np.uint8)
        while canvas.mean() / 255 < target:
            _draw_shape(canvas, rng)
        hole = canvas > 0
        got = hole.mean()
        if low <= got <= high:
            return hole
        gap = min(abs(got - low), abs(got - high))
        if gap < best_gap:
            best, best_gap = hole, gap
    return best


def _draw_shape(canvas: np.ndarray, rng: np.random.Generator) -> None:
    height, width = canvas.shape
    size = min(height, width)
    if rng.random() < 0.25:  # a box
        bw, bh = (int(rng.uniform(0.05, 0.3) * size) + 1 for _ in range(2))
        x, y = int(rng.integers(0, max(1, width - bw))), int(rng.integers(0, max(1, height - bh)))
        canvas[y : y + bh, x : x + bw] = 255
        return
    x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
    thickness = max(1, int(rng.uniform(0.02, 0.08) * size))
    for _ in range(int(rng.integers(2, 7))):  # a free-form stroke of a few segments
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.25) * size
        nx = float(np.clip(x + length * np.cos(angle), 0, width - 1))
        ny = float(np.clip(y + length * np.sin(angle), 0, height - 1))
        cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), 255, thickness)
        cv2.circle(canvas, (int(nx), int(ny)), thickness // 2, 255, -1)
        x, y = nx, ny
