"""Semi-transparent marks: recover the photo under a light mark instead of inventing it.

A visible watermark is J = a·W + (1 - a)·I (Dekel et al., CVPR 2017, §4), with `a` the mark's
opacity map and W its colour. Where the mark is light, the photo shows through and
I = (J - a·W) / (1 - a) recovers it; the JPEG noise of J is amplified by 1 / (1 - a), so where
the mark is nearly opaque an inpainted fill is better. `deblend` takes the inpainted image and
blends: de-blended pixels where a <= `low`, the fill where a >= `high`, a linear mix between.
Pure NumPy; works inside the hole's box.
"""

from __future__ import annotations

import numpy as np

LOW, HIGH = 0.35, 0.6  # opacity below which de-blending is used alone, above which the fill is


def deblend(
    stamped: np.ndarray,
    filled: np.ndarray,
    alpha: np.ndarray,
    color: tuple[int, int, int] | np.ndarray,
    low: float = LOW,
    high: float = HIGH,
) -> np.ndarray:
    """uint8 H×W×3: `filled` (the inpainted image) with the mark's light pixels de-blended from
    `stamped`. `alpha` (float H×W in [0, 1]) is the mark's opacity; 0 leaves `filled` as is."""
    if not 0 <= low < high <= 1:
        raise ValueError(f"need 0 <= low < high <= 1, got {low}, {high}")
    out = filled.copy()
    ys, xs = np.nonzero(alpha > 0)
    if len(ys) == 0:
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    a = np.clip(alpha[y0:y1, x0:x1].astype(np.float32), 0, 1)[..., None]
    j = stamped[y0:y1, x0:x1].astype(np.float32)
    mark = np.asarray(color, np.float32).reshape(1, 1, 3)
    recovered = (j - a * mark) / np.maximum(1.0 - a, 1.0 - high)
    take_fill = np.clip((a - low) / (high - low), 0.0, 1.0)
    box = filled[y0:y1, x0:x1].astype(np.float32)
    mixed = (1.0 - take_fill) * recovered + take_fill * box
    region = (alpha[y0:y1, x0:x1] > 0)[..., None]
    out[y0:y1, x0:x1] = np.where(region, np.rint(mixed).clip(0, 255), box).astype(np.uint8)
    return out
