"""A JPEG's DCT coefficients, from whichever of our decoders covers it: one sequential scan
(pipeline/stages/jpeg_scan.py, which the writer can splice) or a progressive file
(pipeline/stages/jpeg_progressive.py, which the writer codes again as one baseline scan)."""

from __future__ import annotations

import numpy as np

from . import jpeg_progressive, jpeg_scan
from .jpeg_scan import Decoded, Scan

NOT_SPLICED = (np.zeros(0, np.int64), np.zeros(0, np.uint8))  # no MCU bits to copy


def read(data: bytes) -> tuple[Scan, Decoded] | None:
    """The frame and decoded coefficients of a JPEG; None where neither decoder covers it."""
    scan = jpeg_scan.parse(data)
    if scan is not None:
        decoded = jpeg_scan.decode(data, scan)
        return None if decoded is None else (scan, decoded)
    progressive = jpeg_progressive.parse(data)
    if progressive is None:
        return None
    scan, parts = progressive
    blocks = jpeg_progressive.decode(scan, parts)
    return None if blocks is None else (scan, Decoded(blocks, *NOT_SPLICED))


def frame(data: bytes) -> Scan | None:
    """What `read` gives as the frame, without decoding."""
    return jpeg_scan.parse(data) or jpeg_progressive.frame(data)


def spliceable(decoded: Decoded) -> bool:
    """Whether the writer can copy the source's bits (a sequential scan) or codes it again."""
    return len(decoded.bits) > 0
