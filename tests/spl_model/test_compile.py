"""A compiled generator: predictions as eager, fixed batch shapes, eager when compiling fails."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from torch._dynamo.utils import counters

from spl_model import Inpainter


def _windows(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(count)
    windows = rng.integers(0, 256, (count, 256, 256, 3), dtype=np.uint8)
    holes = np.zeros((count, 256, 256), bool)
    holes[:, 90:150, 40:210] = True
    holes[1:, 20:30, :] = True  # every window its own hole
    return windows, holes


@pytest.fixture(scope="module")
def compiled(small_model):
    inpainter = Inpainter(small_model, device="cpu", compile=True, model_batch=3)
    inpainter.warm_up()
    return inpainter


def test_compiled_predictions_equal_eager_within_two_levels_at_every_batch_size(
    small_model, compiled
):
    assert compiled.compiled and compiled.warmup_s > 0
    assert compiled.batch_shapes == (1, 3)  # a partial batch of 2 is padded up to 3
    eager = Inpainter(small_model, device="cpu", compile=False, model_batch=3)
    graphs = counters["stats"]["unique_graphs"]
    for count in (1, 2, 3, 5):  # 5: more than the model batch runs eager, still right
        windows, holes = _windows(count)
        got, want = compiled.infer(windows, holes), eager.infer(windows, holes)
        assert got.shape == want.shape == (count, 256, 256, 3)
        assert np.abs(got.astype(int) - want).max() <= 2
    assert counters["stats"]["unique_graphs"] == graphs  # served with no recompile


def test_whole_images_through_a_compiled_model_keep_every_pixel_outside_the_hole(compiled):
    image = np.random.default_rng(1).integers(0, 256, (300, 420, 3), dtype=np.uint8)
    mask = np.zeros((300, 420), bool)
    mask[100:140, 50:380] = True
    restored = compiled.inpaint([image], [mask])[0]
    assert np.array_equal(restored[~mask], image[~mask])
    assert not np.array_equal(restored[mask], image[mask])


FAILING_COMPILER = """
import logging, numpy as np
from spl_model import Inpainter, build_generator
logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
model = build_generator("spl-small").eval()
inpainter = Inpainter(model, device="cpu", compile=True, model_batch=2)
out = inpainter.infer(np.zeros((2, 256, 256, 3), np.uint8), np.ones((2, 256, 256), bool))
print("compiled", inpainter.compiled, out.shape)
"""


def test_a_compiler_that_fails_leaves_an_eager_model_and_one_log_line(tmp_path):
    # A machine with no working C++ compiler (its own process: Inductor remembers a bad one).
    env = {**os.environ, "CXX": "/bin/false", "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"}
    env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", FAILING_COMPILER], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "compiled False (2, 256, 256, 3)" in done.stdout
    ours = [line for line in done.stderr.splitlines() if line.startswith("spl_model.inpainter")]
    assert len(ours) == 1 and "torch.compile failed" in ours[0] and "runs eager" in ours[0]
    assert "C++ compiler" in ours[0]  # the reason, in the same sentence


def test_compile_auto_stays_eager_on_the_cpu_and_bad_values_are_refused(small_model):
    inpainter = Inpainter(small_model, device="cpu")
    assert inpainter.model_batch == 1 and inpainter.warm_up() == 0.0 and not inpainter.compiled
    with pytest.raises(ValueError, match="compile must be"):
        Inpainter(small_model, device="cpu", compile="yes")
