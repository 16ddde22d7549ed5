"""Quality columns of a stats row: cheap, vectorised, on the arrays already in memory.

No-reference (always, for restored items), all measured in the output:
- `seam_l1`: mean absolute gray-level step across the hole's edge (0-255);
- `seam_ratio`: (seam_l1 + 1) / (context_l1 + 1), where context_l1 is the same step between
  neighbouring known pixels in a band around the hole: ≈1 means the fill's edge is as smooth
  as the image around it; much larger means a visible seam.
- `fill_delta`: mean |difference| of the mean colour (per channel, 0-255) between the filled
  pixels and a ring of known pixels around them: 0 is a fill of the surroundings' colour.
- `fill_brightness`: mean gray level of the fill minus that of the ring (signed, 0-255).
- `fill_texture`: (gray std of the fill + 1) / (gray std of the ring + 1): ≈1 is matching
  texture, well below 1 a flat or blurry fill, well above 1 a busier one.
- `border_distance`: pixels from the hole to the nearest image edge (0 = touches it);
  fills at the border have less context.
With a reference image (same size): `psnr`, `ssim`, `l1` from `spl_model.metrics`.
"""

from __future__ import annotations

import numpy as np

from spl_model import metrics
from spl_model.masks import dilate, hole_box

MIN_SSIM_SIDE = 11
BAND = 8  # px of known pixels around the hole used as its context


def no_reference(
    restored: np.ndarray,
    hole: np.ndarray,
    origin: tuple[int, int] = (0, 0),
    shape: tuple[int, int] | None = None,
) -> dict[str, float | int | None]:
    """Every no-reference column for one restored image and its (boolean) hole. The arrays may
    be a part of the image that starts at `origin` (x, y), of an image of `shape` (H, W)."""
    tight = hole_box(hole)
    if tight is None:
        return {}
    hx0, hy0, hx1, hy1 = tight
    full_h, full_w = shape or hole.shape
    ox, oy = origin  # the arrays' place in the whole image
    distance = min(hx0 + ox, hy0 + oy, full_w - hx1 - ox, full_h - hy1 - oy)
    # Every measure lives within BAND + 1 px of the hole: work on that box only.
    x0, y0, x1, y1 = hole_box(hole, BAND + 1)
    restored, hole = restored[y0:y1, x0:x1], hole[y0:y1, x0:x1]
    ring = dilate(hole, BAND) & ~hole
    seam_l1, seam_ratio = seam(restored, hole, ring)
    return {
        "seam_l1": seam_l1,
        "seam_ratio": seam_ratio,
        **fill_consistency(restored, hole, ring),
        "border_distance": distance,
    }


def seam(
    restored: np.ndarray, hole: np.ndarray, ring: np.ndarray | None = None
) -> tuple[float | None, float | None]:
    if ring is None:
        ring = dilate(hole, BAND) & ~hole
    gray = _gray_sum(restored).astype(np.float32) / np.float32(3)  # = mean(axis=2), faster
    pairs = (  # (hole, hole shifted by one, ring, ring shifted, gray step): vertical, horizontal
        (hole[:-1, :], hole[1:, :], ring[:-1, :], ring[1:, :], np.abs(np.diff(gray, axis=0))),
        (hole[:, :-1], hole[:, 1:], ring[:, :-1], ring[:, 1:], np.abs(np.diff(gray, axis=1))),
    )
    edge_steps = [step[a != b] for a, b, _, _, step in pairs]
    context_steps = [step[ra & rb] for _, _, ra, rb, step in pairs]  # known pixels near the hole
    edge = np.concatenate(edge_steps)
    context = np.concatenate(context_steps)
    if edge.size == 0:
        return None, None
    seam_l1 = float(edge.mean())
    context_l1 = float(context.mean()) if context.size else 0.0
    return seam_l1, (seam_l1 + 1.0) / (context_l1 + 1.0)


def fill_consistency(
    restored: np.ndarray, hole: np.ndarray, ring: np.ndarray
) -> dict[str, float | None]:
    if not ring.any():  # the hole covers the whole image: nothing to compare with
        return {"fill_delta": None, "fill_brightness": None, "fill_texture": None}
    gray = _gray_sum(restored)
    fill_gray, known_gray = gray[hole] / 3.0, gray[ring] / 3.0  # the mean of the channels
    return {
        "fill_delta": float(np.abs(_means(restored, hole) - _means(restored, ring)).mean()),
        "fill_brightness": float(fill_gray.mean() - known_gray.mean()),
        "fill_texture": float((fill_gray.std() + 1.0) / (known_gray.std() + 1.0)),
    }


def _means(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Each channel's mean over `where`, from integer sums (exact)."""
    sums = [image[..., c][where].sum(dtype=np.int64) for c in range(image.shape[2])]
    return np.array(sums) / int(where.sum())


def _gray_sum(image: np.ndarray) -> np.ndarray:
    """The sum of the three channels (uint16)."""
    return image[..., 0].astype(np.uint16) + image[..., 1] + image[..., 2]


def reference_scores(restored: np.ndarray, reference: np.ndarray) -> dict[str, float | None]:
    """psnr / ssim / l1 of the whole composite against the reference; None when sizes differ."""
    if reference.shape != restored.shape:
        return {"psnr": None, "ssim": None, "l1": None}
    small = min(restored.shape[:2]) < MIN_SSIM_SIDE
    return {
        "psnr": metrics.psnr(restored, reference),
        "ssim": None if small else metrics.ssim(restored, reference),
        "l1": metrics.l1(restored, reference),
    }
