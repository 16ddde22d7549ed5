"""Lossless-outside-the-hole JPEG: a restored JPEG keeps the source's DCT coefficients in every
MCU that the restore did not touch, and re-encodes only the MCUs (8x8 or 16x16 pixel blocks, by
the chroma subsampling) that hold a changed pixel, with the source's own quantisation tables and
sampling factors. A second restore with the same mask changes nothing outside the hole.

Most JPEGs take the splice (pipeline/stages/jpeg_scan.py): the source's scan with the bits of
every unchanged MCU copied and the others coded again, every byte before the scan kept;
progressive ones are decoded by pipeline/stages/jpeg_progressive.py and written as one baseline
scan. The others (restart markers) are read and written whole with jpeglib (libjpeg; see
docs/PIPELINE.md for why this library). Every marker segment of the source (JFIF, EXIF, XMP,
IPTC, ICC, comments) is kept; the EXIF loses only its thumbnail. The pixels stay in the file's
stored orientation and the EXIF keeps its orientation tag. A source this path cannot take
(CMYK/YCCK, an unreadable coefficient stream) raises `NotApplicable` with the reason, and the
sink re-encodes instead.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import jpeg_coefficients, jpeg_scan, metadata
from .restored import Restored

LIBJPEG = "turbo210"  # the libjpeg-turbo build in jpeglib: it reads and writes arithmetic coding
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
GRAYSCALE, YCBCR = 1, 3  # libjpeg's J_COLOR_SPACE values
STANDARD_IDS = {GRAYSCALE: (1,), YCBCR: (1, 2, 3)}  # the component ids libjpeg's defaults give


class NotApplicable(Exception):
    """This JPEG cannot take the coefficient path; the message says why."""


@dataclass
class JpegResult:
    data: bytes
    mcus: int  # MCUs re-encoded
    mcus_total: int
    note: str  # e.g. "progressive source written as baseline"


def encode_keeping_blocks(
    source: bytes,
    restored: Restored,
    orientation: int,
    exif: bytes | None,
    coefficients: tuple[jpeg_scan.Scan, jpeg_scan.Decoded] | None = None,
) -> JpegResult:
    """The restored image as a JPEG that copies `source`'s coefficients outside the changed MCUs.

    `restored` is upright (EXIF orientation applied), as the model saw it; only its box is
    read, plus the MCUs around it, turned back to the file's stored order where it is
    rotated. `exif` is the source's EXIF, written back without its thumbnail.
    `coefficients`: the source's scan as the decode stage decoded it
    (pipeline/stages/jpeg_region.py), when it kept it.
    """
    import jpeglib

    with jpeglib.version(LIBJPEG):
        return _encode_keeping_blocks(source, restored, orientation, exif, coefficients)


def _encode_keeping_blocks(
    source: bytes, restored: Restored, orientation: int, exif: bytes | None, coefficients
) -> JpegResult:
    if orientation != 1:  # rotated: back in the file's stored order (views, the box mapped)
        restored = Restored(
            metadata.stored_view(restored.pixels, orientation),
            metadata.stored_box(restored.box, restored.shape, orientation),
            metadata.stored_view(restored.part, orientation),
            metadata.stored_view(restored.changed_part, orientation),
            restored.decoded and metadata.stored_box(restored.decoded, restored.shape, orientation),
        )
    with tempfile.TemporaryDirectory(prefix="spl-jpeg-") as folder:
        spliced = _splice(source, restored, folder, coefficients)
        data, changed = spliced if spliced is not None else _rewrite(source, restored, folder)
    notes = []
    if metadata.is_progressive(source):
        notes.append("progressive source written as baseline")
    if metadata.restart_interval(source):
        notes.append("restart markers dropped")
    data = metadata.replace_exif(data, metadata.clean_exif(exif, drop_orientation=False))
    return JpegResult(data, int(changed.sum()), changed.size, "; ".join(notes))


def _splice(
    source: bytes, restored: Restored, folder: str, coefficients=None
) -> tuple[bytes, np.ndarray] | None:
    """The fast path (pipeline/stages/jpeg_scan.py): the source's scan with the changed MCUs
    coded again, every other byte kept; for a progressive source, or where the source's
    Huffman tables lack a code the changed MCUs need, the whole image as one baseline scan
    with tables made for it. `coefficients`: the (scan, decoded) the decode stage kept, if it
    did. (data, changed MCUs), or None for a file this path cannot take."""
    coefficients = coefficients or jpeg_coefficients.read(source)
    if coefficients is None:
        return None
    scan, decoded = coefficients
    changed = _changed_mcus(restored, scan.mcu, scan.mcus)
    new_blocks = new_at = None
    if changed.any():
        box, (r0, r1, c0, c1) = _mcu_box(changed, scan.mcu, restored.shape)
        path = os.path.join(folder, "new.jpg")
        _encode_like(restored.region(box), path, scan.qt, scan.quant_tbl_no, scan.samp)
        with open(path, "rb") as handle:
            part = handle.read()
        part_scan = jpeg_scan.parse(part)
        fresh = jpeg_scan.decode(part, part_scan) if part_scan is not None else None
        if fresh is None or part_scan.mcus != (r1 - r0, c1 - c0):
            return None
        ys, xs = np.nonzero(changed[r0:r1, c0:c1])
        new_at = (r0 + ys) * scan.mcus[1] + c0 + xs
        new_blocks = fresh.blocks[ys * (c1 - c0) + xs]
    data = None
    if jpeg_coefficients.spliceable(decoded):
        data = jpeg_scan.splice(source, scan, decoded, changed, new_blocks, new_at)
    if data is None:  # progressive, or the tables lack a code: all of it coded again
        blocks = decoded.blocks.copy()
        if new_at is not None:
            blocks[new_at] = new_blocks
        data = jpeg_scan.recode(source, scan, blocks)
    return data, changed


def _rewrite(source: bytes, restored: Restored, folder: str) -> tuple[bytes, np.ndarray]:
    """libjpeg's path, for any other file: its coefficients read whole, the changed MCUs'
    replaced, and all written again. (data, changed MCUs)."""
    import jpeglib

    src, out = os.path.join(folder, "src.jpg"), os.path.join(folder, "out.jpg")
    with open(src, "wb") as handle:
        handle.write(source)
    try:
        coefficients = jpeglib.read_dct(src)
        coefficients.load()
    except Exception as exc:
        raise NotApplicable(f"coefficients unreadable: {exc}") from None
    if coefficients.has_black or coefficients.num_components not in (1, 3):
        raise NotApplicable("CMYK/YCCK JPEG")
    samp = np.asarray(coefficients.samp_factor).reshape(-1, 2)  # (V, H) per component
    mcu = 8 * int(samp[:, 0].max()), 8 * int(samp[:, 1].max())
    height, width = restored.shape
    changed = _changed_mcus(restored, mcu, (-(-height // mcu[0]), -(-width // mcu[1])))
    if changed.any():
        box, (r0, r1, c0, c1) = _mcu_box(changed, mcu, restored.shape)
        new = os.path.join(folder, "new.jpg")
        qt, tables = coefficients.qt, np.asarray(coefficients.quant_tbl_no)
        _encode_like(restored.region(box), new, qt, tables, np.asarray(coefficients.samp_factor))
        fresh = jpeglib.read_dct(new)
        components = ("Y", "Cb", "Cr")[: coefficients.num_components]
        for index, name in enumerate(components):
            v, h = int(samp[index, 0]), int(samp[index, 1])
            old, part = getattr(coefficients, name), getattr(fresh, name)
            top, left = r0 * v, c0 * h
            rows_b = min(part.shape[0], old.shape[0] - top)
            cols_b = min(part.shape[1], old.shape[1] - left)
            want = np.repeat(np.repeat(changed[r0:r1, c0:c1], v, axis=0), h, axis=1)
            want = want[:rows_b, :cols_b]
            region = old[top : top + rows_b, left : left + cols_b]
            region[want] = part[:rows_b, :cols_b][want]
            setattr(coefficients, name, old)
    data = _write(coefficients, out, _coding(source), source)
    return _keep_component_ids(data, source), changed


def _changed_mcus(restored: Restored, mcu: tuple[int, int], mcus: tuple[int, int]) -> np.ndarray:
    """rows x cols bool: the MCUs that hold a changed pixel. Only the MCUs around the restored
    box are read: no other can hold one."""
    (mcu_h, mcu_w), (height, width) = mcu, restored.shape
    bx0, by0, bx1, by1 = restored.box
    g0, g1 = by0 // mcu_h, -(-by1 // mcu_h)  # MCU rows
    h0, h1 = bx0 // mcu_w, -(-bx1 // mcu_w)  # MCU columns
    near = restored.changed(
        (h0 * mcu_w, g0 * mcu_h, min(width, h1 * mcu_w), min(height, g1 * mcu_h))
    )
    padded = np.zeros(((g1 - g0) * mcu_h, (h1 - h0) * mcu_w), bool)
    padded[: near.shape[0], : near.shape[1]] = near
    changed = np.zeros(mcus, bool)
    changed[g0:g1, h0:h1] = padded.reshape(g1 - g0, mcu_h, h1 - h0, mcu_w).any(axis=(1, 3))
    return changed


def _mcu_box(changed: np.ndarray, mcu: tuple[int, int], shape: tuple[int, int]):
    """The pixel box of the MCUs around the changed ones, and its MCU rows and columns
    (r0, r1, c0, c1). Only this box is encoded again: blocks are coded independently (chroma
    is averaged within an MCU), so its coefficients equal a whole-image encode's."""
    (mcu_h, mcu_w), (height, width) = mcu, shape
    ys, xs = np.nonzero(changed)
    r0, r1, c0, c1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    box = (c0 * mcu_w, r0 * mcu_h, min(width, c1 * mcu_w), min(height, r1 * mcu_h))
    return box, (r0, r1, c0, c1)


