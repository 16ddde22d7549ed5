"""Classical inpainting engines (OpenCV), behind the same interface as SPL.

They need no weights: a baseline for evaluation and a fallback when no checkpoint is at hand.
"""

from __future__ import annotations

import cv2
import numpy as np

from .names import CLASSICAL_ENGINES

CLASSICAL = dict(zip(CLASSICAL_ENGINES, (cv2.INPAINT_TELEA, cv2.INPAINT_NS), strict=True))
RADIUS = 5


def classical_inpaint(engine: str, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill `hole` (bool H×W) in a uint8 H×W×3 image with OpenCV's Telea or Navier-Stokes method."""
    if engine not in CLASSICAL:
        raise ValueError(f"unknown classical engine {engine!r}; choose from {sorted(CLASSICAL)}")
    image = np.ascontiguousarray(image)
    filled = cv2.inpaint(image, hole.astype(np.uint8), RADIUS, CLASSICAL[engine])
    return np.where(hole[..., None], filled, image)
