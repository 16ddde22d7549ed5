"""A JPEG decoded only where the restore reads it.

For a JPEG that is written back as a JPEG (its blocks kept), the decode stage entropy-decodes
it once (pipeline/stages/jpeg_coefficients.py) and keeps the coefficients in the row
(`jpeg_blocks`, `jpeg_bits`, `jpeg_raw`) instead of pixels. Each stage then asks `pixels` for
the box it reads: the prepare stage for its windows, the finish stage of a classical engine for
the hole's box, the writer for the whole image only where it re-encodes one. What was decoded
is `pixels_box`; the writer writes from the same coefficients, so the file is decoded once per
item. The pixels equal libjpeg-turbo's on every pixel (pipeline/stages/jpeg_pixels.py).

A hole whose neighbourhood covers much of the image is decoded whole at once: OpenCV decodes
a whole image faster than this decodes a large part of it.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from spl_model import MODEL_SIZE
from spl_model.masks import hole_box

from . import jpeg_coefficients, jpeg_pixels, jpeg_scan, metadata

# what a stage reads besides `pixels` to decode more of them
PIXEL_SOURCES = (
    "pixels_box", "jpeg_blocks", "jpeg_bits", "jpeg_raw", "image_bytes", "orientation"
)  # fmt: skip
MARGIN = 16  # px beyond a stage's box: the writer's MCU rounding, the quality band (9 px)
MAX_SHARE = 0.12  # of the image, in the hole's box grown by a window: beyond it, decode whole
Box = tuple[int, int, int, int]
WHOLE = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION  # stored order, as `pixels` too


def defer(source: bytes, hole: np.ndarray, orientation: int = 1) -> dict[str, Any] | None:
    """The columns of a JPEG whose pixels wait until a stage asks for them: its coefficients
    and an empty `pixels_box`; None where it is decoded whole now (a large hole, or a file the
    coefficient decoder does not cover). `hole` is upright (EXIF `orientation` applied)."""
    height, width = hole.shape
    near = hole_box(hole, MODEL_SIZE)
    if near is None or _area(near) > MAX_SHARE * height * width:
        return None
    coefficients = jpeg_coefficients.read(source)
    if coefficients is None:
        return None
    scan, decoded = coefficients
    stored = metadata.stored_view(hole, orientation).shape
    if not jpeg_pixels.supported(scan) or (scan.height, scan.width) != stored:
        return None
    return {
        "pixels": None,
        "pixels_box": [0, 0, 0, 0],
        "jpeg_blocks": decoded.blocks,
        "jpeg_bits": decoded.bits,
        "jpeg_raw": decoded.raw,
    }


def pixels(row: dict[str, Any], box: Box | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The row's H×W×3 RGB pixels, decoded at least in `box` grown by MARGIN (None: the whole
    image), and the columns to set on the row where this decoded more (else {}). Pixels
    outside `pixels_box` are zero and must not be read."""
    height, width = row["height"], row["width"]
    have = row.get("pixels_box")
    if have is None:  # decoded whole by the decode stage
        return np.frombuffer(row["pixels"], np.uint8).reshape(height, width, 3), {}
    want = (0, 0, width, height) if box is None else _grow(box, MARGIN, width, height)
    if _inside(want, have):
        return np.frombuffer(row["pixels"], np.uint8).reshape(height, width, 3), {}
    orientation = row.get("orientation") or 1
    if box is None or _area(want) > MAX_SHARE * height * width:  # OpenCV: whole, faster
        stored = cv2.imdecode(np.frombuffer(row["image_bytes"], np.uint8), WHOLE)
        shape = (width, height) if metadata.turned(orientation) else (height, width)
        if stored is None or stored.shape[:2] != shape:
            scan, decoded = coefficients(row)
            stored = jpeg_pixels.pixels(scan, decoded, (0, 0, scan.width, scan.height))
        image = metadata.to_display(stored, orientation)
        return image, {"pixels": image, "pixels_box": None}
    if _area(have) > 0:
        want = (min(want[0], have[0]), min(want[1], have[1]),
                max(want[2], have[2]), max(want[3], have[3]))  # fmt: skip
    scan, decoded = coefficients(row)
    image = np.zeros((height, width, 3), np.uint8)  # zero pages cost nothing until written
    x0, y0, x1, y1 = want
    stored_box = metadata.stored_box(want, (height, width), orientation)
    part = jpeg_pixels.pixels(scan, decoded, stored_box)  # in the file's order: shown upright
    image[y0:y1, x0:x1] = metadata.to_display(part, orientation)
    return image, {"pixels": image, "pixels_box": list(want)}


def coefficients(row: dict[str, Any]) -> tuple[jpeg_scan.Scan, jpeg_scan.Decoded] | None:
    """The scan and decoded coefficients the decode stage kept in the row, or None."""
    if row.get("jpeg_blocks") is None:
        return None
    scan = jpeg_coefficients.frame(row["image_bytes"])
    rows, cols = scan.mcus
    blocks = np.frombuffer(row["jpeg_blocks"], np.int16).reshape(rows * cols, -1, 64)
    bits = np.frombuffer(row["jpeg_bits"], np.int64)
    return scan, jpeg_scan.Decoded(blocks, bits, np.frombuffer(row["jpeg_raw"], np.uint8))


def _grow(box: Box, margin: int, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    x0, y0 = max(0, x0 - margin), max(0, y0 - margin)
    return x0, y0, min(width, x1 + margin), min(height, y1 + margin)


def _inside(box: Box, outer: list[int] | Box) -> bool:
    return outer[0] <= box[0] and outer[1] <= box[1] and box[2] <= outer[2] and box[3] <= outer[3]


def _area(box: Box | list[int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])