def _encode_like(
    restored: np.ndarray, path: str, qt: np.ndarray, tables: np.ndarray, samp: np.ndarray
) -> None:
    """Compress `restored` with the source's quantisation tables (`qt`, by id; `tables`: each
    component's) and sampling factors (`samp`: V, H per component); grey for one component."""
    import jpeglib

    if len(tables) == 1:
        gray = np.asarray(Image.fromarray(restored, "RGB").convert("L"))[..., None]
        spatial = jpeglib.from_spatial(np.ascontiguousarray(gray), jpeglib.JCS_GRAYSCALE)
    else:
        spatial = jpeglib.from_spatial(np.ascontiguousarray(restored), jpeglib.JCS_RGB)
        spatial.samp_factor = np.asarray(samp)
    spatial.write_spatial(path, qt=qt, quant_tbl_no=np.asarray(tables))


def _coding(source: bytes) -> list[str]:
    """libjpeg flags that keep the source's entropy coding, and so its size: arithmetic coding,
    the standard Huffman tables, or optimised ones (as progressive and re-saved files have)."""
    if metadata.is_arithmetic(source):
        return ["+ARITH_CODE"]
    return [] if standard_huffman(source) else ["+OPTIMIZE_CODING"]


def _write(coefficients, path: str, flags: list[str], source: bytes) -> bytes:
    """The coefficients as a JPEG file's bytes.

    Given the source, jpeglib copies its header parameters by decoding the whole file again,
    entropy data included (a third read of it: the writer took 176 against 165 ms on a 12 MP
    photo without it). Where those parameters are the ones libjpeg sets by itself (8-bit YCbCr
    or grey, standard component ids), it writes without the source, and the JFIF segment
    libjpeg then writes with default fields gets the source's fields back: the same bytes."""
    jfif = _own_header(source, int(coefficients.jpeg_color_space))
    if jfif is not None:
        data = _write_dct(coefficients, path, flags, with_source=False)
        if not jfif:
            return data
        if data[2:4] + data[6:11] == b"\xff\xe0JFIF\x00":  # libjpeg's segment, after SOI
            return data[:2] + jfif + data[2 + len(jfif) :]
    return _write_dct(coefficients, path, flags, with_source=True)


