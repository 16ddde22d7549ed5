"""Full-resolution strategies: which square windows of an image the 256² model sees.

The model sees holes near the scale it was trained on, so windows are planned from each hole
group's shape (groups: hole regions closer than `merge_gap`), not from its bounding box:

- **Thin groups** (text, strokes, logo outlines: thickness, about twice the largest distance
  from a hole pixel to a known one, not counting the few pixels where strokes cross, at most
  `THIN` model px once seen at scale `s` <= `MAX_TILE_SCALE`)
  are covered by overlapping square tiles of side 256·s. A tile's *core* (the tile less a context
  margin on each side) owns the group's hole pixels inside it; neighbouring cores overlap, and
  their predictions cross-fade over the overlap, so no tile seam shows.
- **Thick groups** are seen twice, coarse to fine: first one window `context` times the group's
  extent (downscaled, so the model sees the whole object and its surroundings), then, with that
  coarse fill as the pre-fill, one refining tile whose core holds the whole group, at the
  smallest scale where it fits (when that is finer by `REFINE_STEP`). Generators that do not
  read a pre-fill (the paper's) keep the coarse fill: they would mask the tile's input away.
- `resize`: one window, the whole image (reflection-padded to a square, then resized to 256²;
  at 256² it is exactly the paper's evaluation input).

The model sees every hole pixel inside a window as a hole, but a window pastes only hole pixels
of its own group, so groups never fight. Planning, cutting and pasting work inside the holes'
boxes: their cost follows the hole, not the image.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numba
import numpy as np

from .compiled import usable_cwd
from .masks import dilate, hole_box
from .prefill import prefill_holes

MODEL_SIZE = 256  # the side of every window the network sees
THIN = 48  # the thickest hole (model px) a tile at its scale takes
MIN_TILE_SCALE = 1.0  # thin holes are seen at native scale ...
MAX_TILE_SCALE = 2.0  # ... and never at more than this downscale
MARGIN = 48  # context (model px) around a tile's core on each side
OVERLAP = 32  # model px shared by neighbouring cores, cross-faded
REFINE_STEP = 1.5  # a refining tile is at least this much finer than the coarse look
THICK_QUANTILE = 0.95  # thickness from this quantile of the distances (junctions don't count)
jit = numba.njit(cache=True, nogil=True)


@dataclass(frozen=True)
class Window:
    """A region of an image to inpaint: `box` = (x0, y0, x1, y1), exclusive ends.

    `paste` (bool, box-sized) marks the hole pixels this window writes. Tiles own the pixels of
    their `core` (image coordinates) and fade out over `feather` px at core edges inside the
    image; `group` names the hole group, whose tiles are blended together. `prefilled`: the
    window is cut from an image whose hole already holds a coarse fill (a refining pass).
    """

    box: tuple[int, int, int, int]
    paste: np.ndarray
    core: tuple[int, int, int, int] | None = None
    feather: int = 0
    group: int = 0
    prefilled: bool = False

    @property
    def side(self) -> int:
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, y1 - y0)

    @property
    def offset(self) -> tuple[int, int]:
        """(top, left) of the box inside its reflection-padded square (`square_pad`)."""
        x0, y0, x1, y1 = self.box
        return (self.side - (y1 - y0)) // 2, (self.side - (x1 - x0)) // 2


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one image: `first` (coarse looks at thick groups, pasted into a working
    copy) and `final` (what the output is pasted from)."""

    first: list[Window]
    final: list[Window]

    def __len__(self) -> int:
        return len(self.first) + len(self.final)

    @property
    def scale(self) -> float:
        """The largest downscale any window is seen at (the stats' `crop_scale`)."""
        return max((w.side / MODEL_SIZE for w in (*self.first, *self.final)), default=0.0)


def plan_windows(
    hole: np.ndarray,
    strategy: str = "crop",
    context: float = 3.0,
    min_side: int = MODEL_SIZE,
    merge_gap: int = 32,
    refine: bool = True,
) -> WindowPlan:
    """The windows covering every hole pixel (see the module docstring). `refine`: thick
    groups get a refining tile over their coarse fill (for generators that read a pre-fill)."""
    height, width = hole.shape
    if not hole.any():
        return WindowPlan([], [])
    if strategy == "resize":
        return WindowPlan([], [Window((0, 0, width, height), hole)])
    if strategy != "crop":
        raise ValueError(f"unknown strategy {strategy!r}; choose crop or resize")
    first: list[Window] = []
    final: list[Window] = []
    for group, (ys, xs, thickness) in enumerate(_groups(hole, merge_gap)):
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
        scale = max(MIN_TILE_SCALE, thickness / THIN)
        if scale <= MAX_TILE_SCALE:
            final += _tiles(ys, xs, (x0, y0, x1, y1), scale, (height, width), group)
            continue
        extent = max(x1 - x0, y1 - y0)
        side = max(math.ceil(context * extent), extent, min_side)  # the group always fits
        bx0, bx1 = _span(x0, x1, side, width)
        by0, by1 = _span(y0, y1, side, height)
        coarse = Window((bx0, by0, bx1, by1), _paste(ys, xs, bx0, by0, bx1, by1), group=group)
        fit = max(MAX_TILE_SCALE, (extent + 2) / (MODEL_SIZE - 2 * MARGIN))
        if not refine or MODEL_SIZE * fit * REFINE_STEP > coarse.side:
            final.append(coarse)  # no pre-fill to read, or no finer look to be had
            continue
        first.append(coarse)
        final += _tiles(ys, xs, (x0, y0, x1, y1), fit, (height, width), group, prefilled=True)
    return WindowPlan(first, final)


