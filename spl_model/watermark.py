"""Find a watermark shared by many images (Dekel et al., CVPR 2017), and find it again in one.

A visible watermark is J = αW + (1 - α)I on every image. Image content varies from photo to
photo, so the per-pixel median of the images' gradients converges to the watermark's own
gradient ∇(αW) while the content averages out. From that median:
1. the watermark's region: gradient magnitudes above a fraction of the peak, grouped;
2. its contrast image: a Poisson solve (fast sine transform) of the median gradient field;
3. its mask: the contrast above a small fraction of its peak, which takes in the anti-aliased
   edge; its opacity: per image, J against a Telea fill of the mask region.
`locate` finds the watermark in one image by normalised cross-correlation of high-passed
luminance with the mark's opacity, within a search window. NumPy, SciPy and OpenCV only; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import fft


@dataclass
class Estimate:
    """A watermark estimated from one group of same-sized images (coordinates in that size)."""

    found: bool
    reason: str
    size: tuple[int, int]  # (height, width) of the group's images
    images: int
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # x0, y0, x1, y1 of the mask
    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))  # in the box
    alpha: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    strength: float = 0.0  # peak median gradient over the images' typical gradient
    color: str = "white"  # the mark lightens the images (white) or darkens them (black)


def gray(image: np.ndarray) -> np.ndarray:
    """float32 luminance of a uint8 H×W×3 (or H×W) image."""
    if image.ndim == 2:
        return image.astype(np.float32)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def median_gradients(
    images: list[np.ndarray], band_bytes: int = 256 * 2**20
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-pixel medians of the x and y differences, and the images' typical gradient.

    Computed in bands of rows, so that memory beyond the images themselves stays near
    `band_bytes` however many images or pixels there are."""
    grays = [img if img.ndim == 2 and img.dtype == np.uint8 else gray(img) for img in images]
    height, width = grays[0].shape
    rows = max(1, band_bytes // (8 * len(grays) * width))
    mx, my = np.zeros((height, width), np.float32), np.zeros((height, width), np.float32)
    totals = np.zeros(len(grays))
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        below = min(bottom + 1, height)  # one more row for the y differences
        band = np.stack([g[top:below] for g in grays]).astype(np.float32)
        dx = np.zeros((len(grays), bottom - top, width), np.float32)
        dx[:, :, :-1] = band[:, : bottom - top, 1:] - band[:, : bottom - top, :-1]
        dy = np.zeros_like(dx)
        dy[:, : below - top - 1] = band[:, 1:] - band[:, :-1]
        mx[top:bottom], my[top:bottom] = np.median(dx, axis=0), np.median(dy, axis=0)
        totals += np.abs(dx).sum(axis=(1, 2)) + np.abs(dy).sum(axis=(1, 2))
    return mx, my, float(np.median(totals / (height * width)))


def poisson(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """The image whose gradients best match (gx, gy), zero on the border (DST-I solve)."""
    div = np.zeros_like(gx)
    div[:, 1:] += gx[:, 1:] - gx[:, :-1]
    div[1:, :] += gy[1:, :] - gy[:-1, :]
    inner = div[1:-1, 1:-1]
    h, w = inner.shape
    transformed = fft.dstn(inner, type=1)
    ky = 2 * np.cos(np.pi * np.arange(1, h + 1) / (h + 1)) - 2
    kx = 2 * np.cos(np.pi * np.arange(1, w + 1) / (w + 1)) - 2
    solved = fft.idstn(transformed / (ky[:, None] + kx[None, :]), type=1)
    out = np.zeros_like(gx)
    out[1:-1, 1:-1] = solved
    return out


def estimate(
    images: list[np.ndarray],
    edge_fraction: float = 0.4,
    min_strength: float = 1.0,
    level: float = 0.1,
    grow: int = 0,
) -> Estimate:
    """`level`: the mask is where the reconstructed mark reaches this fraction of its peak
    contrast, which takes in the anti-aliased edge; `grow` adds pixels around it."""
    height, width = images[0].shape[:2]
    gx, gy, typical = median_gradients(images)
    magnitude = np.hypot(gx, gy)
    peak = float(np.percentile(magnitude, 99.97))
    strength = peak / max(typical, 1e-6)
    base = Estimate(False, "", (height, width), len(images), strength=strength)
    if strength < min_strength:
        base.reason = (
            f"no consistent edges: the median gradient peaks at {strength:.2f}× the images' "
            f"typical gradient (needs {min_strength:g}×)"
        )
        return base
    strong = magnitude >= edge_fraction * peak
    # Letters and shapes of one mark are close together: merge them, keep the biggest group.
    merged = cv2.dilate(strong.astype(np.uint8), np.ones((15, 15), np.uint8))
    count, labels = cv2.connectedComponents(merged, connectivity=8)
    if count < 2:
        base.reason = "no edge region above the threshold"
        return base
    weights = np.bincount(labels[strong], minlength=count)
    weights[0] = 0
    region = (labels == int(np.argmax(weights))) & strong
    ys, xs = np.nonzero(region)
    pad = 6
    x0, y0 = max(int(xs.min()) - pad, 0), max(int(ys.min()) - pad, 0)
    x1, y1 = min(int(xs.max()) + pad + 1, width), min(int(ys.max()) + pad + 1, height)
    contrast = poisson(gx[y0:y1, x0:x1], gy[y0:y1, x0:x1])
    inside = np.abs(contrast) >= level * float(np.abs(contrast).max())
    if grow:
        inside = cv2.dilate(inside.astype(np.uint8), np.ones((2 * grow + 1,) * 2, np.uint8)) > 0
    if inside.sum() < 4:
        base.reason = "the reconstructed mark is empty"
        return base
    ys, xs = np.nonzero(inside)
    bx0, by0, bx1, by1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    box = (x0 + bx0, y0 + by0, x0 + bx1, y0 + by1)
    mask = inside[by0:by1, bx0:bx1]
    sign = float(np.sign(contrast[inside].mean()) or 1.0)
    alpha = opacity(images, box, mask, sign)
    color = "white" if sign > 0 else "black"
    return Estimate(True, "", (height, width), len(images), box, mask, alpha, strength, color)


def opacity(
    images: list[np.ndarray], box: tuple[int, int, int, int], mask: np.ndarray, sign: float
) -> np.ndarray:
    """Per-pixel α inside `box`: median over images of (J − I) / (W − I), I a Telea fill of the
    mask, W white (sign > 0) or black (sign < 0)."""
    x0, y0, x1, y1 = box
    target = 255.0 if sign > 0 else 0.0
    margin = 8
    samples = []
    for image in images[:64]:
        h, w = image.shape[:2]
        cx0, cy0 = max(x0 - margin, 0), max(y0 - margin, 0)
        cx1, cy1 = min(x1 + margin, w), min(y1 + margin, h)
        crop = np.clip(gray(image[cy0:cy1, cx0:cx1]), 0, 255).astype(np.uint8)
        hole = np.zeros(crop.shape, np.uint8)
        hole[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = mask
        background = cv2.inpaint(crop, hole, 3, cv2.INPAINT_TELEA).astype(np.float32)
        region = (slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))
        span = target - background[region]
        with np.errstate(divide="ignore", invalid="ignore"):
            a = (crop[region].astype(np.float32) - background[region]) / span
        samples.append(np.where(np.abs(span) > 24, a, np.nan))
    alpha = np.nanmedian(np.stack(samples), axis=0) if samples else np.zeros(mask.shape)
    return np.clip(np.nan_to_num(alpha) * mask, 0, 1).astype(np.float32)


HIGH_PASS_SIGMA = 2.0
HIGH_PASS_REACH = 8  # OpenCV's kernel for sigma 2 has 17 taps: a pixel sees 8 px each way


def _high_pass(a: np.ndarray) -> np.ndarray:
    return a - cv2.GaussianBlur(a, (0, 0), HIGH_PASS_SIGMA)


def locate(
    image: np.ndarray, pattern: np.ndarray, at: tuple[int, int], search: int
) -> tuple[int, int, float]:
    """(dx, dy, score): where a mark with opacity `pattern` (H×W, any scale: an estimated α or
    a binary template) sits in `image`, searched within ±`search` px of its expected top-left
    corner `at` = (x, y). The score is the normalised cross-correlation of the high-passed
    luminance with the high-passed pattern, in absolute value (light and dark marks alike):
    1 is a perfect match, natural content without the mark scores below about 0.2."""
    th, tw = pattern.shape
    x, y = at
    h, w = image.shape[:2]
    x0, y0 = max(x - search, 0), max(y - search, 0)
    x1, y1 = min(x + tw + search, w), min(y + th + search, h)
    # High-pass only the window plus the blur's reach: the same values as on the whole image,
    # without blurring a 12 MP image for every item.
    r = HIGH_PASS_REACH
    cx0, cy0, cx1, cy1 = max(x0 - r, 0), max(y0 - r, 0), min(x1 + r, w), min(y1 + r, h)
    g = _high_pass(gray(image[cy0:cy1, cx0:cx1]))
    window = g[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
    template = _high_pass(pattern.astype(np.float32) * 255)
    if window.shape[0] < th or window.shape[1] < tw or float(template.std()) == 0:
        return 0, 0, 0.0
    scores = np.abs(cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED))
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    return x0 + bx - x, y0 + by - y, float(best)
