"""The Telea pre-fill input convention: recorded in the config, applied by the Inpainter."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from skimage import data

from spl_model import (
    CONFIGS,
    GeneratorConfig,
    Inpainter,
    build_generator,
    load_generator,
    save_generator,
)
from spl_model.engines import classical_inpaint


def test_an_untrained_residual_generator_returns_exactly_the_telea_fill(tmp_path):
    model = build_generator(replace(CONFIGS["spl-small"], prefill="telea"))
    path = tmp_path / "residual.safetensors"
    save_generator(model, path)
    loaded = load_generator(path)  # the convention travels in the file's metadata
    assert loaded.config.prefill == "telea"
    image = np.ascontiguousarray(data.coffee()[:256, 100:356])
    hole = np.zeros((256, 256), bool)
    hole[90:150, 40:220] = True
    restored = Inpainter(loaded, strategy="resize").inpaint([image], [hole])[0]
    assert np.array_equal(restored, classical_inpaint("opencv-telea", image, hole))


def test_the_prefill_adds_no_parameters_so_official_layouts_are_unchanged():
    plain, residual = build_generator("spl-small"), build_generator(
        replace(CONFIGS["spl-small"], prefill="telea")
    )
    shapes = {k: v.shape for k, v in plain.state_dict().items()}
    assert shapes == {k: v.shape for k, v in residual.state_dict().items()}
    assert CONFIGS["spl"].prefill == "none"


def test_an_unknown_prefill_is_refused_by_name():
    with pytest.raises(ValueError, match=r"GeneratorConfig\.prefill"):
        GeneratorConfig(prefill="lama")


def test_native_tiles_share_one_fill_and_their_cores_match_a_fill_of_each_tile_alone():
    """Cutting cost: one Telea for a group's tiles, not one per overlapping tile."""
    from spl_model.crops import cut_windows, plan_windows
    from spl_model.prefill import prefill_holes

    image = np.ascontiguousarray(np.tile(data.astronaut(), (2, 2, 1)))  # 1024 x 1024
    hole = np.zeros(image.shape[:2], bool)
    for row in range(300, 700, 40):  # a block of thin text-like lines: one group, many tiles
        hole[row : row + 4, 150:900] = True
    plan = plan_windows(hole, "crop")
    assert len(plan.final) > 4 and all(w.side == 256 for w in plan.final)
    shared = cut_windows(image, hole, plan.final, prefill="telea")
    plain = cut_windows(image, hole, plan.final)
    alone = prefill_holes(
        np.stack([c.image for c in plain]), np.stack([c.hole for c in plain]), "telea"
    )
    for cut, own in zip(shared, alone, strict=True):
        assert not cut.unfilled.any()
        x0, y0, _, _ = cut.window.box
        cx0, cy0, cx1, cy1 = cut.window.core
        core = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        differ = np.abs(cut.image[core].astype(int) - own[core]).max(axis=2)
        assert differ.max() <= 2 and (differ > 0).mean() < 0.01  # Telea's ties, in a few px
        assert np.array_equal(cut.image[~cut.hole], own[~cut.hole])  # known pixels untouched