def _groups(hole: np.ndarray, merge_gap: int) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """(ys, xs, thickness) of each group of hole regions closer than `merge_gap`, in image
    coordinates, found inside the holes' bounding box grown by `merge_gap`."""
    cx0, cy0, cx1, cy1 = hole_box(hole, merge_gap)  # plan_windows saw a hole
    near = np.ascontiguousarray(hole[cy0:cy1, cx0:cx1]).view(np.uint8)
    count, groups, stats, _ = cv2.connectedComponentsWithStats(
        dilate(near.astype(bool), merge_gap).astype(np.uint8), connectivity=8
    )
    # Distance to the nearest known pixel; outside the image counts as known.
    distance = cv2.distanceTransform(
        np.pad(near, 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
    )[1:-1, 1:-1]
    for label in range(1, count):
        gx, gy, gw, gh = (int(v) for v in stats[label, :4])
        mine = near[gy : gy + gh, gx : gx + gw].astype(bool)
        mine &= groups[gy : gy + gh, gx : gx + gw] == label
        ys, xs = np.nonzero(mine)
        if len(xs):
            inner = distance[gy : gy + gh, gx : gx + gw][mine]
            thickness = 2.0 * float(np.quantile(inner, THICK_QUANTILE)) / THICK_QUANTILE
            yield ys + gy + cy0, xs + gx + cx0, thickness


def _tiles(
    ys: np.ndarray,
    xs: np.ndarray,
    bounds: tuple[int, int, int, int],
    scale: float,
    shape: tuple[int, int],
    group: int,
    prefilled: bool = False,
) -> list[Window]:
    """Overlapping tiles at `scale` whose cores cover the group's pixels (ys, xs)."""
    height, width = shape
    side = round(MODEL_SIZE * scale)
    core = side - 2 * round(MARGIN * scale)
    feather = round(OVERLAP * scale)
    x0, y0, x1, y1 = bounds
    tiles = []
    for cy0, cy1 in _cores(y0, y1, core, core - feather, height):
        for cx0, cx1 in _cores(x0, x1, core, core - feather, width):
            inside = (xs >= cx0) & (xs < cx1) & (ys >= cy0) & (ys < cy1)
            if not inside.any():
                continue
            bx0, bx1 = _span(cx0, cx1, side, width)
            by0, by1 = _span(cy0, cy1, side, height)
            paste = _paste(ys[inside], xs[inside], bx0, by0, bx1, by1)
            tiles.append(
                Window((bx0, by0, bx1, by1), paste, (cx0, cy0, cx1, cy1), feather, group, prefilled)
            )
    return tiles


def _cores(lo: int, hi: int, core: int, stride: int, limit: int) -> list[tuple[int, int]]:
    """Intervals of length `core` (clamped to [0, limit)) covering [lo, hi), spaced evenly at
    most `stride` apart."""
    if hi - lo <= core:
        return [_span(lo, hi, core, limit)]
    count = math.ceil((hi - lo - core) / stride) + 1
    starts = [lo + round(i * (hi - lo - core) / (count - 1)) for i in range(count)]
    return [(s, s + core) for s in starts]


def _span(lo: int, hi: int, side: int, limit: int) -> tuple[int, int]:
    """A `side`-long interval centred on [lo, hi), shifted inside [0, limit), clamped to it."""
    if side >= limit:
        return 0, limit
    start = (lo + hi) // 2 - side // 2
    start = min(max(start, 0), limit - side)
    return int(start), int(start + side)


def _paste(ys: np.ndarray, xs: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    paste = np.zeros((y1 - y0, x1 - x0), bool)
    paste[ys - y0, xs - x0] = True
    return paste


def blend_weights(
    window: Window, shape: tuple[int, int], box: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """float32 weights of a window's pixels in `box` (default: its whole box): 1 inside its
    core, ramping down to 1 / (feather + 1) at core edges that lie inside the image (where a
    neighbour takes over)."""
    ramp_y, ramp_x = _ramps(window, shape, box or window.box)
    return ramp_y[:, None] * ramp_x[None, :]


def _ramps(
    window: Window, shape: tuple[int, int], box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The row and column factors of `blend_weights` in `box`."""
    x0, y0, x1, y1 = box
    if window.core is None or window.feather <= 0:
        return np.ones(y1 - y0, np.float32), np.ones(x1 - x0, np.float32)
    cx0, cy0, cx1, cy1 = window.core
    return (
        _ramp(y0, y1, cy0, cy1, window.feather, shape[0]),
        _ramp(x0, x1, cx0, cx1, window.feather, shape[1]),
    )


def _ramp(b0: int, b1: int, c0: int, c1: int, feather: int, limit: int) -> np.ndarray:
    at = np.arange(b0, b1)
    weight = np.ones(b1 - b0, np.float32)
    if c0 > 0:
        weight = np.minimum(weight, (at - c0 + 1) / (feather + 1))
    if c1 < limit:
        weight = np.minimum(weight, (c1 - at) / (feather + 1))
    return np.clip(weight, 0.0, 1.0).astype(np.float32)


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
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interp), _hole_to_size(hole, size)


def _hole_to_size(hole: np.ndarray, size: int) -> np.ndarray:
    if hole.shape[0] == size:
        return hole
    if hole.shape[0] > size:  # any hole pixel under a model pixel makes it a hole
        cover = cv2.resize(hole.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        return cover > 0
    grown = cv2.resize(hole.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    return grown > 0


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
    image: np.ndarray  # size×size×3 uint8, what the model sees (pre-filled when asked)
    hole: np.ndarray  # size×size bool: every hole pixel in the window, other groups' included
    unfilled: np.ndarray  # size×size bool: the hole pixels a pre-fill still has to fill


def cut_windows(
    image: np.ndarray,
    hole: np.ndarray,
    windows: Sequence[Window],
    filled: np.ndarray | None = None,
    size: int = MODEL_SIZE,
    prefill: str = "none",
) -> list[ModelWindow]:
    """The model-size cuts of planned windows from an image and its (already dilated) hole map.

    `filled` (bool, image-sized): hole pixels that already hold a coarse fill; a window marked
    `prefilled` keeps them as they are instead of having them pre-filled again. `prefill`: the
    generator's pre-fill (`spl_model.prefill`), applied here, so that every cut comes back
    filled (`unfilled` all False). Native-scale tiles of a group share one fill of their union
    box at full resolution instead of one per overlapping tile (a hole pixel lies in about 2.6
    tiles): the fill is local, so a tile's core gets the pixels a fill of the tile alone gives
    (bar a level or two where Telea breaks ties in another order); only its context margin,
    where a lone tile would cut the hole off, sees more."""
    native = _native_prefills(image, hole, windows, size, prefill)
    cut = []
    for window in windows:
        x0, y0, x1, y1 = window.box
        region = native.get(window.group) if _is_native(window, size) else None
        if region is not None:
            (gx0, gy0), pixels = region
            source = pixels[y0 - gy0 : y1 - gy0, x0 - gx0 : x1 - gx0]
        else:
            source = image[y0:y1, x0:x1]
        crop, _ = square_pad(source)
        square_hole, _ = square_pad(hole[y0:y1, x0:x1])
        crop, model_hole = to_model_size(crop, square_hole, size)
        unfilled = model_hole
        if region is not None:
            unfilled = np.zeros_like(model_hole)
        elif window.prefilled and filled is not None:
            todo, _ = square_pad(hole[y0:y1, x0:x1] & ~filled[y0:y1, x0:x1])
            unfilled = _hole_to_size(todo, size)
        if prefill != "none" and unfilled.any():
            crop = prefill_holes(crop[None], unfilled[None], prefill)[0]
            unfilled = np.zeros_like(model_hole)
        cut.append(ModelWindow(window, np.ascontiguousarray(crop), model_hole, unfilled))
    return cut


def _is_native(window: Window, size: int) -> bool:
    """A final tile seen at full resolution over an unfilled hole."""
    return window.side == size and window.core is not None and not window.prefilled


def _native_prefills(
    image: np.ndarray, hole: np.ndarray, windows: Sequence[Window], size: int, prefill: str
) -> dict[int, tuple[tuple[int, int], np.ndarray]]:
    """Per group of native tiles: ((x0, y0), the pre-filled pixels of the tiles' union box)."""
    if prefill == "none":
        return {}
    boxes: dict[int, list[tuple[int, int, int, int]]] = {}
    for window in windows:
        if _is_native(window, size):
            boxes.setdefault(window.group, []).append(window.box)
    regions = {}
    for group, members in boxes.items():
        if len(members) < 2:  # a lone tile is filled by itself, as before
            continue
        x0, y0, x1, y1 = union_box(members)
        filled = prefill_holes(image[None, y0:y1, x0:x1], hole[None, y0:y1, x0:x1], prefill)[0]
        regions[group] = ((x0, y0), filled)
    return regions


def restored_box(window: Window, prediction: np.ndarray) -> np.ndarray:
    """A size×size×3 uint8 prediction of `window` back at the window's box size."""
    x0, y0, x1, y1 = window.box
    top, left = window.offset
    restored = from_model_size(prediction, window.side)
    return restored[top : top + y1 - y0, left : left + x1 - x0]


def paste_window(output: np.ndarray, window: Window, prediction: np.ndarray) -> None:
    """Paste a prediction of `window` into `output`, in place, on the window's own hole pixels
    (no blending: a coarse fill, or a window that is its group's only one)."""
    x0, y0, x1, y1 = window.box
    output[y0:y1, x0:x1][window.paste] = restored_box(window, prediction)[window.paste]


def paste_windows(
    output: np.ndarray,
    windows: Sequence[Window],
    predictions: Sequence[np.ndarray],
    origin: tuple[int, int] = (0, 0),
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Paste the final pass of a plan into `output` in place: each group's tiles cross-faded by
    `blend_weights`, in the box of the pixels they paste. `output` holds the image from
    `origin` (x, y) on, and must cover `paste_box(windows)`; `shape`: the whole image's (H, W)
    (default: `output` is the whole image). Returns the `output`-sized map of changed pixels."""
    shape = shape or output.shape[:2]
    ox, oy = origin
    usable_cwd()
    changed = np.zeros(output.shape[:2], bool)
    groups: dict[int, list[tuple[Window, np.ndarray, tuple[int, int, int, int]]]] = {}
    for window, prediction in zip(windows, predictions, strict=True):
        span = _paste_span(window)
        if span is not None:
            groups.setdefault(window.group, []).append((window, prediction, span))
    for members in groups.values():
        gx0, gy0, gx1, gy1 = union_box([span for _, _, span in members])
        total = np.zeros((gy1 - gy0, gx1 - gx0, 3), np.float32)
        weight = np.zeros((gy1 - gy0, gx1 - gx0), np.float32)
        for window, prediction, (x0, y0, x1, y1) in members:
            bx0, by0 = window.box[:2]
            inside = (slice(y0 - by0, y1 - by0), slice(x0 - bx0, x1 - bx0))
            _weigh(
                total, weight, restored_box(window, prediction)[inside], window.paste[inside],
                *_ramps(window, shape, (x0, y0, x1, y1)), y0 - gy0, x0 - gx0,
            )  # fmt: skip
        place = (slice(gy0 - oy, gy1 - oy), slice(gx0 - ox, gx1 - ox))
        _settle(output[place], total, weight, changed[place])
    return changed


@jit
def _weigh(total, weight, restored, paste, ramp_y, ramp_x, top, left):
    """Add a tile's restored pixels where it pastes, weighed by `ramp_y` × `ramp_x`, into the
    group's sums from (top, left) on (float32, as NumPy would add them)."""
    for y in range(paste.shape[0]):
        for x in range(paste.shape[1]):
            if paste[y, x]:
                w = ramp_y[y] * ramp_x[x]
                for c in range(3):
                    total[top + y, left + x, c] += np.float32(restored[y, x, c]) * w
                weight[top + y, left + x] += w


@jit
def _settle(target, total, weight, changed):
    """Each pixel the group weighed gets its weighted mean, rounded; `changed` marks those
    whose value moved."""
    for y in range(weight.shape[0]):
        for x in range(weight.shape[1]):
            if weight[y, x] > 0:
                for c in range(3):
                    value = np.rint(total[y, x, c] / weight[y, x])
                    value = np.uint8(min(max(value, np.float32(0.0)), np.float32(255.0)))
                    if target[y, x, c] != value:
                        changed[y, x] = True
                        target[y, x, c] = value


def paste_box(windows: Sequence[Window]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around every pixel the windows paste; None when they paste none."""
    spans = [span for window in windows if (span := _paste_span(window)) is not None]
    return union_box(spans) if spans else None


def union_box(boxes: Sequence[Sequence[int]]) -> tuple[int, int, int, int]:
    """The smallest (x0, y0, x1, y1) holding every one of `boxes` (at least one)."""
    corners = np.asarray(boxes)
    x0, y0 = corners[:, :2].min(axis=0)
    x1, y1 = corners[:, 2:].max(axis=0)
    return int(x0), int(y0), int(x1), int(y1)


def _paste_span(window: Window) -> tuple[int, int, int, int] | None:
    """The box (image coordinates) of the pixels a window pastes; None when there are none."""
    span = hole_box(window.paste)
    if span is None:
        return None
    x0, y0 = window.box[:2]
    return x0 + span[0], y0 + span[1], x0 + span[2], y0 + span[3]
