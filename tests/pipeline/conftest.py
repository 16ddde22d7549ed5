"""Fixtures of the pipeline tests: a small SPL model file the actors and stages load."""

from __future__ import annotations

import pytest
import torch

import spl_model


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """spl-small reading Telea-pre-filled input (as the bundled model does), with non-zero
    region-norm terms so that every branch shapes the output."""
    config = dict(spl_model.CONFIGS["spl-small"].to_dict(), prefill="telea")
    torch.manual_seed(0)
    model = spl_model.build_generator(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("_gamma", "_beta")):
                p.normal_(0, 0.1)
    path = tmp_path_factory.mktemp("model") / "small.safetensors"
    spl_model.save_generator(model, path)
    return str(path)
