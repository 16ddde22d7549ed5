"""The compiled Telea pre-fill: the fill the bundled model was trained on (OpenCV's), cheaper."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from spl_model.stamps import make_stamp
from spl_model.telea import telea_inpaint


@pytest.mark.parametrize("kind", ["text", "logo", "strokes", "blob"])
def test_the_fill_is_opencvs_on_watermark_holes(kind):
    image = np.ascontiguousarray(data.astronaut()[:320, 64:448])
    same = close = total = 0
    for seed in range(3):
        hole = make_stamp(image.shape[:2], kind, np.random.default_rng(seed)).hole(grow=2)
        ours = telea_inpaint(image, hole, 5)
        theirs = cv2.inpaint(image, hole.astype(np.uint8), 5, cv2.INPAINT_TELEA)
        assert np.array_equal(ours[~hole], image[~hole])  # nothing outside the hole moves
        differ = np.abs(ours[hole].astype(int) - theirs[hole])
        same += int((differ == 0).sum())
        close += int((differ <= 3).sum())
        total += differ.size
    assert same / total > 0.97, f"{same / total:.4f} of the hole's values equal OpenCV's"
    assert close / total > 0.995


def test_holes_on_the_image_border_are_filled_too():
    image = np.ascontiguousarray(data.coffee()[:96, :128])
    hole = np.zeros(image.shape[:2], bool)
    hole[:6, 40:60] = True  # top rows
    hole[30:50, -4:] = True  # right columns
    ours = telea_inpaint(image, hole, 5)
    theirs = cv2.inpaint(image, hole.astype(np.uint8), 5, cv2.INPAINT_TELEA)
    assert np.abs(ours.astype(int) - theirs).max() <= 3  # OpenCV's fill, bar rounding
    assert (ours[hole] != image[hole]).mean() > 0.5


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="uint8"):
        telea_inpaint(np.zeros((8, 8, 3), np.float32), np.ones((8, 8), bool), 5)
    with pytest.raises(ValueError, match="does not match"):
        telea_inpaint(np.zeros((8, 8, 3), np.uint8), np.ones((8, 9), bool), 5)
