"""The network: official parameter layout, forward contract, agreement with the release."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from spl_model import CONFIGS, build_generator, load_generator

from .conftest import perturbed
from .reference import reference_forward

OFFICIAL_SHAPES = json.loads(
    (Path(__file__).parent / "data" / "official_generator_shapes.json").read_text()
)


def reference_inputs(batch: int, seed: int = 0):
    """Inputs built as the release's eval_final.py builds them."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, 256, 256, generator=g)
    mask = torch.zeros(batch, 1, 256, 256)
    mask[:, :, 60:170, 40:200] = 1
    mask[:, :, 200:230, 10:250] = 1
    masked_512 = F.interpolate(image * (1.0 - mask) + mask, 512)
    return image, mask, masked_512, F.interpolate(mask, 512)


def test_paper_config_has_the_official_names_and_shapes():
    state = build_generator("spl").state_dict()
    assert len(state) == 418
    assert {k: list(v.shape) for k, v in state.items()} == OFFICIAL_SHAPES


def test_forward_returns_prediction_in_unit_range_and_a_64x64_prior():
    model = build_generator("spl-small").eval()
    with torch.no_grad():
        prediction, prior = model(*reference_inputs(2))
    assert prediction.shape == (2, 3, 256, 256)
    assert 0.0 <= prediction.min() and prediction.max() <= 1.0
    assert prior.shape == (2, CONFIGS["spl-small"].teacher_channels, 64, 64)


def test_official_checkpoint_matches_the_release_arithmetic(tmp_path):
    """Paper configuration, weights in the release's file layout: max |diff| below 1e-4."""
    model = perturbed("spl", seed=3)
    state = {f"generator.module.{k}": v for k, v in model.state_dict().items()}
    state["adversarial_loss.real_label"] = torch.tensor(1.0)
    torch.save(state, tmp_path / "official.pth")
    loaded = load_generator(tmp_path / "official.pth")
    assert loaded.spl_info["format"] == "official"
    assert loaded.spl_info["config"] == CONFIGS["spl"].to_dict()
    inputs = reference_inputs(1, seed=7)
    raw = {k.removeprefix("generator.module."): v for k, v in state.items()}
    with torch.no_grad():
        prediction, prior = loaded(*inputs)
        want_prediction, want_prior = reference_forward(raw, *inputs)
    assert (prediction - want_prediction).abs().max() < 1e-4
    assert (prior - want_prior).abs().max() < 1e-4
    assert prediction.std() > 0.01  # not a degenerate constant output
