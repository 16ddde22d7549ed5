"""Model fixtures: small generators with non-trivial weights, and checkpoints in each format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spl_model import build_generator


def perturbed(config: str, seed: int = 0):
    """A generator whose region-norm affine terms are non-zero, so every branch matters."""
    torch.manual_seed(seed)
    model = build_generator(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("_gamma", "_beta")):
                p.normal_(0, 0.1)
    return model


@pytest.fixture(scope="session")
def small_model():
    return perturbed("spl-small")


@pytest.fixture(scope="session")
def official_checkpoint(tmp_path_factory, small_model):
    """A small generator saved the way the release saves InpaintingModel.state_dict() under DDP."""
    state = {f"generator.module.{k}": v for k, v in small_model.state_dict().items()}
    state["discriminator.module.conv1.0.weight_orig"] = torch.randn(64, 3, 4, 4)
    state["discriminator.module.conv1.0.weight_u"] = torch.randn(64)
    state["tresnet_xL_hold.body.layer1.0.conv1.0.weight"] = torch.randn(8, 8, 3, 3)
    state["adversarial_loss.real_label"] = torch.tensor(1.0)
    state["adversarial_loss.fake_label"] = torch.tensor(0.0)
    path = tmp_path_factory.mktemp("ckpt") / "SPL_official.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
