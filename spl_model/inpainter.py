"""The inference contract users see: uint8 images and masks of any size in, restored images out.

Pixels outside the (dilated) hole come back bit-identical: the model's output is only ever pasted
into hole pixels. Crops from many images are batched together through the 256² generator.
"""

from __future__ import annotations

import logging
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
from .crops import MODEL_SIZE, ModelWindow, cut_windows, paste_window, paste_windows, plan_windows
from .engines import CLASSICAL, classical_inpaint
from .masks import dilate, prepare_mask
from .metrics import mask_stats
from .names import PRECISIONS, STRATEGIES
from .prefill import prefill_holes
from .weights import default_checkpoint

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MODEL_BATCH = {"cuda": 64, "cpu": 1}  # windows per model call when the caller does not say
# torch.compile per device: CUDA graphs replayed on the fixed batch shapes; plain Inductor on
# the CPU. `compile="auto"` compiles on CUDA only: on a 2-core CPU the bundled model ran 1.75x
# faster compiled at batch 8, after 78 s of compiling its two batch shapes (README).
COMPILE_MODES = {"cuda": "reduce-overhead", "cpu": "default"}
BATCH_SHAPES = (1, 8, 32)  # a compiled model pads a partial batch up to one of these (or the
# model batch), so it never meets a new shape: no recompiles, no dynamic-shape fallback

log = logging.getLogger(__name__)