def _write_dct(coefficients, path: str, flags: list[str], with_source: bool) -> bytes:
    content = coefficients.content
    if not with_source:
        coefficients.content = None  # jpeglib then has no source file to copy parameters from
    try:
        coefficients.write_dct(path, flags=flags)
    finally:
        coefficients.content = content
    with open(path, "rb") as handle:
        return handle.read()


def _keep_component_ids(data: bytes, source: bytes) -> bytes:
    """libjpeg, as jpeglib drives it, numbers the written components from 0; they get the
    source's ids back, in the frame header and in the one scan header that lists them all."""
    wanted = _component_ids(source)
    segments = metadata.jpeg_segments(data)
    frame = [start for marker, start, _ in segments if marker in SOF_MARKERS]
    scan = segments[-1][1] if segments and segments[-1][0] == 0xDA else None
    if len(frame) != 1 or scan is None or data[scan + 4] != len(wanted):
        return data
    written = _component_ids(data)
    if len(written) != len(wanted) or written == wanted:
        return data
    rename = dict(zip(written, wanted, strict=True))
    out = bytearray(data)
    for k in range(len(wanted)):
        out[frame[0] + 10 + 3 * k] = wanted[k]
        out[scan + 5 + 2 * k] = rename[out[scan + 5 + 2 * k]]
    return bytes(out)


