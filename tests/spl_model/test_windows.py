"""Window planning from the hole's shape: thin marks tiled near native scale, thick holes coarse
to fine, tiles that write only their own hole pixels and blend without a seam."""

from __future__ import annotations

import numpy as np
import pytest

from spl_model.crops import (
    MAX_TILE_SCALE,
    MODEL_SIZE,
    Window,
    blend_weights,
    paste_windows,
    plan_windows,
    restored_box,
)
from spl_model.stamps import KINDS, make_stamp


def stamped_holes(count: int = 12) -> list[np.ndarray]:
    """Watermark- and object-shaped holes on 1-3 MP canvases of several aspect ratios."""
    holes = []
    for seed in range(count):
        rng = np.random.default_rng(seed)
        shape = [(1200, 1800), (1600, 1066), (900, 1600)][seed % 3]
        holes.append(make_stamp(shape, KINDS[seed % len(KINDS)], rng).hole(2))
    return holes


@pytest.mark.parametrize("refine", [True, False])
def test_every_hole_pixel_is_owned_and_no_window_writes_outside_the_hole(refine):
    for hole in stamped_holes():
        plan = plan_windows(hole, refine=refine)
        covered = np.zeros(hole.shape, bool)
        for window in plan.final:
            x0, y0, x1, y1 = window.box
            assert not (window.paste & ~hole[y0:y1, x0:x1]).any()
            if window.core is not None:  # a tile writes only inside its core
                cx0, cy0, cx1, cy1 = window.core
                ys, xs = np.nonzero(window.paste)
                assert (xs + x0 >= cx0).all() and (xs + x0 < cx1).all()
                assert (ys + y0 >= cy0).all() and (ys + y0 < cy1).all()
            covered[y0:y1, x0:x1] |= window.paste
        np.testing.assert_array_equal(covered, hole)
        for window in plan.first:  # coarse looks fill a working copy, also only the hole
            x0, y0, x1, y1 = window.box
            assert not (window.paste & ~hole[y0:y1, x0:x1]).any()


@pytest.mark.parametrize("width", [2, 6, 12, 30, 60, 90])
def test_a_thin_hole_is_never_seen_at_more_than_2x_downscale(width):
    hole = np.zeros((2000, 3000), bool)
    hole[900 : 900 + width, 200:2800] = True  # a 2,600 px line, like a long caption
    hole[100:1900, 1500 : 1500 + width] = True  # and a column across it
    plan = plan_windows(hole)
    assert not plan.first
    assert plan.scale <= MAX_TILE_SCALE
    assert len(plan.final) >= 2600 // MODEL_SIZE  # tiled along the line, not one huge window


def test_text_is_tiled_at_native_scale():
    rng = np.random.default_rng(3)
    stamp = make_stamp((1600, 2400), "text", rng)
    plan = plan_windows(stamp.hole(2))
    assert plan.scale == 1.0 and not plan.first and len(plan.final) >= 3


def test_a_thick_hole_is_seen_coarse_then_refined_in_one_tile():
    hole = np.zeros((2000, 3000), bool)
    hole[600:1100, 1000:1400] = True  # 400 x 500 px: too thick for a window at 2x
    plan = plan_windows(hole)
    assert len(plan.first) == 1 and len(plan.final) == 1
    coarse, fine = plan.first[0], plan.final[0]
    assert coarse.side >= 3 * 500 and fine.side < coarse.side and fine.prefilled
    # Without a pre-fill convention the coarse fill is final.
    plain = plan_windows(hole, refine=False)
    assert not plain.first and plain.final[0].side == coarse.side


def test_blend_weights_fade_only_towards_neighbours():
    window = Window((0, 0, 256, 256), np.ones((256, 256), bool), (48, 0, 208, 160), 32)
    weights = blend_weights(window, (1000, 1000))
    assert weights[10, 100] == 1.0  # the core's top edge is the image border: no fade
    assert weights[100, 207] < 0.05 and weights[100, 48] < 0.05  # left and right edges fade
    assert weights[100, 128] == 1.0


def test_overlapping_tiles_cross_fade_instead_of_a_hard_seam():
    """Two tiles predicting different flat colours: across their overlap the fill steps at most
    1/(overlap) of the difference per pixel, not all of it at once."""
    hole = np.zeros((256, 2000), bool)
    hole[100:120, 100:1900] = True
    plan = plan_windows(hole)
    assert len(plan.final) >= 2
    output = np.zeros((256, 2000, 3), np.uint8)
    predictions = [
        np.full((MODEL_SIZE, MODEL_SIZE, 3), 60 if i % 2 else 200, np.uint8)
        for i in range(len(plan.final))
    ]
    changed = paste_windows(output, plan.final, predictions)
    np.testing.assert_array_equal(changed, hole)
    steps = np.abs(np.diff(output[110, 100:1900, 0].astype(int)))
    assert steps.max() <= 140 / 20  # 140 levels spread over the ~32-px overlap


def test_each_pasted_pixel_is_the_weighted_mean_of_the_tiles_that_paste_it():
    """Text tiles with random predictions: where tiles overlap, the output is their predictions
    averaged by `blend_weights` and rounded; no other pixel moves, and the changed map says
    exactly which pixels did."""
    rng = np.random.default_rng(3)
    hole = make_stamp((1000, 2400), "text", rng).hole(2)
    plan = plan_windows(hole)
    source = rng.integers(0, 256, (*hole.shape, 3), dtype=np.uint8)
    predictions = [rng.integers(0, 256, (MODEL_SIZE, MODEL_SIZE, 3), np.uint8) for _ in plan.final]
    total = np.zeros((*hole.shape, 3))
    weight = np.zeros(hole.shape)
    tiles = np.zeros(hole.shape, int)
    for window, prediction in zip(plan.final, predictions):
        x0, y0, x1, y1 = window.box
        w = blend_weights(window, hole.shape) * window.paste
        total[y0:y1, x0:x1] += restored_box(window, prediction) * w[..., None]
        weight[y0:y1, x0:x1] += w
        tiles[y0:y1, x0:x1] += window.paste
    pasted = weight > 0
    assert (tiles[pasted] >= 2).mean() > 0.1  # many pixels come from overlapping tiles
    assert np.array_equal(pasted, hole)
    expected = np.rint(total[pasted] / weight[pasted][:, None])
    output = source.copy()
    changed = paste_windows(output, plan.final, predictions)
    assert np.abs(output[pasted].astype(int) - expected).max() <= 1  # float32 sums, rounded
    assert (output[pasted] == expected).mean() > 0.99
    assert np.array_equal(output[~pasted], source[~pasted])
    assert np.array_equal(changed, (output != source).any(axis=2))
