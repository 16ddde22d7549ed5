"""Metrics agree with scikit-image as the paper's evaluation calls it; mask statistics."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from spl_model import metrics
from spl_model.masks import random_mask


@pytest.fixture
def pair(rng):
    gt = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    noise = rng.normal(0, 20, gt.shape)
    pred = np.clip(gt.astype(float) + noise, 0, 255).astype(np.uint8)
    return pred, gt


def test_psnr_matches_scikit_image(pair):
    pred, gt = pair
    assert metrics.psnr(pred, gt) == pytest.approx(
        peak_signal_noise_ratio(gt, pred, data_range=255), rel=1e-12
    )
    assert metrics.psnr(gt, gt) == float("inf")


def test_ssim_matches_scikit_image_with_the_papers_settings(pair):
    pred, gt = pair
    want = structural_similarity(pred, gt, data_range=255, win_size=11, channel_axis=-1)
    assert metrics.ssim(pred, gt) == pytest.approx(want, abs=1e-9)
    assert metrics.ssim(gt, gt) == pytest.approx(1.0)


def test_l1_is_the_mean_channel_averaged_difference_over_255():
    gt = np.zeros((4, 4, 3), np.uint8)
    pred = gt.copy()
    pred[..., 0] = 30  # mean over channels differs by 10 everywhere
    assert metrics.l1(pred, gt) == pytest.approx(10 / 255)


def test_truncating_conversion_matches_the_release():
    x = np.array([0.0, 0.5, 0.999, 1.0], np.float32)
    assert metrics.to_uint8_truncated(x).tolist() == [0, 127, 254, 255]


def test_mask_stats_count_holes_and_8_connected_regions():
    mask = np.zeros((10, 10), bool)
    mask[0:2, 0:2] = True
    mask[2, 2] = True  # touches the first diagonally: same region
    mask[7:10, 7:10] = True
    stats = metrics.mask_stats(mask)
    assert stats == {"hole_pixels": 14, "hole_ratio": 0.14, "regions": 2, "largest_region": 9}


@pytest.mark.parametrize("ratio", [(0.0, 0.1), (0.2, 0.3), (0.5, 0.6)])
def test_random_masks_land_in_the_requested_hole_ratio(rng, ratio):
    ratios = [random_mask(128, 128, rng, ratio).mean() for _ in range(10)]
    assert all(ratio[0] <= r <= ratio[1] for r in ratios)
