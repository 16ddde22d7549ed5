"""Image quality metrics as the SPL paper's evaluation defines them, plus mask statistics.

All metrics take uint8 H×W×3 arrays of the whole composite (restored image vs ground truth):
- PSNR: 10·log10(255² / MSE), inf for identical images (scikit-image's definition);
- SSIM: mean SSIM over colour channels with an 11×11 uniform window, sample covariance,
  K1=0.01, K2=0.03, data range 255, ignoring the 5-pixel border (scikit-image's
  `structural_similarity(..., win_size=11, channel_axis=-1, data_range=255)`);
- L1: mean |mean_c(pred) − mean_c(gt)| / 255.
`to_uint8_truncated` reproduces the release's float→uint8 conversion, `(x * 255).astype(uint8)`.
"""

from __future__ import annotations

import numpy as np

from .masks import region_areas


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    mse = np.mean((_f64(pred) - _f64(gt)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(pred: np.ndarray, gt: np.ndarray, win_size: int = 11) -> float:
    x, y = _f64(pred), _f64(gt)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    if min(x.shape[:2]) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}×{win_size}, got {x.shape[:2]}")
    n = win_size * win_size
    mean = lambda a: _box_mean(a, win_size)  # noqa: E731
    ux, uy = mean(x), mean(y)
    cov = n / (n - 1)
    vx = cov * (mean(x * x) - ux * ux)
    vy = cov * (mean(y * y) - uy * uy)
    vxy = cov * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(s.mean(axis=(0, 1)).mean())


def l1(pred: np.ndarray, gt: np.ndarray) -> float:
    p, g = _f64(pred), _f64(gt)
    if p.ndim == 3:
        p, g = p.mean(axis=2), g.mean(axis=2)
    return float(np.mean(np.abs(p - g)) / 255.0)


def to_uint8_truncated(x: np.ndarray) -> np.ndarray:
    """The release's conversion of a [0, 1] float image to uint8 (truncation, not rounding)."""
    return (x * 255).astype(np.uint8)


def mask_stats(mask: np.ndarray) -> dict[str, float | int]:
    """Hole pixels, hole ratio, number of 8-connected regions and the largest region's pixels."""
    areas = region_areas(mask)
    hole = int(areas.sum())  # the regions cover every hole pixel
    return {
        "hole_pixels": hole,
        "hole_ratio": hole / mask.size if mask.size else 0.0,
        "regions": len(areas),
        "largest_region": int(areas.max()) if len(areas) else 0,
    }


def _box_mean(a: np.ndarray, win: int) -> np.ndarray:
    """Mean over every win×win window fully inside the image (H−win+1 × W−win+1 × C)."""
    c = np.zeros((a.shape[0] + 1, a.shape[1] + 1, *a.shape[2:]))
    c[1:, 1:] = a.cumsum(0).cumsum(1)
    total = c[win:, win:] - c[:-win, win:] - c[win:, :-win] + c[:-win, :-win]
    return total / (win * win)


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)
