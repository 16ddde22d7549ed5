"""Deflate streams cut and joined at block boundaries (RFC 1951), for the PNG splice.

zlib's own inflate, called through ctypes with `Z_BLOCK` (as zlib's examples `gzjoin` and
`zran` do), stops after every block and says at which bit of the input it stands; Python's
`zlib` module does not expose that. A stream joined from whole blocks of other streams decodes
to the concatenation of their outputs, provided each block's back-references reach only bytes
that are the same in the joined output. Blocks are joined bit by bit (they do not start on byte
boundaries), except stored blocks, whose data starts on the byte boundary after their header.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from functools import cache

import deflate
import numba
import numpy as np

jit = numba.njit(cache=True, nogil=True)
Z_OK, Z_STREAM_END, Z_BLOCK = 0, 1, 5
END_OF_BLOCK, LAST_BLOCK = 128, 64  # zlib's data_type flags after an inflate call
STORED = 0  # BTYPE of a stored (uncompressed) block


class DeflateError(Exception):
    """The stream cannot be walked (zlib missing, corrupt data, a size that does not match)."""


class _ZStream(ctypes.Structure):
    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint),
        ("total_in", ctypes.c_ulong),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint),
        ("total_out", ctypes.c_ulong),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_ulong),
        ("reserved", ctypes.c_ulong),
    ]


@cache
def _zlib() -> ctypes.CDLL:
    name = ctypes.util.find_library("z")
    if name is None:
        raise DeflateError("the zlib shared library (libz.so) is not installed")
    lib = ctypes.CDLL(name)
    lib.zlibVersion.restype = ctypes.c_char_p
    lib.inflateInit2_.argtypes = [
        ctypes.POINTER(_ZStream), ctypes.c_int, ctypes.c_char_p, ctypes.c_int
    ]  # fmt: skip
    lib.inflate.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int]
    lib.inflateEnd.argtypes = [ctypes.POINTER(_ZStream)]
    return lib


@dataclass(frozen=True)
class Blocks:
    """A raw deflate stream, walked: its output and where each of its blocks starts."""

    output: np.ndarray  # uint8, everything the stream decodes to
    # int64: the bit (from the stream's first byte, LSB first) each block starts at
    bits: np.ndarray
    offsets: np.ndarray  # int64: the output offset each block starts at
    types: np.ndarray  # uint8: each block's BTYPE (0 stored, 1 fixed, 2 dynamic Huffman codes)
    end_bit: int  # the bit just after the last block's end-of-block code


def walk(stream: np.ndarray, size: int) -> Blocks:
    """Inflate the raw deflate `stream` (uint8, contiguous; it must decode to exactly `size`
    bytes and end with its last block; bytes after that are ignored) and note each block's
    start."""
    lib = _zlib()
    output = np.empty(max(size, 1), np.uint8)
    z = _ZStream()
    if lib.inflateInit2_(ctypes.byref(z), -15, lib.zlibVersion(), ctypes.sizeof(_ZStream)) != Z_OK:
        raise DeflateError("zlib's inflateInit2 failed")
    try:
        z.next_in, z.avail_in = stream.ctypes.data, stream.size
        z.next_out, z.avail_out = output.ctypes.data, size
        bits, offsets, end_bit = [0], [0], -1
        while True:
            status = lib.inflate(ctypes.byref(z), Z_BLOCK)
            if status not in (Z_OK, Z_STREAM_END):
                message = z.msg.decode() if z.msg else f"status {status}"
                raise DeflateError(f"the deflate stream is corrupt: {message}")
            at = z.total_in * 8 - (z.data_type & 7)
            if status == Z_STREAM_END:  # `at` is rounded up to a byte here: the stop before
                end_bit = end_bit if end_bit >= 0 else at  # it is the block's exact end
                break
            if not z.data_type & END_OF_BLOCK:
                raise DeflateError("the deflate stream decodes to more than the image's rows")
            if z.data_type & LAST_BLOCK:
                end_bit = at
            else:
                bits.append(at)
                offsets.append(z.total_out)
        if z.total_out != size:
            raise DeflateError(f"the deflate stream decodes to {z.total_out} bytes, not {size}")
    finally:
        lib.inflateEnd(ctypes.byref(z))
    starts = np.array(bits, np.int64)
    low = stream[starts >> 3].astype(np.uint16)
    high = stream[np.minimum((starts >> 3) + 1, stream.size - 1)].astype(np.uint16)
    words = low | high << 8  # BTYPE's two bits may cross into the next byte
    types = (words >> ((starts & 7) + 1).astype(np.uint16)) & 3
    return Blocks(output[:size], starts, np.array(offsets, np.int64), types.astype(np.uint8),
                  end_bit)  # fmt: skip


def compress(data: np.ndarray, level: int) -> bytes:
    """`data` as a raw deflate stream ending with a last block, whose back-references stay
    inside `data`, by libdeflate (the `deflate` package) at its `level` (1-12)."""
    return deflate.deflate_compress(memoryview(data), level)


class BitWriter:
    """A deflate stream assembled from runs of blocks of other streams."""

    def __init__(self, capacity: int) -> None:
        self.out = np.zeros(capacity + 16, np.uint8)
        self.bit = 0

    def blocks(self, stream: np.ndarray, walked: Blocks, first: int, stop: int, last: bool) -> None:
        """Append blocks `first`..`stop`-1 of `stream` (as `walked`); the last of them is marked
        the stream's last block when `last`, and not otherwise."""
        ends = np.append(walked.bits[1:], walked.end_bit)
        for n in range(first, stop):
            start = self.bit
            if walked.types[n] == STORED:
                self.bit = _stored(self.out, self.bit, stream, int(walked.bits[n]), int(ends[n]))
            else:
                self.bit = _copy_bits(self.out, self.bit, stream, int(walked.bits[n]),
                                      int(ends[n] - walked.bits[n]))  # fmt: skip
            final = 1 if (last and n == stop - 1) else 0
            byte, shift = start >> 3, start & 7  # BFINAL, the block's first bit
            self.out[byte] = (int(self.out[byte]) & ~(1 << shift) & 0xFF) | final << shift

    def bytes(self) -> bytes:
        """The stream so far, padded with zero bits to a whole byte."""
        return self.out[: (self.bit + 7) >> 3].tobytes()


