"""Quality columns of a stats row.

No-reference (always, for restored items):
- `seam_l1`: mean absolute gray-level step across the mask's edge in the output (0-255);
- `seam_ratio`: (seam_l1 + 1) / (context_l1 + 1), where context_l1 is the same step between
  neighbouring pixels outside the hole: about 1 means the fill's edge is as smooth as the
  image; much larger means a visible seam.
With a reference image (same size): `psnr`, `ssim`, `l1` from `spl_model.metrics`.
"""

from __future__ import annotations

import numpy as np

from spl_model import metrics

MIN_SSIM_SIDE = 11


def seam(restored: np.ndarray, hole: np.ndarray) -> tuple[float | None, float | None]:
    gray = restored.astype(np.float32).mean(axis=2)
    edge_steps, context_steps = [], []
    for axis in (0, 1):
        a = np.take(hole, range(hole.shape[axis] - 1), axis=axis)
        b = np.take(hole, range(1, hole.shape[axis]), axis=axis)
        step = np.abs(np.diff(gray, axis=axis))
        edge_steps.append(step[a != b])
        context_steps.append(step[~a & ~b])
    edge = np.concatenate(edge_steps)
    context = np.concatenate(context_steps)
    if edge.size == 0:
        return None, None
    seam_l1 = float(edge.mean())
    context_l1 = float(context.mean()) if context.size else 0.0
    return seam_l1, (seam_l1 + 1.0) / (context_l1 + 1.0)


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