def _component_ids(data: bytes) -> tuple[int, ...]:
    for marker, start, _ in metadata.jpeg_segments(data):
        if marker in SOF_MARKERS:
            return tuple(data[start + 10 + 3 * k] for k in range(data[start + 9]))
    return ()


def _own_header(source: bytes, color_space: int) -> bytes | None:
    """What writing without the source needs: the JFIF segment libjpeg would have copied from
    it (b"" when the source has none), or None where libjpeg's own parameters would differ."""
    segments = metadata.jpeg_segments(source)
    frames = [start for marker, start, _ in segments if marker in SOF_MARKERS]
    jfifs = [
        start
        for marker, start, end in segments
        if marker == 0xE0 and end - start >= 16 and source[start + 4 : start + 9] == b"JFIF\0"
    ]
    if color_space not in STANDARD_IDS or len(frames) != 1 or len(jfifs) > 1:
        return None
    if source[frames[0] + 4] != 8 or _component_ids(source) != STANDARD_IDS[color_space]:
        return None
    if not jfifs:
        return b""
    at = jfifs[0]
    major, minor = source[at + 9], source[at + 10]
    if major not in (1, 2):  # libjpeg keeps its own version then
        major, minor = 1, 1
    fields = bytes([major, minor]) + source[at + 11 : at + 16]  # units, X and Y density
    return b"\xff\xe0\x00\x10JFIF\x00" + fields + b"\x00\x00"


# Bit counts (codes of length 1..16) of the four tables of JPEG Annex K.3
STANDARD_HUFFMAN_BITS = {
    bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]),
    bytes([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]),
    bytes([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D]),
    bytes([0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77]),
}


def standard_huffman(data: bytes) -> bool:
    """Whether every Huffman table of a JPEG (before its first scan) is a standard one."""
    for marker, start, end in metadata.jpeg_segments(data):
        if marker != 0xC4:
            continue
        pos = start + 4
        while pos + 17 <= end:
            bits = data[pos + 1 : pos + 17]
            if bits not in STANDARD_HUFFMAN_BITS:
                return False
            pos += 17 + sum(bits)
    return not metadata.is_progressive(data)
