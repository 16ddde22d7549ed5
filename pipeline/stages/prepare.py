"""Prepare stage (CPU): decoded rows in, rows with the model-size windows of each item out.

Everything the device does not need to do happens here: the hole map is dilated, the windows
are planned from the hole's shape (`spl_model.plan_windows`, the same planner the `Inpainter`
uses), cut, resized to 256² and pre-filled when the generator reads pre-filled input. The
whole plan travels with the row (`window_boxes`, `window_paste`); the infer stage receives only
`windows` and `window_holes`.

An item with thick holes goes to the actors twice (coarse to fine): first its coarse windows;
then `refine_batch` pastes their fill into a working copy and cuts the final tiles from it,
with the coarse fill as their pre-fill. Other items send their final windows at once. Rows of
classical engines (which work at full resolution) get no windows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

import spl_model
from spl_model.crops import (
    Window,
    WindowPlan,
    cut_windows,
    paste_window,
    plan_windows,
    union_box,
)
from spl_model.names import CLASSICAL_ENGINES

from ..schema import ERROR, each_row, pack_bits, unpack_bits
from . import jpeg_region
from .jpeg_region import PIXEL_SOURCES
from .settings import PrepareSettings

SIZE = spl_model.MODEL_SIZE
# Per window in `window_boxes`: box (4), core (4, -1 for none), feather, group, and its pass:
# FIRST (a coarse look), FINAL, or REFINING (a final tile over a coarse fill).
BOX_FIELDS = 11
FINAL, FIRST, REFINING = 0, 1, 2


def prepare_batch(batch: pa.Table, settings: PrepareSettings) -> pa.Table:
    """WORK_SCHEMA rows in and out; rows to restore with SPL gain their windows."""
    s = settings
    if s.engine in CLASSICAL_ENGINES:
        return batch
    return each_row(
        batch,
        lambda row: prepare_row(row, s.strategy, s.dilate, s.prefill),
        _fail("cannot cut model windows"),
        reads=("pixels", "hole", "height", "width", *PIXEL_SOURCES),
    )


def refine_batch(batch: pa.Table, settings: PrepareSettings) -> pa.Table:
    """Rows back from their coarse pass in, rows with their final windows out: the coarse
    predictions are pasted into a copy of the image, and the final tiles cut from it."""
    s = settings
    return each_row(
        batch,
        lambda row: refine_row(row, s.prefill, s.dilate) if row.get("refine") else {},
        _fail("cannot refine the coarse fill"),
        reads=("pixels", "hole", "height", "width", "refine", "window_boxes", "window_paste",
               "predictions", *PIXEL_SOURCES),
    )  # fmt: skip


def needs_refine(batch: pa.Table) -> bool:
    """Whether any row of an inferred batch still has its final pass to run."""
    return any(
        refine and not status
        for refine, status in zip(
            batch["refine"].to_pylist(), batch["status"].to_pylist(), strict=True
        )
    )


def _fail(failure: str):
    return lambda row, exc: {"status": ERROR, "error": f"{failure}: {exc}", "refine": None}


def prepare_row(row: dict[str, Any], strategy: str, dilate: int, prefill: str) -> dict:
    """The window columns of one decoded row: the plan, and the first windows to infer (and
    the pixels they read, where the decode stage left them to be decoded)."""
    hole = _hole(row, dilate)
    plan = plan_windows(hole, strategy, refine=prefill != "none")
    image, decoded = jpeg_region.pixels(row, union_box([w.box for w in plan.first + plan.final]))
    boxes, paste = pack_plan(plan)
    sending = plan.first or plan.final
    return {
        **decoded,
        **_cut(image, hole, sending, None, prefill),
        "window_boxes": boxes,
        "window_paste": paste,
        "refine": bool(plan.first),
        "crops": len(plan),
        "crop_scale": plan.scale,
    }


def refine_row(row: dict[str, Any], prefill: str, dilate: int) -> dict:
    """The final windows of a row whose coarse predictions came back."""
    plan = unpack_plan(row["window_boxes"], row["window_paste"])
    predictions = unpack_predictions(row["predictions"], len(plan.first))
    x0, y0, x1, y1 = union_box([w.box for w in plan.final])
    image, decoded = jpeg_region.pixels(row, (x0, y0, x1, y1))  # (prepare decoded these)
    work = np.empty_like(image)  # the final tiles read their own boxes only: copy just those
    work[y0:y1, x0:x1] = image[y0:y1, x0:x1]
    for window, prediction in zip(plan.first, predictions, strict=True):
        paste_window(work, window, prediction)
    hole = _hole(row, dilate)
    return {
        **decoded,
        **_cut(work, hole, plan.final, hole, prefill),
        "predictions": None,
        "refine": False,
    }


def _cut(
    image: np.ndarray,
    hole: np.ndarray,
    windows: list[Window],
    filled: np.ndarray | None,
    prefill: str,
) -> dict:
    cuts = cut_windows(image, hole, windows, filled=filled, size=SIZE, prefill=prefill)
    holes = np.stack([cut.hole for cut in cuts])
    pixels = np.stack([cut.image for cut in cuts])
    return {"windows": pixels.tobytes(), "window_holes": pack_bits(holes)}


def _hole(row: dict[str, Any], dilate: int) -> np.ndarray:
    return spl_model.dilate(unpack_bits(row["hole"], row["height"], row["width"]), dilate)


def pack_plan(plan: WindowPlan) -> tuple[list[int], bytes]:
    """A plan as the `window_boxes` ints and the `window_paste` bytes of a work row."""
    boxes: list[int] = []
    paste = []
    for first, windows in ((True, plan.first), (False, plan.final)):
        for w in windows:
            core = w.core if w.core is not None else (-1, -1, -1, -1)
            stage = FIRST if first else REFINING if w.prefilled else FINAL
            boxes += [*w.box, *core, w.feather, w.group, stage]
            paste.append(pack_bits(w.paste))
    return boxes, b"".join(paste)


def unpack_plan(boxes: list[int], paste: bytes) -> WindowPlan:
    """The plan `pack_plan` packed."""
    fields = np.asarray(boxes, np.int64).reshape(-1, BOX_FIELDS)
    first: list[Window] = []
    final: list[Window] = []
    at = 0
    for x0, y0, x1, y1, c0, c1, c2, c3, feather, group, stage in fields:
        nbytes = ((y1 - y0) * (x1 - x0) + 7) // 8
        window = Window(
            (int(x0), int(y0), int(x1), int(y1)),
            unpack_bits(paste[at : at + nbytes], int(y1 - y0), int(x1 - x0)),
            None if c0 < 0 else (int(c0), int(c1), int(c2), int(c3)),
            int(feather),
            int(group),
            prefilled=stage == REFINING,
        )
        at += nbytes
        (first if stage == FIRST else final).append(window)
    return WindowPlan(first, final)


def unpack_predictions(data: bytes, count: int) -> np.ndarray:
    """The N×256×256×3 uint8 predictions of a row, checked against the windows sent."""
    predictions = np.frombuffer(data, np.uint8).reshape(-1, SIZE, SIZE, 3)
    if len(predictions) != count:
        raise ValueError(f"{len(predictions)} predictions for {count} windows")
    return predictions
