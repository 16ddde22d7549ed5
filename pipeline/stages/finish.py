"""Finish stage (CPU): inferred rows in, rows with the restored image and its changed-pixel map
out, ready to be encoded and written (pipeline/stages/sinks.py).

SPL predictions are pasted back with `spl_model.paste_window`, the same function the
`Inpainter` uses, onto the window's own hole pixels only. Classical engines (OpenCV Telea and
Navier-Stokes) work on the whole image, here on the CPU: they never need an actor.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

import spl_model

from ..model import CLASSICAL_ENGINES
from ..schema import ERROR, WORK_SCHEMA, pack_bits, table, unpack_bits
from .infer import current_node

SIZE = spl_model.MODEL_SIZE


def finish_batch(batch: pa.Table, *, engine: str, dilate: int = 0) -> pa.Table:
    """WORK_SCHEMA rows in and out: `restored` and `changed` set on the rows to restore, the
    model's payloads dropped."""
    out = []
    node = current_node()[0] if engine in CLASSICAL_ENGINES else None
    for row in batch.to_pylist():
        if not row.get("status"):
            try:
                if engine in CLASSICAL_ENGINES:
                    restored, changed = _classical(row, engine, dilate)
                    row["node"] = node
                else:
                    restored, changed = _paste(row)
                row.update(restored=restored.tobytes(), changed=pack_bits(changed))
            except Exception as exc:  # one item never takes its neighbours down
                row.update(status=ERROR, error=f"cannot paste the model's output: {exc}")
        row.update(predictions=None, window_paste=None, windows=None, window_holes=None)
        out.append(row)
    return table(out, WORK_SCHEMA)


def _pixels(row: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(row["pixels"], np.uint8).reshape(row["height"], row["width"], 3)


def _paste(row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    image = _pixels(row)
    restored = image.copy()
    changed = np.zeros(image.shape[:2], bool)
    boxes = np.asarray(row["window_boxes"], np.int64).reshape(-1, 6)
    predictions = np.frombuffer(row["predictions"], np.uint8).reshape(-1, SIZE, SIZE, 3)
    if len(predictions) != len(boxes):
        raise ValueError(f"{len(predictions)} predictions for {len(boxes)} windows")
    paste, at = row["window_paste"], 0
    for (x0, y0, x1, y1, top, left), prediction in zip(boxes, predictions, strict=True):
        size = (y1 - y0) * (x1 - x0)
        nbytes = (size + 7) // 8
        mask = unpack_bits(paste[at : at + nbytes], y1 - y0, x1 - x0)
        at += nbytes
        window = spl_model.Window((int(x0), int(y0), int(x1), int(y1)), mask)
        changed[y0:y1, x0:x1] |= spl_model.paste_window(
            restored, window, (int(top), int(left)), prediction
        )
    return restored, changed


def _classical(row: dict[str, Any], engine: str, dilate: int) -> tuple[np.ndarray, np.ndarray]:
    image = _pixels(row)
    hole = spl_model.dilate(unpack_bits(row["hole"], row["height"], row["width"]), dilate)
    start = time.perf_counter()
    restored = spl_model.classical_inpaint(engine, image, hole)
    row["infer_ms"] = (time.perf_counter() - start) * 1e3
    return restored, np.any(restored != image, axis=2)
