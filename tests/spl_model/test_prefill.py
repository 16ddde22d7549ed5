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


def test_the_edge_gain_shrinks_the_correction_near_known_pixels_only_at_inference(tmp_path):
    """A thin hole is all edge: its correction is scaled by edge_gain; an object's interior
    keeps the full correction; training sees the plain residual; the gain travels in the file."""
    import torch

    torch.manual_seed(0)
    plain = build_generator(replace(CONFIGS["spl-small"], prefill="telea"))
    torch.nn.init.normal_(plain.decoder[-1].weight, std=0.05)  # a non-zero correction
    calibrated = build_generator(replace(plain.config, edge_gain=0.5, edge_px=(4, 12)))
    calibrated.load_state_dict(plain.state_dict())
    save_generator(calibrated, tmp_path / "calibrated.safetensors")
    loaded = load_generator(tmp_path / "calibrated.safetensors")
    assert (loaded.config.edge_gain, loaded.config.edge_px) == (0.5, (4, 12))

    image = torch.rand(1, 3, 256, 256)
    mask = torch.zeros(1, 1, 256, 256)
    mask[..., 20:23, 20:200] = 1  # a 3-px stroke: within 4 px of known pixels everywhere
    mask[..., 100:220, 40:160] = 1  # a 120-px object: its middle is > 12 px deep
    inputs = (image, mask, torch.rand(1, 3, 512, 512), torch.zeros(1, 1, 512, 512))
    with torch.no_grad():
        full = plain.eval()(*inputs)[0] - image
        shrunk = loaded.eval()(*inputs)[0] - image
        trained = loaded.train()(*inputs)[0] - image
    clear = ((image + full) > 1e-3) & ((image + full) < 1 - 1e-3)  # not cut by the clamp
    stroke, middle = (..., slice(20, 23), slice(20, 200)), (..., slice(130, 190), slice(70, 130))
    kept = clear[stroke]
    assert kept.float().mean() > 0.5
    assert torch.allclose(shrunk[stroke][kept], 0.5 * full[stroke][kept], atol=1e-5)
    assert torch.allclose(shrunk[middle], full[middle], atol=1e-5)
    assert torch.allclose(trained, full, atol=1e-5)


def test_with_edge_thin_the_gain_keeps_to_thin_holes_and_spares_an_objects_rim():
    import torch

    from spl_model.generator import edge_gain

    mask = torch.zeros(1, 1, 256, 256)
    mask[..., 20:26, 20:200] = 1  # a 6-px stroke: at most 3 px deep
    mask[..., 100:220, 40:160] = 1  # a 120-px object
    everywhere = edge_gain(mask, 0.5, 4, 12)
    thin = edge_gain(mask, 0.5, 4, 12, thin=(6, 12))
    stroke, rim = (..., slice(20, 26), slice(40, 180)), (..., slice(100, 102), slice(60, 140))
    assert torch.all(everywhere[stroke] == 0.5) and torch.all(thin[stroke] == 0.5)
    assert torch.all(everywhere[rim] == 0.5) and torch.all(thin[rim] == 1.0)
    loaded = GeneratorConfig.from_dict({"edge_gain": 0.5, "edge_thin": [6, 12]})
    assert loaded.edge_thin == (6, 12)  # JSON's list, as the checkpoint stores it


def test_a_bad_edge_gain_is_refused_by_name():
    with pytest.raises(ValueError, match=r"GeneratorConfig\.edge_gain"):
        GeneratorConfig(edge_gain=1.5)
    with pytest.raises(ValueError, match=r"GeneratorConfig\.edge_px"):
        GeneratorConfig(edge_px=(12, 4))
    with pytest.raises(ValueError, match=r"GeneratorConfig\.edge_thin"):
        GeneratorConfig(edge_thin=(12, 6))
