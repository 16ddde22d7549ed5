"""Progressive JPEGs (SOF2) decoded to their coefficients as libjpeg decodes them (its jdphuff.c),
compiled with numba: DC first and refinement scans, AC first scans (a band of coefficients,
with end-of-band runs) and AC refinement scans (one more bit of each coefficient).

Grey or YCbCr, 8-bit, without restart markers. The coefficients land in the layout of
pipeline/stages/jpeg_scan.py (MCUs x blocks per MCU x 64, zig-zag order), so the writer codes
them again as one baseline scan (`jpeg_scan.recode`, as libjpeg's rewrite did) and the stages
decode their pixels in part (pipeline/stages/jpeg_pixels.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .jpeg_scan import PAD, PROGRESSIVE_HUFFMAN, Header, Scan, _table, read_header, unstuff

jit = numba.njit(cache=True, nogil=True)


@dataclass
class Part:
    """One scan of a progressive JPEG."""

    components: list[int]  # indices into the frame's components
    band: tuple[int, int]  # Ss, Se: the zig-zag positions it codes
    ah: int  # the bit position of the previous scan of this band (0: its first)
    al: int  # the bit position this scan codes
    lut: np.ndarray  # per component of the scan: its table's lookahead (see jpeg_scan.Scan)
    raw: np.ndarray  # the unstuffed entropy-coded data, and PAD zero bytes


def parse(data: bytes) -> tuple[Scan, list[Part]] | None:
    """The frame (see `frame`) and the scans of a progressive JPEG; None for any other file."""
    header = read_header(data)
    scan = _frame(header)
    if scan is None:
        return None
    parts = []
    for body, _, start, end, tables in header.scans:
        part = _part(data, body, start, end, tables, scan.ids)
        if part is None:
            return None
        parts.append(part)
    return scan, parts


def frame(data: bytes) -> Scan | None:
    """A progressive JPEG's frame, as a `Scan` whose tables are those of one baseline scan (DC
    0 and 1, AC 0 and 1), without reading its scans; None for any other file."""
    return _frame(read_header(data))


def _frame(header: Header | None) -> Scan | None:
    if header is None or header.marker != PROGRESSIVE_HUFFMAN or header.restart:
        return None
    samp = header.sampling()
    if samp is None:
        return None
    height, width, components = header.frame
    count = len(components)
    chroma = [0] + [1] * (count - 1)
    names = {(0, 0): 0, (0, 1): 1, (1, 0): 2, (1, 1): 3} if count == 3 else {(0, 0): 0, (1, 0): 1}
    return Scan(
        width, height, tuple(c[0] for c in components), samp,
        np.array([names[0, t] for t in chroma], np.int64),
        np.array([names[1, t] for t in chroma], np.int64),
        np.zeros((len(names), 1), np.uint16),
        np.zeros((len(names), 256), np.int64), np.zeros((len(names), 256), np.uint8),
        header.qt, header.quant_tbl_no, names, 0, 0, 0,
    )  # fmt: skip


def _part(data: bytes, body: bytes, start: int, end: int, tables, ids) -> Part | None:
    count = body[0]
    chosen = [body[1 + 2 * k : 3 + 2 * k] for k in range(count)]
    if any(c[0] not in ids for c in chosen) or len(body) < 4 + 2 * count:
        return None
    ss, se, approx = body[1 + 2 * count], body[2 + 2 * count], body[3 + 2 * count]
    ah, al = approx >> 4, approx & 15
    if ss > se or se > 63 or (ss == 0 and se != 0) or (ss > 0 and count != 1) or al > 13:
        return None
    lut = np.zeros((count, 1 << 16), np.uint16)
    if not (ss == 0 and ah > 0):  # a DC refinement reads bits, no codes
        for k, c in enumerate(chosen):
            name = (0, c[1] >> 4) if ss == 0 else (1, c[1] & 15)
            if name not in tables:
                return None
            code, size = np.zeros(256, np.int64), np.zeros(256, np.uint8)
            if not _table(*tables[name], lut[k], code, size):
                return None
    components = [ids.index(c[0]) for c in chosen]
    return Part(components, (ss, se), ah, al, lut, unstuff(data, start, end))


def decode(scan: Scan, parts: list[Part]) -> np.ndarray | None:
    """Every block's coefficients (MCUs x blocks per MCU x 64, zig-zag order); None for data
    that does not decode."""
    rows, cols = scan.mcus
    slots = scan.slots
    blocks = np.zeros((rows * cols, int(slots[-1]), 64), np.int16)
    for part in parts:
        where, slot, which = _order(scan, part.components)
        ss, se = part.band
        if ss == 0:
            read = _dc(part.raw, part.lut, where, slot, which, part.ah, part.al, blocks)
        elif part.ah == 0:
            read = _ac_first(part.raw, part.lut[0], where, slot, ss, se, part.al, blocks)
        else:
            read = _ac_refine(part.raw, part.lut[0], where, slot, ss, se, part.al, blocks)
        if read < 0 or read > (len(part.raw) - PAD) * 8:  # undecodable, or past its data
            return None
    return blocks


def _order(scan: Scan, components: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MCU, block slot, component of the scan) of each block a scan codes, in its order: MCU by
    MCU for several components; one component alone in raster order over its own blocks."""
    rows, cols = scan.mcus
    slots = scan.slots
    if len(components) > 1:
        slot, which = [], []
        for k, c in enumerate(components):
            count = int(slots[c + 1] - slots[c])
            slot += range(int(slots[c]), int(slots[c + 1]))
            which += [k] * count
        n = rows * cols
        return (np.repeat(np.arange(n), len(slot)), np.tile(np.array(slot), n),
                np.tile(np.array(which), n))  # fmt: skip
    c = components[0]
    v, h = (int(x) for x in scan.samp[c])
    vmax, hmax = int(scan.samp[:, 0].max()), int(scan.samp[:, 1].max())
    bh = _ceil(_ceil(scan.height * v, vmax), 8)  # the component's own blocks
    bw = _ceil(_ceil(scan.width * h, hmax), 8)
    by, bx = np.divmod(np.arange(bh * bw), bw)
    where = (by // v) * cols + bx // h
    slot = slots[c] + (by % v) * h + bx % h
    return where, slot, np.zeros(len(where), np.int64)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@jit
def _fill(raw, acc, have, at):
    """(bits read ahead, their count, next byte) with at least 27 bits read ahead."""
    if have < 27:
        acc = (acc << 32) | (np.int64(raw[at]) << 24) | (np.int64(raw[at + 1]) << 16)
        acc |= (np.int64(raw[at + 2]) << 8) | np.int64(raw[at + 3])
        have += 32
        at += 4
    return acc, have, at


@jit
def _bits(raw, acc, have, at, n):
    """The next `n` bits as a number, and the reader's new state."""
    if n == 0:
        return 0, acc, have, at
    acc, have, at = _fill(raw, acc, have, at)
    have -= n
    return (acc >> have) & ((np.int64(1) << n) - 1), acc, have, at


@jit
def _symbol(raw, acc, have, at, lut):
    """The next Huffman symbol (-1 where no code starts), and the reader's new state."""
    acc, have, at = _fill(raw, acc, have, at)
    entry = np.int64(lut[(acc >> (have - 16)) & 0xFFFF])
    if entry == 0:
        return -1, acc, have, at
    return entry & 0xFF, acc, have - (entry >> 8), at


@jit
def _extend(value, size):
    if size and value < np.int64(1) << (size - 1):
        return value - (np.int64(1) << size) + 1
    return value


@jit
def _dc(raw, lut, where, slot, which, ah, al, blocks):
    """A DC scan; returns the bits it read, or -1 for data that does not decode."""
    acc, have, at = np.int64(0), np.int64(0), np.int64(0)
    pred = np.zeros(lut.shape[0], np.int64)
    for n in range(len(where)):
        block = blocks[where[n], slot[n]]
        if ah:  # refinement: one more bit
            bit, acc, have, at = _bits(raw, acc, have, at, 1)
            if bit:
                block[0] |= np.int16(1 << al)
            continue
        size, acc, have, at = _symbol(raw, acc, have, at, lut[which[n]])
        if size < 0 or size > 11:
            return -1
        value, acc, have, at = _bits(raw, acc, have, at, size)
        pred[which[n]] += _extend(value, size)
        block[0] = pred[which[n]] << al
    return at * 8 - have


@jit
def _ac_first(raw, lut, where, slot, ss, se, al, blocks):
    """A first AC scan of one band; returns the bits it read, or -1."""
    acc, have, at = np.int64(0), np.int64(0), np.int64(0)
    run = 0  # blocks left in an end-of-band run
    for n in range(len(where)):
        if run:
            run -= 1
            continue
        block = blocks[where[n], slot[n]]
        k = ss
        while k <= se:
            symbol, acc, have, at = _symbol(raw, acc, have, at, lut)
            if symbol < 0:
                return -1
            r, size = symbol >> 4, symbol & 15
            if size:
                k += r
                if k > 63:
                    return -1
                value, acc, have, at = _bits(raw, acc, have, at, size)
                block[k] = _extend(value, size) << al
                k += 1
            elif r == 15:
                k += 16
            else:
                extra, acc, have, at = _bits(raw, acc, have, at, r)
                run = (1 << r) + extra - 1
                break
    return at * 8 - have


@jit
def _ac_refine(raw, lut, where, slot, ss, se, al, blocks):
    """An AC refinement scan of one band: one more bit of each coefficient, and those that
    become non-zero; returns the bits it read, or -1."""
    acc, have, at = np.int64(0), np.int64(0), np.int64(0)
    p1, m1 = 1 << al, -1 << al
    run = 0
    for n in range(len(where)):
        block = blocks[where[n], slot[n]]
        k = ss
        if run == 0:
            while k <= se:
                symbol, acc, have, at = _symbol(raw, acc, have, at, lut)
                if symbol < 0:
                    return -1
                r, size = symbol >> 4, symbol & 15
                value = 0
                if size:  # a coefficient that becomes non-zero: its sign
                    sign, acc, have, at = _bits(raw, acc, have, at, 1)
                    value = p1 if sign else m1
                elif r != 15:
                    extra, acc, have, at = _bits(raw, acc, have, at, r)
                    run = (1 << r) + extra
                    break
                while k <= se:  # skip r zero coefficients, refining the non-zero ones on the way
                    if block[k] != 0:
                        bit, acc, have, at = _bits(raw, acc, have, at, 1)
                        if bit and (block[k] & p1) == 0:
                            block[k] += p1 if block[k] >= 0 else m1
                    else:
                        r -= 1
                        if r < 0:
                            break
                    k += 1
                if value and k <= 63:
                    block[k] = value
                k += 1
        if run > 0:
            while k <= se:  # in an end-of-band run: only the non-zero coefficients get a bit
                if block[k] != 0:
                    bit, acc, have, at = _bits(raw, acc, have, at, 1)
                    if bit and (block[k] & p1) == 0:
                        block[k] += p1 if block[k] >= 0 else m1
                k += 1
            run -= 1
    return at * 8 - have
