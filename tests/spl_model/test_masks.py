"""Hole maps: dilation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from spl_model.masks import RUNS_FROM, dilate
from spl_model.stamps import make_stamp


def _opencv(mask: np.ndarray, pixels: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


@pytest.mark.parametrize("pixels", [1, 2, RUNS_FROM - 1, RUNS_FROM, 13, 32])
def test_dilation_is_opencvs_disc_at_every_radius(pixels):
    rng = np.random.default_rng(pixels)
    masks = [make_stamp((120, 200), kind, rng).hole(grow=2) for kind in ("text", "blob")]
    for density in (0.002, 0.05, 0.6):  # lone pixels, scattered runs, mostly hole
        masks.append(rng.random((int(rng.integers(1, 70)), int(rng.integers(1, 70)))) < density)
    edge = np.zeros((40, 50), bool)
    edge[0, 3:9] = edge[39, 49] = edge[17:21, 0] = True  # runs on every border
    masks.append(edge)
    for mask in masks:
        assert np.array_equal(dilate(mask, pixels), _opencv(mask, pixels))


def test_no_hole_or_no_radius_leaves_the_map_as_it_is():
    empty = np.zeros((16, 16), bool)
    assert not dilate(empty, 32).any()
    mask = empty.copy()
    mask[5, 5] = True
    assert dilate(mask, 0) is mask