class Inpainter:
    """Restore images with SPL (or a classical engine).

    model: a loaded generator, a checkpoint path/URL, "default" (the bundled weights), or an
    engine name ("opencv-telea", "opencv-ns"). strategy: "crop" (context windows per hole
    region, the default) or "resize" (whole image to 256²). dilate: grow masks by this many px.
    model_batch: windows per model call (default by device, `MODEL_BATCH`). compile: True,
    False or "auto" (CUDA only): torch.compile the device step, warmed up on every batch shape
    (`batch_shapes`) at the first call or by `warm_up()`; a compile failure falls back to eager.
    """

    def __init__(
        self,
        model: nn.Module | str = "default",
        device: str = "auto",
        precision: str = "auto",
        strategy: str = "crop",
        dilate: int = 0,
        model_batch: int | None = None,
        context: float = 3.0,
        min_crop: int = MODEL_SIZE,
        storage_options: dict[str, Any] | None = None,
        compile: bool | str = "auto",
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if compile not in (True, False, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
        if dilate < 0 or (model_batch is not None and model_batch < 1):
            raise ValueError("dilate must be >= 0 and model_batch >= 1")
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        if precision == "auto":  # bf16 on CUDA (within 0.05 dB of fp32), fp32 on CPU
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        self.precision, self.strategy, self.dilate = precision, strategy, dilate
        self.model_batch = model_batch or MODEL_BATCH.get(self.device.type, MODEL_BATCH["cpu"])
        self.context, self.min_crop = context, min_crop
        self.model: nn.Module | None = None
        self.compiled = False  # whether the device step runs compiled (after `warm_up`)
        self.warmup_s: float | None = None  # seconds `warm_up` took; None until it ran
        self._compile = compile if compile != "auto" else self.device.type == "cuda"
        self._step: Any = self._device_step
        self._copy_stream: Any = None
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

    @property
    def batch_shapes(self) -> tuple[int, ...]:
        """The batch sizes a compiled device step runs at: a few fixed ones up to the model
        batch, which a partial batch is padded up to."""
        return tuple(sorted({s for s in BATCH_SHAPES if s < self.model_batch} | {self.model_batch}))

    def padded_batch(self, count: int) -> int:
        """The batch `count` windows run at: the next of `batch_shapes` when compiled (a batch
        larger than the model batch runs eager, as it is)."""
        if not self.compiled or count > self.model_batch:
            return count
        return next(s for s in self.batch_shapes if s >= count)

    def warm_up(self) -> float:
        """Compile the device step (when asked) and run it once per batch shape, so that no
        request pays for compilation; returns the seconds it took. A compile error is logged
        in one sentence and the model runs eager."""
        if self.warmup_s is not None:
            return self.warmup_s
        self.warmup_s = 0.0  # set first: the `launch` calls below must not warm up again
        if not self._compile or self.model is None:
            return self.warmup_s
        began = time.perf_counter()
        try:
            mode = COMPILE_MODES.get(self.device.type, "default")
            self._step = torch.compile(self._device_step, mode=mode, dynamic=False)
            self.compiled = True
            for shape in self.batch_shapes:
                windows = np.zeros((shape, MODEL_SIZE, MODEL_SIZE, 3), np.uint8)
                holes = np.zeros((shape, MODEL_SIZE, MODEL_SIZE), bool)
                for _ in range(3 if self.device.type == "cuda" else 1):  # CUDA graphs record
                    self.fetch(self.launch(windows, holes))  # on the 2nd/3rd call
        except Exception as exc:  # any compiler failure: run eager, never fail the job
            self._step, self.compiled = self._device_step, False
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = " ".join(lines[:2])[:240]  # Inductor's own error is on the second line
            log.warning(
                "torch.compile failed on %s (%s: %s); the model runs eager",
                self.device,
                type(exc).__name__,
                reason,
            )
        self.warmup_s = time.perf_counter() - began
        return self.warmup_s

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
        plans = [
            plan_windows(hole, self.strategy, self.context, self.min_crop, refine=self.refines)
            for hole in holes
        ]
        # Coarse looks at thick holes first, pasted into a working copy the final pass is cut
        # from (their fill is its pre-fill); then the final pass, pasted into the output.
        work = [img.copy() if plan.first else img for img, plan in zip(images, plans)]
        method = self.prefill_method
        firsts = [
            cut_windows(img, h, p.first, prefill=method) for img, h, p in zip(images, holes, plans)
        ]
        for i, (cut, prediction) in self._run_cuts(firsts, infos):
            paste_window(work[i], cut.window, prediction)
        finals = [
            cut_windows(w, h, p.final, filled=h if p.first else None, prefill=method)
            for w, h, p in zip(work, holes, plans)
        ]
        done: list[list[tuple[ModelWindow, np.ndarray]]] = [[] for _ in images]
        for i, (cut, prediction) in self._run_cuts(finals, infos):
            done[i].append((cut, prediction))
        for i, pairs in enumerate(done):
            if pairs:
                cuts, predictions = zip(*pairs)
                paste_windows(outputs[i], [c.window for c in cuts], predictions)
            infos[i]["crop_scale"] = plans[i].scale
        return list(zip(outputs, infos))

    def _run_cuts(self, cuts: list[list[ModelWindow]], infos: list[dict[str, Any]]):
        """(image index, cut, prediction) of every cut, in model batches of `model_batch`."""
        jobs = [(i, cut) for i, image_cuts in enumerate(cuts) for cut in image_cuts]
        for start in range(0, len(jobs), self.model_batch):
            batch = jobs[start : start + self.model_batch]
            windows = np.stack([cut.image for _, cut in batch])
            window_holes = np.stack([cut.hole for _, cut in batch])
            began = time.perf_counter()
            predictions = self.infer(windows, window_holes)  # cut pre-filled
            elapsed = (time.perf_counter() - began) * 1e3
            for (i, cut), prediction in zip(batch, predictions):
                infos[i]["crops"] += 1
                infos[i]["infer_ms"] += elapsed / len(batch)
                yield i, (cut, prediction)

    @property
    def refines(self) -> bool:
        """Whether thick holes get a refining pass over their coarse fill: only a generator
        that reads a pre-filled hole can use that fill."""
        return self.prefill_method != "none"

    @property
    def prefill_method(self) -> str:
        """The pre-fill the generator's input convention needs (`none` for the paper's)."""
        return self.model.config.prefill if self.model is not None else "none"

    def prefill(self, windows: np.ndarray, holes: np.ndarray) -> np.ndarray:
        """Model-size uint8 windows as the generator reads them (a CPU step: OpenCV Telea for a
        residual generator, the windows unchanged for the paper's)."""
        return prefill_holes(windows, holes, self.prefill_method)

    def infer(self, windows: np.ndarray, holes: np.ndarray) -> np.ndarray:
        """The device step alone: N×256×256×3 uint8 windows (already pre-filled) and N×256×256
        bool holes in, N×256×256×3 uint8 raw predictions out (rounded on the device)."""
        return self.fetch(self.launch(windows, holes))

    @torch.inference_mode()
    def launch(self, windows: np.ndarray, holes: np.ndarray) -> tuple[torch.Tensor, Any]:
        """Start `infer` without waiting for it. On CUDA the inputs go up from pinned memory on
        a copy stream and the result comes down non-blocking, so the caller can launch the next
        batch (its copy overlapping this one's compute) before `fetch`ing this one. A compiled
        step gets the batch padded up to the next of `batch_shapes`."""
        if self.warmup_s is None:
            self.warm_up()
        count = len(windows)
        compiled = self.compiled and count <= self.model_batch  # else no compiled shape fits
        shape = self.padded_batch(count)
        if shape > count:
            windows, holes = _pad(windows, shape), _pad(holes, shape)
        images = torch.from_numpy(np.require(windows, np.uint8, ["C", "W"]))
        masks = torch.from_numpy(np.require(holes, bool, ["C", "W"]))
        if self.device.type == "cuda":
            images, masks = self._upload(images, masks)
            if compiled:
                torch.compiler.cudagraph_mark_step_begin()  # the last replay's output is copied
        out = (self._step if compiled else self._device_step)(images, masks)[:count]
        if self.device.type != "cuda":
            return out, None
        host = torch.empty(out.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(out, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

    def _device_step(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """uint8 N×H×W×3 windows and bool N×H×W holes on the device -> uint8 N×H×W×3
        predictions (what `torch.compile` compiles, as one graph)."""
        prediction = self._forward(images, masks)
        out = (prediction * 255.0).round().clamp(0, 255).to(torch.uint8)
        return out.permute(0, 2, 3, 1).contiguous()

    @staticmethod
    def fetch(launched: tuple[torch.Tensor, Any]) -> np.ndarray:
        """The uint8 predictions of a `launch`, once they are on the host."""
        host, done = launched
        if done is not None:
            done.synchronize()
        return host.numpy()

    def _upload(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(self._copy_stream):
            moved = tuple(
                t.pin_memory().to(self.device, non_blocking=True) for t in (images, masks)
            )
        compute = torch.cuda.current_stream(self.device)
        compute.wait_stream(self._copy_stream)
        for t in moved:
            t.record_stream(compute)  # the allocator must not reuse them before compute ends
        return moved

    @torch.inference_mode()
    def predict(self, images: np.ndarray, holes: np.ndarray) -> np.ndarray:
        """Run the generator on N×256×256×3 uint8 crops and N×256×256 bool holes.

        Inputs are built exactly as the paper's evaluation builds them: the 512² branch gets the
        nearest-upsampled masked image (holes = 1.0) and mask. A generator whose config names a
        pre-fill gets its 256² input filled that way first. Returns N×256×256×3 float32 in
        [0, 1] (raw predictions, not composited).
        """
        images = self.prefill(images, holes)
        x, m = torch.from_numpy(images).to(self.device), torch.from_numpy(holes).to(self.device)
        return self._forward(x, m).float().permute(0, 2, 3, 1).cpu().numpy()

    def _forward(self, images: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
        """uint8 N×H×W×3 and bool N×H×W tensors on the device -> N×3×H×W predictions."""
        assert self.model is not None
        x = images.permute(0, 3, 1, 2).float().contiguous() / 255
        m = holes[:, None].float()
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
        return prediction.float()

    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.precision])


def _pad(batch: np.ndarray, size: int) -> np.ndarray:
    """`batch` with zero items appended up to `size` items."""
    return np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), batch.dtype)])


def _check_image(image: np.ndarray | Image.Image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"images must be uint8 H×W×3 arrays, got {arr.dtype} {arr.shape}")
    if min(arr.shape[:2]) < 1:
        raise ValueError(f"empty image {arr.shape}")
    return arr
