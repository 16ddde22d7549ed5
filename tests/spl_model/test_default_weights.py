"""The bundled default model: it loads, it is the file the manifest names, and it beats Telea."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from spl_model import Inpainter, default_checkpoint, load_generator
from spl_model.checkpoint import file_sha256
from spl_model.engines import classical_inpaint
from spl_model.masks import random_mask
from spl_model.metrics import psnr, ssim

WEIGHTS = Path(default_checkpoint() or "missing")
MANIFEST = json.loads((WEIGHTS.parent / "MANIFEST.json").read_text())


@pytest.fixture(scope="module")
def bundled():
    return load_generator(WEIGHTS)


def test_the_default_checkpoint_is_bundled_and_matches_its_manifest():
    entry = MANIFEST["files"][WEIGHTS.name]
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size == entry["bytes"] <= 20 * 2**20
    assert file_sha256(WEIGHTS) == entry["sha256"]
    data_manifest = json.loads((WEIGHTS.parent / entry["data_manifest"]).read_text())
    splits = {f["split"] for f in data_manifest["files"]}
    assert splits == {"train", "val", "holdout"}
    assert not any("mate-backgrounds" in f["source"] for f in data_manifest["files"])


def test_the_bundled_model_records_its_recipe_lineage_and_input_convention(bundled):
    meta = bundled.spl_info["metadata"]
    assert bundled.config.prefill == "telea"  # applied by the Inpainter from the metadata
    recipe = meta["train_config"]
    assert recipe["gan_weight"] > 0 and recipe["l1_weight"] > 0
    # its last stage: watermark-shaped samples, started from the stage the weights README names
    assert 0 < recipe["stamp_masks"] < 1 and meta["init"]["sha256"].startswith("d4cac0ee")


def test_the_bundled_model_beats_telea_on_a_photo_it_never_saw(bundled):
    # scikit-image's astronaut is in the held-out split: never trained or validated on.
    photo = Image.fromarray(data.astronaut())
    image = np.asarray(photo.resize((256, 256), Image.Resampling.BICUBIC))
    hole = random_mask(256, 256, np.random.default_rng(1), (0.2, 0.3))
    ours = Inpainter(bundled, strategy="resize").inpaint([image], [hole])[0]
    telea = classical_inpaint("opencv-telea", image, hole)
    assert np.array_equal(ours[~hole], image[~hole])
    assert psnr(ours, image) > psnr(telea, image) + 0.5
    assert ssim(ours, image) > ssim(telea, image)


def test_jobs_without_a_checkpoint_use_the_bundled_model():
    assert Inpainter().model_id == MANIFEST["files"][WEIGHTS.name]["sha256"]
