"""Prepare stage (CPU): decoded rows in, rows with the model-size windows of each item out.

Everything the device does not need to do happens here: the hole map is dilated, the
windows are planned (`spl_model.cut_windows`, the same function the `Inpainter` uses), cut,
resized to 256² and pre-filled when the generator reads pre-filled input. The infer stage then
receives only `windows` and `window_holes`; `window_boxes` and `window_paste` stay here for the
finish stage. Rows of classical engines (which work at full resolution) get no windows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

import spl_model

from ..model import CLASSICAL_ENGINES
from ..schema import ERROR, WORK_SCHEMA, pack_bits, table, unpack_bits


def prepare_batch(
    batch: pa.Table,
    *,
    engine: str,
    strategy: str = "crop",
    dilate: int = 0,
    prefill: str = "none",
) -> pa.Table:
    """WORK_SCHEMA rows in and out; rows to restore with SPL gain their windows."""
    if engine in CLASSICAL_ENGINES:
        return batch
    out = []
    for row in batch.to_pylist():
        if not row.get("status"):
            try:
                row.update(prepare_row(row, strategy, dilate, prefill))
            except Exception as exc:  # one item never takes its neighbours down
                row.update(status=ERROR, error=f"cannot cut model windows: {exc}")
        out.append(row)
    return table(out, WORK_SCHEMA)


def prepare_row(row: dict[str, Any], strategy: str, dilate: int, prefill: str) -> dict:
    """The window columns of one decoded row."""
    height, width = row["height"], row["width"]
    image = np.frombuffer(row["pixels"], np.uint8).reshape(height, width, 3)
    hole = spl_model.dilate(unpack_bits(row["hole"], height, width), dilate)
    cuts = spl_model.cut_windows(image, hole, strategy, size=spl_model.MODEL_SIZE)
    windows = np.stack([cut.image for cut in cuts])
    holes = np.stack([cut.hole for cut in cuts])
    windows = spl_model.prefill_holes(windows, holes, prefill)
    boxes = [v for cut in cuts for v in (*cut.window.box, *cut.offset)]
    return {
        "windows": windows.tobytes(),
        "window_holes": pack_bits(holes),
        "window_boxes": boxes,
        "window_paste": b"".join(pack_bits(cut.window.paste) for cut in cuts),
        "crops": len(cuts),
        "crop_scale": max(cut.window.side for cut in cuts) / spl_model.MODEL_SIZE,
    }
