"""Lossless-outside-the-hole PNG: a restored PNG keeps the source's compressed data for every row
the restore did not touch, and compresses again only the rows around the restored box.

A PNG's pixels are one zlib stream of filtered rows, made of deflate blocks. The writer walks
the source's blocks (pipeline/stages/deflate_blocks.py), filters the restored rows (and the row
after them, whose filter may read them) with each row's own filter type, and compresses the
blocks from the last one that starts before the first restored row to the first one that
starts 32 KiB (deflate's window) after the last row changed, so that no later back-reference
reaches a changed byte. Every other block is copied bit for bit, and the Adler-32 of the whole
is patched from the bytes that changed. Every chunk other than IDAT is kept byte for byte, in
its place (text, ICC, EXIF, gamma, transparency, physical size), except an EXIF thumbnail, a
small picture of the original, which is dropped (pipeline/stages/metadata.py). The cost
follows the rows the hole spans, not the image: one inflate of the file, and a compression of
those rows.

A PNG this path cannot take (palette, fewer than 8 bits, interlaced, animated, stored turned,
or of a mode other than the one written back) raises `NotApplicable` with the reason, and the sink
encodes the whole image instead.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image

from . import metadata
from .deflate_blocks import BitWriter, DeflateError, compress, walk
from .encode import compose
from .encode_jpeg import NotApplicable
from .png_pixels import filter_rows
from .restored import Restored

SIGNATURE = b"\x89PNG\r\n\x1a\n"
WINDOW = 32768  # how far back a deflate back-reference reaches
# the mode the sink writes back -> (PNG colour type, bit depth, bytes per pixel)
LAYOUTS = {
    "L": (0, 8, 1),
    "I;16": (0, 16, 2),
    "RGB": (2, 8, 3),
    "RGB;16": (2, 16, 6),
    "LA": (4, 8, 2),
    "RGBA": (6, 8, 4),
    "RGBA;16": (6, 16, 8),
}
# The zlib header's FLEVEL (how hard the source was compressed: zlib's levels 0-1, 2-5, 6, 7-9)
# -> the libdeflate level that compresses a photo's rows as small as zlib's 1, 5, 6 and 9 or
# smaller, in less time (200 rows of a 12 MP photo: 12 against 25 ms, 32 / 71, 95 / 158-175,
# 835 / 2,050).
LEVELS = (1, 5, 7, 10)


@dataclass(frozen=True)
class PngResult:
    data: bytes
    rows: int  # rows whose compressed data was made again
    rows_total: int


@dataclass(frozen=True)
class _Png:
    chunks: list[tuple[bytes, int, int]]  # (type, start of its length field, end of its CRC)
    width: int
    height: int
    color: int
    depth: int
    interlaced: bool

    def idat(self, source: bytes) -> tuple[bytes, int, int]:
        """(the zlib stream, start of the first IDAT chunk, end of the last)."""
        spans = [(s, e) for kind, s, e in self.chunks if kind == b"IDAT"]
        kinds = [kind for kind, _, _ in self.chunks]
        first = kinds.index(b"IDAT")
        if kinds[first : first + len(spans)] != [b"IDAT"] * len(spans):
            raise NotApplicable("PNG with IDAT chunks apart")
        stream = b"".join(source[s + 8 : e - 4] for s, e in spans)
        return stream, spans[0][0], spans[-1][1]


def encode_keeping_rows(
    source: bytes, restored: Restored, mode: str, orig: bytes | None, orientation: int
) -> PngResult:
    """The restored image as a PNG that copies `source`'s compressed rows outside the restored
    box. `mode`: the mode the sink writes back (the source's); `orig`: the source's pixels in
    that mode, where the sink carries them."""
    if orientation != 1:
        raise NotApplicable("PNG stored turned (EXIF orientation)")
    png = _parse(source)
    height, width = restored.shape
    layout = LAYOUTS.get(mode)
    if layout is None or (png.color, png.depth) != layout[:2]:
        raise NotApplicable(f"{mode} written from a PNG of colour type {png.color}, "
                            f"{png.depth} bits")  # fmt: skip
    if png.interlaced:
        raise NotApplicable("interlaced PNG")
    if any(kind == b"acTL" for kind, _, _ in png.chunks):
        raise NotApplicable("animated PNG")  # its other frames would keep the removed object
    if (png.width, png.height) != (width, height):
        raise NotApplicable("PNG whose header does not match its decoded size")
    stream, idat_start, idat_end = png.idat(source)
    if len(stream) < 6 or stream[0] & 0x0F != 8 or stream[1] & 0x20:
        raise NotApplicable("PNG whose zlib stream is not plain deflate")
    stride = width * layout[2]
    size = height * (stride + 1)
    deflate = np.frombuffer(stream, np.uint8)[2:]
    try:
        walked = walk(deflate, size)
    except DeflateError as exc:
        raise NotApplicable(str(exc)) from None
    raw = walked.output.reshape(height, stride + 1)

    _, y0, _, y1 = restored.box
    stop = min(y1 + 1, height)  # the row after the box is filtered again: it may read the box
    first, last = (
        int(np.searchsorted(walked.offsets, y0 * (stride + 1), "right")) - 1,
        int(np.searchsorted(walked.offsets, stop * (stride + 1) + WINDOW, "left")),
    )
    tail = last < walked.offsets.size
    start = int(walked.offsets[first])
    end = int(walked.offsets[last]) if tail else size
    flat = walked.output
    before = flat[start:end].copy()
    top = max(y0 - 1, 0)
    rows = _rows(restored, (top, stop), mode, orig, layout)
    raw[y0:stop, 1:] = _filtered(rows, raw[y0:stop, 0], y0 - top, layout[2])
    piece = np.frombuffer(compress(flat[start:end], LEVELS[stream[1] >> 6]), np.uint8)
    try:
        piece_walked = walk(piece, end - start)
    except DeflateError as exc:  # never expected: our own compressor's output
        raise NotApplicable(f"the rows compressed again do not read back: {exc}") from None

    trailer = 2 + (walked.end_bit + 7) // 8
    if len(stream) < trailer + 4:
        raise NotApplicable("PNG whose zlib stream ends without its checksum")
    (adler,) = struct.unpack(">I", stream[trailer : trailer + 4])
    stored = int((walked.types == 0).sum() + (piece_walked.types == 0).sum())
    writer = BitWriter(len(stream) + piece.size + stored)  # a stored block may move a byte on
    writer.blocks(deflate, walked, 0, first, last=False)
    writer.blocks(piece, piece_walked, 0, piece_walked.bits.size, last=not tail)
    if tail:
        writer.blocks(deflate, walked, last, walked.bits.size, last=True)
    adler = _patched_adler(adler, before, flat[start:end], start, size)
    data = stream[:2] + writer.bytes() + struct.pack(">I", adler)
    out = _without_thumbnail(source[:idat_start] + _chunk(b"IDAT", data) + source[idat_end:])
    kept_rows = start // (stride + 1) + (height - (end + stride) // (stride + 1))
    return PngResult(out, height - kept_rows, height)


def _parse(source: bytes) -> _Png:
    header = metadata.png_header(source)
    if not source.startswith(SIGNATURE) or header is None:
        raise NotApplicable("not a PNG")
    chunks = metadata.png_chunks(source)
    if chunks[-1][0] != b"IEND":
        raise NotApplicable("PNG whose chunks do not read to IEND")
    width, height, depth, color, interlaced = header
    return _Png(chunks, width, height, color, depth, interlaced)


def _rows(
    restored: Restored, rows: tuple[int, int], mode: str, orig: bytes | None, layout: tuple
) -> np.ndarray:
    """The restored image's rows `rows` (top, stop) as the PNG stores them, unfiltered: one
    uint8 row of width × bytes-per-pixel each (16-bit samples big-endian)."""
    top, stop = rows
    height, width = restored.shape
    box = (0, top, width, stop)
    part = None
    if orig is not None:
        per_row = len(orig) // height
        part = memoryview(orig)[top * per_row : stop * per_row]
    img = compose(restored.region(box), restored.changed(box), mode, part)
    pixels = np.asarray(img) if isinstance(img, Image.Image) else img
    if layout[1] == 16:
        pixels = pixels.astype(">u2").view(np.uint8)
    return np.ascontiguousarray(pixels).reshape(stop - top, width * layout[2])


def _filtered(rows: np.ndarray, types: np.ndarray, first: int, bpp: int) -> np.ndarray:
    """Rows `first`.. of `rows` filtered as the source filtered them (`png_pixels.filter_rows`)."""
    out = filter_rows(rows, types, first, bpp)
    if out is None:
        raise NotApplicable(f"PNG row with filter type {int(types.max())}")
    return out


def _patched_adler(adler: int, before: np.ndarray, after: np.ndarray, start: int, size: int) -> int:
    """The Adler-32 of a `size`-byte stream whose bytes from `start` on changed from `before`
    to `after`. With A = 1 + sum(d_i) and B = sum over i of (size - i) d_i + size (mod 65521),
    a run of m bytes changes A by its sum's change and B by (size - start - m) times that plus
    the change of its own B (what Adler-32 of the run alone gives, less m)."""
    modulus = 65521
    old, new = zlib.adler32(memoryview(before)), zlib.adler32(memoryview(after))
    change = (new & 0xFFFF) - (old & 0xFFFF)
    a = (adler & 0xFFFF) + change
    b = (adler >> 16) + (size - start - before.size) * change + (new >> 16) - (old >> 16)
    return (b % modulus) << 16 | a % modulus


def _without_thumbnail(png: bytes) -> bytes:
    """`png` with its eXIf chunk, where that holds a thumbnail (a small picture of the
    original, the removed object and all), written again without it."""
    for kind, start, end in _parse(png).chunks:
        if kind != b"eXIf":
            continue
        body = png[start + 8 : end - 4]
        exif = Image.Exif()
        try:
            exif.load(metadata.EXIF_HEADER + body)
            thumbnail = bool(exif.get_ifd(ExifTags.IFD.IFD1))
        except Exception:
            thumbnail = True  # unreadable: dropped rather than copied stale
        if not thumbnail:
            return png
        cleaned = metadata.clean_exif(metadata.EXIF_HEADER + body, drop_orientation=False)
        kept = _chunk(b"eXIf", cleaned[len(metadata.EXIF_HEADER) :]) if cleaned else b""
        return png[:start] + kept + png[end:]
    return png


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
