"""Finish stage (CPU): inferred rows in, rows with the restored image and its changed-pixel map
out, ready to be encoded and written (pipeline/stages/sinks.py).

SPL predictions are pasted back with `spl_model.paste_windows`, the same function the
`Inpainter` uses, onto each window's own hole pixels only, tiles cross-faded over their
overlaps. Classical engines (OpenCV Telea and Navier-Stokes) work on the whole image, here on
the CPU: they never need an actor.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

import spl_model
from spl_model.deblend import deblend

from ..config import MARK_COLORS
from ..model import CLASSICAL_ENGINES
from ..schema import ERROR, WORK_SCHEMA, pack_bits, table, unpack_bits
from .infer import current_node
from .prepare import unpack_plan, unpack_predictions


def finish_batch(
    batch: pa.Table, *, engine: str, dilate: int = 0, mark_color: str = "white"
) -> pa.Table:
    """WORK_SCHEMA rows in and out: `restored` and `changed` set on the rows to restore, the
    model's payloads dropped. Rows with a template opacity map (`alpha`) get the mark's light
    pixels de-blended (`spl_model/deblend.py`) over the fill."""
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
                if row.get("alpha"):
                    _deblend(row, restored, changed, MARK_COLORS[mark_color])
                row.update(restored=restored.tobytes(), changed=pack_bits(changed))
            except Exception as exc:  # one item never takes its neighbours down
                row.update(status=ERROR, error=f"cannot paste the model's output: {exc}")
        row.update(
            predictions=None, window_paste=None, windows=None, window_holes=None, refine=None,
            alpha=None,
        )  # fmt: skip
        out.append(row)
    return table(out, WORK_SCHEMA)


def _deblend(
    row: dict[str, Any], restored: np.ndarray, changed: np.ndarray, color: tuple[int, int, int]
) -> None:
    """De-blend the mark's light pixels in place, in the opacity map's box (inside the hole)."""
    x0, y0, x1, y1 = row["alpha_box"]
    alpha = np.frombuffer(row["alpha"], np.uint8).reshape(y1 - y0, x1 - x0) / 255.0
    source = _pixels(row)[y0:y1, x0:x1]
    box = deblend(source, restored[y0:y1, x0:x1], alpha, color)
    restored[y0:y1, x0:x1] = box
    changed[y0:y1, x0:x1] = np.any(box != source, axis=2)


def _pixels(row: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(row["pixels"], np.uint8).reshape(row["height"], row["width"], 3)


def _paste(row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    plan = unpack_plan(row["window_boxes"], row["window_paste"])
    predictions = unpack_predictions(row["predictions"], len(plan.final))
    restored = _pixels(row).copy()
    changed = spl_model.paste_windows(restored, plan.final, predictions)
    return restored, changed


def _classical(row: dict[str, Any], engine: str, dilate: int) -> tuple[np.ndarray, np.ndarray]:
    image = _pixels(row)
    hole = spl_model.dilate(unpack_bits(row["hole"], row["height"], row["width"]), dilate)
    start = time.perf_counter()
    restored = spl_model.classical_inpaint(engine, image, hole)
    row["infer_ms"] = (time.perf_counter() - start) * 1e3
    return restored, np.any(restored != image, axis=2)
