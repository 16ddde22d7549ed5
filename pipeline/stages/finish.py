"""Finish stage (CPU): inferred rows in, rows with the restored box and its changed-pixel map
out, ready to be encoded and written (pipeline/stages/sinks.py).

Work follows the hole: only the box around the pixels the restore writes is copied, pasted
into and passed on (`restored`, `restored_box`, `changed`); the rest of the image is `pixels`
as decoded. SPL predictions are pasted back with `spl_model.paste_windows`, the same function
the `Inpainter` uses, onto each window's own hole pixels only, tiles cross-faded over their
overlaps. Classical engines (OpenCV Telea and Navier-Stokes) run here on the CPU, on the hole's
box plus the pixels they read around it: they never need an actor.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

import spl_model
from spl_model.deblend import deblend
from spl_model.engines import RADIUS
from spl_model.masks import hole_box
from spl_model.names import CLASSICAL_ENGINES

from ..config import MARK_COLORS
from ..schema import ERROR, WORK_SCHEMA, each_row, pack_bits, unpack_bits
from . import jpeg_region
from .infer_actor import current_node
from .jpeg_region import PIXEL_SOURCES
from .prepare import unpack_plan, unpack_predictions
from .settings import FinishSettings

# px around the hole a classical engine reads (its radius, and the fast-marching band)
CLASSICAL_MARGIN = RADIUS + 2


def finish_batch(batch: pa.Table, settings: FinishSettings) -> pa.Table:
    """WORK_SCHEMA rows in and out: `restored` and `changed` set on the rows to restore, the
    model's payloads dropped. Rows with a template opacity map (`alpha`) get the mark's light
    pixels de-blended (`spl_model/deblend.py`) over the fill."""
    engine, dilate, mark_color = settings.engine, settings.dilate, settings.mark_color
    node = current_node()[0] if engine in CLASSICAL_ENGINES else None

    def finish(row: dict[str, Any]) -> dict[str, Any]:
        update: dict[str, Any] = {}
        decoded = row.get("pixels_box")
        if engine in CLASSICAL_ENGINES:
            box, restored, changed, engine_ms = _classical(row, engine, dilate)
            update.update(node=node, infer_ms=engine_ms)
        else:
            box, restored, changed = _paste(row)
        if row.get("alpha"):
            _deblend(row, box, restored, changed, MARK_COLORS[mark_color])
        if row.get("pixels_box") != decoded:  # more of a JPEG's pixels decoded here
            update.update(pixels=row["pixels"], pixels_box=row["pixels_box"])
        return {
            **update,
            "restored": restored,
            "restored_box": list(box),
            "changed": pack_bits(changed),
        }

    def fail(row: dict[str, Any], exc: Exception) -> dict[str, Any]:
        return {"status": ERROR, "error": f"cannot paste the model's output: {exc}"}

    reads = ("pixels", "hole", "height", "width", "window_boxes", "window_paste",
             "predictions", "alpha", "alpha_box", *PIXEL_SOURCES)  # fmt: skip
    batch = each_row(batch, finish, fail, reads)
    for name in DROPPED:  # the model's payloads, consumed here (error rows' too)
        empty = pa.nulls(batch.num_rows, WORK_SCHEMA.field(name).type)
        batch = batch.set_column(batch.schema.get_field_index(name), name, empty)
    return batch


DROPPED = ("predictions", "window_paste", "windows", "window_holes", "refine", "alpha")


def _deblend(
    row: dict[str, Any],
    box: tuple[int, int, int, int],
    restored: np.ndarray,
    changed: np.ndarray,
    color: tuple[int, int, int],
) -> None:
    """De-blend the mark's light pixels in place, in the opacity map's box (inside the hole,
    so inside the restored box)."""
    x0, y0, x1, y1 = row["alpha_box"]
    alpha = np.frombuffer(row["alpha"], np.uint8).reshape(y1 - y0, x1 - x0) / 255.0
    source = _pixels(row, (x0, y0, x1, y1))[y0:y1, x0:x1]
    inside = (slice(y0 - box[1], y1 - box[1]), slice(x0 - box[0], x1 - box[0]))
    part = deblend(source, restored[inside], alpha, color)
    restored[inside] = part
    changed[inside] = np.any(part != source, axis=2)


def _pixels(row: dict[str, Any], box: tuple[int, int, int, int]) -> np.ndarray:
    """The row's pixels, decoded at least in `box` (a JPEG's deferred pixels: what is decoded
    here is kept on the row)."""
    image, decoded = jpeg_region.pixels(row, box)
    row.update(decoded)
    return image


def _paste(row: dict[str, Any]) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """(box, restored box pixels, changed map of the box) of an SPL row."""
    plan = unpack_plan(row["window_boxes"], row["window_paste"])
    predictions = unpack_predictions(row["predictions"], len(plan.final))
    box = spl_model.union_box(
        [b for b in (spl_model.paste_box(plan.final), row.get("alpha_box")) if b is not None]
    )
    x0, y0, x1, y1 = box
    image = _pixels(row, box)
    restored = image[y0:y1, x0:x1].copy()
    changed = spl_model.paste_windows(
        restored, plan.final, predictions, origin=(x0, y0), shape=image.shape[:2]
    )
    return box, restored, changed


def _classical(
    row: dict[str, Any], engine: str, dilate: int
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, float]:
    """Telea / Navier-Stokes on the hole's box plus what they read around it (the same fill as
    on the whole image); with the engine's own milliseconds."""
    hole = spl_model.dilate(unpack_bits(row["hole"], row["height"], row["width"]), dilate)
    box = hole_box(hole, CLASSICAL_MARGIN)
    assert box is not None  # decode skips items without a hole
    image = _pixels(row, box)
    x0, y0, x1, y1 = box
    part = image[y0:y1, x0:x1]
    started = time.perf_counter()
    restored = spl_model.classical_inpaint(engine, part, hole[y0:y1, x0:x1])
    engine_ms = (time.perf_counter() - started) * 1e3
    return box, restored, np.any(restored != part, axis=2), engine_ms
