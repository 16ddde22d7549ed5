"""De-blending a light mark: the photo under it comes back; opaque parts keep the fill."""

from __future__ import annotations

import numpy as np
import pytest

from spl_model.deblend import HIGH, LOW, deblend


def test_light_marks_are_recovered_opaque_ones_keep_the_fill_and_the_rest_is_untouched():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (40, 60, 3)).astype(np.uint8)
    alpha = np.zeros((40, 60), np.float32)
    alpha[5:15, 5:25] = 0.3  # light: de-blended alone
    alpha[20:30, 5:25] = 0.9  # nearly opaque: the fill
    alpha[20:30, 30:50] = (LOW + HIGH) / 2  # between: half and half
    white = np.array([255, 255, 255], np.float32)
    stamped = np.rint(alpha[..., None] * white + (1 - alpha[..., None]) * photo).astype(np.uint8)
    fill = np.full_like(photo, 77)
    out = deblend(stamped, fill, alpha, (255, 255, 255))
    light = alpha == 0.3
    assert np.abs(out[light].astype(int) - photo[light]).max() <= 1  # rounding only
    np.testing.assert_array_equal(out[alpha == 0.9], fill[alpha == 0.9])
    mid = alpha == (LOW + HIGH) / 2
    recovered = (stamped[mid] - alpha[mid][:, None] * white) / (1 - alpha[mid][:, None])
    np.testing.assert_allclose(out[mid], (recovered + fill[mid]) / 2, atol=1)
    np.testing.assert_array_equal(out[alpha == 0], fill[alpha == 0])


def test_bad_thresholds_are_refused():
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="low < high"):
        deblend(image, image, np.zeros((4, 4)), (0, 0, 0), low=0.7, high=0.5)
