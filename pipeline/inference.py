"""Inference stage: a Ray actor that loads the model once and inpaints batches of RGB rows.

Only the public `spl_model` API is used. A batch that fails is retried item by item, so
one bad item becomes one `error` row instead of failing its neighbours; an item that crashes
the worker itself is found and bounded by the run's crash journal (pipeline/crashes.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pyarrow as pa

from .crashes import CRASH_ERROR, LIMIT, maybe_crash
from .schema import ERROR, WORK_SCHEMA, table

log = logging.getLogger(__name__)
CLASSICAL_ENGINES = ("opencv-telea", "opencv-ns")


def build_inpainter(
    model: str,
    *,
    device: str = "auto",
    precision: str = "auto",
    strategy: str = "crop",
    dilate: int = 0,
    batch_size: int = 8,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """An `spl_model.Inpainter` for an engine name or a checkpoint path/URL."""
    import spl_model

    source: Any = model
    if model not in CLASSICAL_ENGINES:
        source = spl_model.load_generator(model, device="cpu", storage_options=storage_options)
    return spl_model.Inpainter(
        source,
        device=device,
        precision=precision,
        strategy=strategy,
        dilate=dilate,
        batch_size=batch_size,
    )


class InpaintActor:
    """Callable class for `map_batches(compute=ActorPoolStrategy(...))`."""

    def __init__(
        self,
        model: str,
        *,
        expected_model_id: str | None = None,
        threads: int | None = None,
        journal: Any = None,
        **inpainter_kwargs: Any,
    ):
        self.journal = journal  # the run's CrashJournal (pipeline/crashes.py), when on Ray
        if threads:
            import torch

            torch.set_num_threads(threads)
        start = time.perf_counter()
        self.inpainter = build_inpainter(model, **inpainter_kwargs)
        self.engine = self.inpainter.engine
        self.model_id = self.inpainter.model_id
        if expected_model_id and self.model_id != expected_model_id:
            raise RuntimeError(
                f"the model loaded by this worker has id {self.model_id}, but the run was "
                f"planned with {expected_model_id}: the checkpoint changed during the run"
            )
        self.node = _node_id()
        log.info(
            "model %s (%s) loaded in %.1fs",
            self.model_id[:12],
            self.engine,
            time.perf_counter() - start,
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        todo = [row for row in rows if not row.get("status")]
        if todo:
            crashed = self._crashed([row["key"] for row in todo])
            groups = [todo] if not crashed else [[row] for row in todo]  # isolate a crasher
            for group in groups:
                self._inpaint(group, crashed)
        for row in rows:
            row.update(engine=self.engine, model_id=self.model_id, node=self.node, pixels=None)
        return table(rows, WORK_SCHEMA)

    def _inpaint(self, rows: list[dict[str, Any]], crashed: dict[str, int]) -> None:
        keys = [row["key"] for row in rows]
        if len(rows) == 1 and crashed.get(keys[0], 0) >= LIMIT:
            rows[0].update(status=ERROR, error=CRASH_ERROR.format(n=crashed[keys[0]]))
            return
        self._journal("begin", keys)
        for key in keys:
            maybe_crash(key)
        images = [_rgb(row) for row in rows]
        masks = [_hole(row) for row in rows]
        for row, image, outcome in zip(rows, images, self._run(images, masks), strict=True):
            _apply(row, image, outcome)
        self._journal("end", keys)

    def _crashed(self, keys: list[str]) -> dict[str, int]:
        return self._journal("crashes", keys) or {}

    def _journal(self, method: str, keys: list[str]) -> Any:
        """Call the crash journal; without one (or if it is lost), items run unguarded."""
        if self.journal is None:
            return None
        import ray

        try:
            return ray.get(getattr(self.journal, method).remote(keys), timeout=60)
        except Exception as exc:
            log.warning("crash journal unavailable (%s); going on without it", exc)
            self.journal = None
            return None

    def _run(self, images: list[np.ndarray], masks: list[np.ndarray]) -> list[Any]:
        """Per item: (restored, info) or the exception that item raised."""
        try:
            return list(self.inpainter.inpaint_with_info(images, masks))
        except Exception as exc:
            if len(images) == 1:
                return [exc]
            log.warning("batch of %d failed (%s); retrying item by item", len(images), exc)
        outcomes: list[Any] = []
        for image, mask in zip(images, masks, strict=True):
            try:
                outcomes.append(self.inpainter.inpaint_with_info([image], [mask])[0])
            except Exception as exc:
                outcomes.append(exc)
        return outcomes


def _apply(row: dict[str, Any], image: np.ndarray, outcome: Any) -> None:
    if isinstance(outcome, BaseException):
        row.update(status=ERROR, error=f"inpainting failed: {type(outcome).__name__}: {outcome}")
        return
    restored, info = outcome
    restored = np.asarray(restored)
    if restored.shape != image.shape or restored.dtype != np.uint8:
        row.update(
            status=ERROR,
            error=f"engine returned {restored.shape} {restored.dtype} for a {image.shape} image",
        )
        return
    changed = np.any(restored != image, axis=2)
    row["restored"] = np.ascontiguousarray(restored).tobytes()
    row["changed"] = np.packbits(changed.ravel()).tobytes()
    row["infer_ms"] = float(info["infer_ms"])
    row["crops"] = int(info["crops"])  # windows the model ran on (0 for OpenCV engines)
    row["crop_scale"] = float(info["crop_scale"])  # largest window side / 256: >1 downscaled


def _rgb(row: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(row["pixels"], np.uint8).reshape(row["height"], row["width"], 3)


def _hole(row: dict[str, Any]) -> np.ndarray:
    return unpack_bits(row["hole"], row["height"], row["width"])


def unpack_bits(data: bytes, height: int, width: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, np.uint8), count=height * width)
    return bits.reshape(height, width).astype(bool)


def _node_id() -> str | None:
    try:
        import ray

        if not ray.is_initialized():  # get_runtime_context() would start a Ray
            return None
        return ray.get_runtime_context().get_node_id()
    except Exception:
        return None