@jit
def _copy_bits(dst, dbit, src, sbit, nbits):
    """OR `nbits` bits of `src` from bit `sbit` into `dst` from bit `dbit` (both LSB first;
    `dst` is zero from `dbit` on). Returns the bit after them."""
    while nbits > 0 and dbit & 7:
        dst[dbit >> 3] |= ((src[sbit >> 3] >> (sbit & 7)) & 1) << (dbit & 7)
        dbit += 1
        sbit += 1
        nbits -= 1
    whole = nbits >> 3
    db, sb, shift = dbit >> 3, sbit >> 3, sbit & 7
    if shift == 0:
        dst[db : db + whole] = src[sb : sb + whole]
    else:
        for n in range(whole):
            low = np.uint32(src[sb + n]) >> shift
            high = np.uint32(src[sb + n + 1]) << (8 - shift)
            dst[db + n] = np.uint8((low | high) & 0xFF)
    dbit += whole * 8
    sbit += whole * 8
    nbits -= whole * 8
    while nbits > 0:
        dst[dbit >> 3] |= ((src[sbit >> 3] >> (sbit & 7)) & 1) << (dbit & 7)
        dbit += 1
        sbit += 1
        nbits -= 1
    return dbit


@jit
def _stored(dst, dbit, src, sbit, end):
    """Copy the stored block at `sbit` (ending at `end`): its 3 header bits, then, from the next
    byte boundary on both sides, its length, the length's complement and its bytes."""
    dbit = _copy_bits(dst, dbit, src, sbit, 3)
    dbit = (dbit + 7) & ~7
    sbit = (sbit + 3 + 7) & ~7
    length = np.int64(src[sbit >> 3]) | (np.int64(src[(sbit >> 3) + 1]) << 8)
    count = 4 + length
    if sbit + 8 * count != end:
        raise ValueError("a stored block's length does not reach the next block")
    dst[dbit >> 3 : (dbit >> 3) + count] = src[sbit >> 3 : (sbit >> 3) + count]
    return dbit + 8 * count
