"""Classical pre-fills of the hole, the input convention of residual SPL generators.

A generator whose config names a pre-fill gets its 256² input with the hole already filled by
that method (at model size, in uint8, exactly as in training) and predicts a correction on top.
Telea's fill is computed by `spl_model.telea` (OpenCV's method, at about half its CPU).
"""

from __future__ import annotations

import numpy as np

PREFILLS = ("none", "telea")


def prefill_holes(images: np.ndarray, holes: np.ndarray, method: str) -> np.ndarray:
    """N×H×W×3 uint8 images with each bool N×H×W hole filled by `method` (a copy)."""
    if method not in PREFILLS:
        raise ValueError(f"unknown prefill {method!r}; choose from {PREFILLS}")
    if method == "none":
        return images
    from .engines import RADIUS
    from .telea import telea_inpaint

    return np.stack(
        [
            telea_inpaint(image, hole, RADIUS) if hole.any() else image
            for image, hole in zip(images, holes)
        ]
    )
