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
