"""The inference contract users see: uint8 images and masks of any size in, restored images out.

Pixels outside the (dilated) hole come back bit-identical: the model's output is only ever pasted
into hole pixels. Crops from many images are batched together through the 256² generator.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .checkpoint import load_generator
from .crops import Window, from_model_size, plan_windows, square_pad, to_model_size
from .engines import CLASSICAL, classical_inpaint
from .masks import dilate, prepare_mask
from .metrics import mask_stats
from .prefill import prefill
from .weights import default_checkpoint

MODEL_SIZE = 256
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
STRATEGIES = ("crop", "resize")


class Inpainter:
    """Restore images with SPL (or a classical engine).

    model: a loaded generator, a checkpoint path/URL, "default" (the bundled weights), or an
    engine name ("opencv-telea", "opencv-ns"). strategy: "crop" (context windows per hole
    region, the default) or "resize" (whole image to 256²). dilate: grow masks by this many px.
    """

    def __init__(
        self,
        model: nn.Module | str = "default",
        device: str = "auto",
        precision: str = "auto",
        strategy: str = "crop",
        dilate: int = 0,
        batch_size: int = 8,
        context: float = 3.0,
        min_crop: int = MODEL_SIZE,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if precision not in (*PRECISIONS, "auto"):
            raise ValueError(
                f"precision must be auto or one of {sorted(PRECISIONS)}, got {precision!r}"
            )
        if dilate < 0 or batch_size < 1:
            raise ValueError("dilate must be >= 0 and batch_size >= 1")
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        if precision == "auto":  # bf16 on CUDA (within 0.05 dB of fp32), fp32 on CPU
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        self.precision, self.strategy, self.dilate = precision, strategy, dilate
        self.batch_size, self.context, self.min_crop = batch_size, context, min_crop
        self.model: nn.Module | None = None
        if isinstance(model, str) and model in CLASSICAL:
            self.engine, self.model_id = model, model
            return
        if isinstance(model, str):
            path = default_checkpoint() if model == "default" else model
            if path is None:
                raise ValueError(
                    "no bundled default weights in this install: pass a checkpoint, or an engine "
                    f"from {sorted(CLASSICAL)}"
                )
            model = load_generator(path, storage_options=storage_options)
        self.engine = "spl"
        self.model_id = getattr(model, "spl_info", {}).get("model_id", "unregistered")
        self.model = model.to(self.device).eval()
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True  # fixed 256² shapes: autotune once

    def inpaint(self, images: Sequence[np.ndarray], masks: Sequence[Any]) -> list[np.ndarray]:
        """Restored uint8 H×W×3 images, one per (image, mask) pair."""
        return [restored for restored, _ in self.inpaint_with_info(images, masks)]

    def inpaint_with_info(
        self, images: Sequence[np.ndarray], masks: Sequence[Any]
    ) -> list[tuple[np.ndarray, dict[str, Any]]]:
        """Like `inpaint`, with per-image facts: hole geometry, windows used, inference time."""
        if len(images) != len(masks):
            raise ValueError(f"got {len(images)} images but {len(masks)} masks")
        images = [_check_image(img) for img in images]
        holes = [
            dilate(prepare_mask(m, img.shape[:2]), self.dilate) for img, m in zip(images, masks)
        ]
        outputs = [img.copy() for img in images]
        infos = [{**mask_stats(h), "crops": 0, "crop_scale": 0.0, "infer_ms": 0.0} for h in holes]
        if self.engine != "spl":
            for i, (img, hole) in enumerate(zip(images, holes)):
                if hole.any():
                    start = time.perf_counter()
                    outputs[i] = classical_inpaint(self.engine, img, hole)
                    infos[i]["infer_ms"] = (time.perf_counter() - start) * 1e3
            return list(zip(outputs, infos))
        jobs = [
            (i, w)
            for i, hole in enumerate(holes)
            for w in plan_windows(hole, self.strategy, self.context, self.min_crop)
        ]
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start : start + self.batch_size]
            self._run_batch(batch, images, holes, outputs, infos)
        return list(zip(outputs, infos))

    def _run_batch(
        self,
        jobs: list[tuple[int, Window]],
        images: list[np.ndarray],
        holes: list[np.ndarray],
        outputs: list[np.ndarray],
        infos: list[dict[str, Any]],
    ) -> None:
        crops, crop_holes, offsets = [], [], []
        for i, window in jobs:
            x0, y0, x1, y1 = window.box
            crop, offset = square_pad(images[i][y0:y1, x0:x1])
            # Every hole in the window is a hole to the model, other groups' ones included.
            hole, _ = square_pad(holes[i][y0:y1, x0:x1])
            crop, hole = to_model_size(crop, hole, MODEL_SIZE)
            crops.append(crop)
            crop_holes.append(hole)
            offsets.append(offset)
        start = time.perf_counter()
        predictions = self.predict(np.stack(crops), np.stack(crop_holes))
        elapsed = (time.perf_counter() - start) * 1e3
        for (i, window), prediction, (top, left) in zip(jobs, predictions, offsets):
            x0, y0, x1, y1 = window.box
            side = window.side
            restored = from_model_size(prediction, side)[top : top + y1 - y0, left : left + x1 - x0]
            target = outputs[i][y0:y1, x0:x1]
            target[window.paste] = restored[window.paste]
            info = infos[i]
            info["crops"] += 1
            info["crop_scale"] = max(info["crop_scale"], side / MODEL_SIZE)
            info["infer_ms"] += elapsed / len(jobs)

    @torch.inference_mode()
    def predict(self, images: np.ndarray, holes: np.ndarray) -> np.ndarray:
        """Run the generator on N×256×256×3 uint8 crops and N×256×256 bool holes.

        Inputs are built exactly as the paper's evaluation builds them: the 512² branch gets the
        nearest-upsampled masked image (holes = 1.0) and mask. A generator whose config names a
        pre-fill gets its 256² input filled that way first. Returns N×256×256×3 float32 in
        [0, 1] (raw predictions, not composited).
        """
        assert self.model is not None
        images = prefill(images, holes, self.model.config.prefill)
        x = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float().contiguous() / 255
        m = torch.from_numpy(holes).to(self.device)[:, None].float()
        masked = x * (1.0 - m) + m
        masked_512 = F.interpolate(masked, size=2 * MODEL_SIZE, mode="nearest")
        mask_512 = F.interpolate(m, size=2 * MODEL_SIZE, mode="nearest")
        if self.device.type == "cuda":
            x, m, masked_512, mask_512 = (
                t.contiguous(memory_format=torch.channels_last)
                for t in (x, m, masked_512, mask_512)
            )
        with self._autocast():
            prediction, _ = self.model(x, m, masked_512, mask_512)
        return prediction.float().permute(0, 2, 3, 1).cpu().numpy()

    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])


def _check_image(image: np.ndarray | Image.Image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"images must be uint8 H×W×3 arrays, got {arr.dtype} {arr.shape}")
    if min(arr.shape[:2]) < 1:
        raise ValueError(f"empty image {arr.shape}")
    return arr
