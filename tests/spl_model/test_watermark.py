"""Watermark estimation and localisation on a stamped collection where the truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from spl_model.watermark import estimate, locate
from tests.watermarks import SIZES, natural_crops, stamp


@pytest.fixture(scope="module")
def stamped():
    return stamp(150, opacity=0.45, jitter=8, jittered_share=0.3)


def groups(images):
    return {size: [i for i, im in enumerate(images) if im.shape[:2] == size] for size in SIZES}


def test_the_estimated_mask_matches_the_stamped_logo(stamped):
    for size, members in groups(stamped.images).items():
        found = estimate([stamped.images[i] for i in members])
        assert found.found, found.reason
        truth = stamped.masks[next(i for i in members if stamped.shifts[i] == (0, 0))]
        mask = np.zeros(size, bool)
        x0, y0, x1, y1 = found.box
        mask[y0:y1, x0:x1] = found.mask
        iou = (mask & truth).sum() / (mask | truth).sum()
        assert iou >= 0.85, (size, iou)
        assert abs(float(found.alpha.max()) - 0.45) < 0.05  # the stamp's opacity


def test_each_image_is_located_within_two_pixels_even_when_jittered(stamped):
    jittered = 0
    for members in groups(stamped.images).values():
        found = estimate([stamped.images[i] for i in members])
        for i in members:
            dx, dy, score = locate(stamped.images[i], found.alpha, found.box[:2], 10)
            assert max(abs(dx - stamped.shifts[i][0]), abs(dy - stamped.shifts[i][1])) <= 2
            assert score > 0.3
            jittered += stamped.shifts[i] != (0, 0)
    assert jittered >= 30


def test_photos_without_a_watermark_report_none():
    crops = natural_crops(90, seed=11)
    for members in groups(crops).values():
        found = estimate([crops[i] for i in members])
        assert not found.found and "no consistent edges" in found.reason


def test_an_unmarked_image_does_not_match_the_mark(stamped):
    found = estimate([stamped.images[i] for i in groups(stamped.images)[SIZES[0]]])
    for clean in natural_crops(12, seed=21)[:: len(SIZES)]:
        assert locate(clean, found.alpha, found.box[:2], 8)[2] < 0.3
