"""No-reference quality scores rank a bad fill below a good one."""

from __future__ import annotations

import numpy as np

from pipeline.stages import quality


def textured(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx, yy, xx + yy], axis=2) * 0.8 + 40
    return np.clip(base + rng.normal(0, 15, (height, width, 3)), 0, 255).astype(np.uint8)


def hole_box(height=120, width=160, box=(40, 30, 100, 80)) -> np.ndarray:
    hole = np.zeros((height, width), bool)
    x0, y0, x1, y1 = box
    hole[y0:y1, x0:x1] = True
    return hole


def test_a_flat_black_fill_scores_worse_than_a_fill_that_matches_its_surroundings():
    image, hole = textured(), hole_box()
    good = quality.no_reference(image, hole)  # the untouched photo: a perfect fill
    bad_image = image.copy()
    bad_image[hole] = 0
    bad = quality.no_reference(bad_image, hole)
    assert good["seam_ratio"] < 1.5 < bad["seam_ratio"]
    assert good["fill_delta"] < 15 < bad["fill_delta"]
    assert bad["fill_brightness"] < -50
    assert bad["fill_texture"] < 0.2 < 0.6 < good["fill_texture"] < 1.6
    assert good["border_distance"] == 30


def test_border_distance_is_zero_for_holes_touching_the_edge_and_whole_image_holes_have_no_ring():
    image = textured()
    assert quality.no_reference(image, hole_box(box=(0, 50, 20, 60)))["border_distance"] == 0
    full = quality.no_reference(image, np.ones(image.shape[:2], bool))
    assert full["fill_delta"] is None and full["seam_ratio"] is None
    assert quality.no_reference(image, np.zeros(image.shape[:2], bool)) == {}
