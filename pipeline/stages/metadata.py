"""Image metadata that must stay true after a restore: EXIF without its stale thumbnail,
orientation handled once, and JPEG marker segments (EXIF, XMP, IPTC, ICC) carried over.

The EXIF thumbnail (IFD1) is a small JPEG of the original picture, watermark and all; it is
dropped, never kept stale (Pillow's EXIF writer leaves IFD1 out). Everything else in EXIF is
kept: IFD0, the Exif and GPS sub-IFDs.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

ORIENTATION = 0x0112
EXIF_HEADER = b"Exif\x00\x00"


def clean_exif(data: bytes | None, drop_orientation: bool) -> bytes | None:
    """EXIF bytes without the thumbnail; without the orientation tag when the pixels are
    written upright. None when there is nothing left worth writing, or the EXIF is unreadable."""
    if not data:
        return None
    exif = Image.Exif()
    try:
        exif.load(data)
    except Exception:  # unreadable EXIF: drop it rather than copy something stale
        return None
    if drop_orientation:
        exif.pop(ORIENTATION, None)
    if not len(exif):
        return None
    return EXIF_HEADER + exif.tobytes()


def orientation_of(img: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened image; 1 when absent or invalid."""
    try:
        return _valid(int(img.getexif().get(ORIENTATION, 1)))
    except Exception:
        return 1


def exif_orientation(exif: bytes | None) -> int:
    """The orientation (1-8) that EXIF bytes give; 1 when absent or invalid."""
    if not exif:
        return 1
    loaded = Image.Exif()
    try:
        loaded.load(exif)
        return _valid(int(loaded.get(ORIENTATION, 1)))
    except Exception:
        return 1


def _valid(orientation: int) -> int:
    return orientation if 1 <= orientation <= 8 else 1


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """A PNG's chunks up to IEND, read from their headers: (type, offset of its length field,
    offset after its CRC); a chunk cut short by the end of the file ends the list."""
    chunks, at = [], 8
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, end = data[at + 4 : at + 8], at + 12 + length
        if end > len(data):
            break
        chunks.append((kind, at, end))
        if kind == b"IEND":
            break
        at = end
    return chunks


def png_header(data: bytes) -> tuple[int, int, int, int, bool] | None:
    """A PNG's (width, height, bit depth, colour type, interlaced) from its IHDR chunk; None
    when it does not start with one."""
    if len(data) < 29 or data[12:16] != b"IHDR":
        return None
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return width, height, depth, color, interlace != 0


def png_exif(data: bytes) -> bytes | None:
    """A PNG's EXIF (its eXIf chunk, before or after the pixels), as Pillow's `info["exif"]`
    holds it, read from the chunk headers alone: Pillow decodes every pixel to find a chunk
    that follows them."""
    for kind, start, end in png_chunks(data):
        if kind == b"eXIf":
            return EXIF_HEADER + data[start + 8 : end - 4]
    return None


# EXIF orientation -> the Pillow transpose that shows the stored pixels upright
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# ... and the same as array operations, with their inverses
_TO_DISPLAY = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
_TO_STORED = {**_TO_DISPLAY, 6: _TO_DISPLAY[8], 8: _TO_DISPLAY[6]}


def to_display(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation to an H x W (x C) array, as Pillow's `exif_transpose` does."""
    step = _TO_DISPLAY.get(orientation)
    return np.ascontiguousarray(step(array)) if step else array


def to_stored(array: np.ndarray, orientation: int) -> np.ndarray:
    """Undo EXIF orientation: an upright array back in the file's stored order."""
    return np.ascontiguousarray(stored_view(array, orientation))


def turned(orientation: int) -> bool:
    """Whether this EXIF orientation swaps rows and columns (the stored width is shown tall)."""
    return orientation in (5, 6, 7, 8)


def stored_view(array: np.ndarray, orientation: int) -> np.ndarray:
    """`to_stored` as a view of `array`, without a copy."""
    step = _TO_STORED.get(orientation)
    return step(array) if step else array


def stored_box(
    box: tuple[int, int, int, int], shape: tuple[int, int], orientation: int
) -> tuple[int, int, int, int]:
    """Where the box (x0, y0, x1, y1) of an upright image of `shape` (H, W) lies in the file's
    stored order."""
    height, width = shape
    rows = stored_view(np.broadcast_to(np.arange(height)[:, None], shape), orientation)
    cols = stored_view(np.broadcast_to(np.arange(width)[None, :], shape), orientation)
    x0, y0, x1, y1 = box
    swapped = turned(orientation)  # stored rows are upright columns
    down = (cols if swapped else rows)[:, 0]  # what each stored row is, upright
    across = (rows if swapped else cols)[0, :]
    lo, hi = (x0, x1) if swapped else (y0, y1)
    inside_rows = np.nonzero((down >= lo) & (down < hi))[0]
    lo, hi = (y0, y1) if swapped else (x0, x1)
    inside_cols = np.nonzero((across >= lo) & (across < hi))[0]
    return (int(inside_cols[0]), int(inside_rows[0]),
            int(inside_cols[-1]) + 1, int(inside_rows[-1]) + 1)  # fmt: skip


def png_with_icc(data: bytes, icc: bytes | None) -> bytes:
    """A PNG with an iCCP chunk (the colour profile) after its IHDR, for writers without one."""
    if not icc or data[:8] != b"\x89PNG\r\n\x1a\n":
        return data
    body = b"ICC profile\x00\x00" + zlib.compress(icc)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + body) & 0xFFFFFFFF)
    ihdr_end = 8 + 8 + 13 + 4
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each marker segment of a JPEG before its first scan (SOS)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    out, pos = [], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"bad JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        out.append((marker, pos, pos + 2 + length))
        if marker == 0xDA:  # SOS: entropy-coded data follows
            break
        pos += 2 + length
    return out


def replace_exif(data: bytes, exif: bytes | None) -> bytes:
    """The JPEG with its EXIF APP1 segment replaced by `exif` (removed when None)."""
    for marker, start, end in jpeg_segments(data):
        if marker == 0xE1 and data[start + 4 : start + 10] == EXIF_HEADER:
            if not exif:
                return data[:start] + data[end:]
            segment = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
            return data[:start] + segment + data[end:]
    return data


def is_progressive(data: bytes) -> bool:
    return any(marker in (0xC2, 0xC6, 0xCA, 0xCE) for marker, _, _ in jpeg_segments(data))


def is_arithmetic(data: bytes) -> bool:
    arithmetic = (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)  # SOF9-11, SOF13-15
    return any(marker in arithmetic for marker, _, _ in jpeg_segments(data))


def restart_interval(data: bytes) -> int:
    for marker, start, _ in jpeg_segments(data):
        if marker == 0xDD:
            return struct.unpack(">H", data[start + 4 : start + 6])[0]
    return 0
