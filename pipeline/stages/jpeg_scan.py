"""The entropy-coded scan of a sequential Huffman JPEG, read and spliced, compiled with numba.

A restored JPEG differs from its source only in the MCUs that hold a changed pixel. Its scan is
the source's scan with those MCUs' codes replaced: the bits of every other MCU are copied as
they are, and re-encoded (with the source's own Huffman tables) are only the changed MCUs and
the MCU after each of them, whose first DC difference per component refers to a changed block.
The file keeps every byte of the source before its scan. The source is decoded once, to find
where each MCU's bits start and to know its DC values; no pixel is ever computed.

This covers one-scan baseline and extended-sequential 8-bit Huffman JPEGs without restart
markers: nearly every camera and web photo (`parse` returns None for any other file). Where a
changed block needs a code the source's tables lack, and for progressive files
(pipeline/stages/jpeg_progressive.py), `recode` writes the whole image as one scan with tables
made for it. The marker segments of every JPEG are read here (`read_header`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from . import metadata

jit = numba.njit(cache=True, nogil=True)

# the natural (row-major 8x8) index of each zig-zag position
ZIGZAG = np.array(
    [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
     20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58,
     59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63],
    np.intp,
)  # fmt: skip
SEQUENTIAL_HUFFMAN = (0xC0, 0xC1)  # SOF0 baseline, SOF1 extended sequential
PROGRESSIVE_HUFFMAN = 0xC2
FAST_SHIFT = 6  # the short-code table looks at the first 10 of the 16 lookahead bits
CATEGORIES = np.array([v.bit_length() for v in range(2048)], np.uint8)  # |value| -> bits
# A 64-bit word's lowest set bit times DE_BRUIJN, shifted right by 58, is a different 6-bit
# number for each of the 64 bits: DE_BRUIJN_BIT gives the bit's position from it.
DE_BRUIJN = np.uint64(0x03F79D71B4CB0A89)
DE_BRUIJN_BIT = np.zeros(64, np.int8)
for _bit in range(64):
    DE_BRUIJN_BIT[((1 << _bit) * int(DE_BRUIJN) % 2**64) >> 58] = _bit
PAD = 8  # zero bytes after unstuffed entropy-coded data: the decoders read 4 bytes at a time


@dataclass
class Scan:
    """A JPEG's one scan: its geometry, Huffman tables and where its entropy data lies."""

    width: int
    height: int
    ids: tuple[int, ...]  # the components' ids, in frame order
    samp: np.ndarray  # (components, 2): V, H sampling factors, in scan order
    dc_table: np.ndarray  # per component: the index of its DC table in `lut_*`/`code_*`
    ac_table: np.ndarray
    lut: np.ndarray  # (tables, 65536) uint16: code length << 8 | symbol of each 16-bit
    # lookahead; 0 where no code starts so
    code: np.ndarray  # (tables, 256) int64: each symbol's code
    code_len: np.ndarray  # (tables, 256) uint8: its length, 0 where the table lacks it
    qt: np.ndarray  # (tables, 8, 8) uint16: the quantisation tables by id, in natural order
    quant_tbl_no: np.ndarray  # per component: the id of its quantisation table
    names: dict[tuple[int, int], int]  # (class: 0 DC / 1 AC, id) -> index of its table
    sos: int  # the SOS segment
    start: int  # first byte of the entropy-coded data
    end: int  # the EOI marker that ends it

    @property
    def mcu(self) -> tuple[int, int]:
        """MCU height and width in pixels."""
        return 8 * int(self.samp[:, 0].max()), 8 * int(self.samp[:, 1].max())

    @property
    def mcus(self) -> tuple[int, int]:
        """MCU rows and columns."""
        mcu_h, mcu_w = self.mcu
        return -(-self.height // mcu_h), -(-self.width // mcu_w)

    @property
    def slots(self) -> np.ndarray:
        """The first block of each component within an MCU, and the block count after them."""
        return np.concatenate([[0], np.cumsum(self.samp[:, 0] * self.samp[:, 1])])


@dataclass
class Header:
    """What a JPEG's marker segments say: its frame, tables and scans, in file order."""

    marker: int  # the frame's SOF marker
    frame: tuple[int, int, list[tuple[int, ...]]]  # height, width, (id, sampling, table) each
    quant: dict[int, np.ndarray]  # quantisation tables by id, 8x8 in natural order
    scans: list[tuple[bytes, int, int, int, dict]]  # SOS body, its place, data start and end,
    # and the Huffman tables ((class, id) -> (counts, symbols)) in force for it
    restart: int  # the restart interval (DRI), 0 for none
    ycc: bool  # colour transform YCbCr (no Adobe segment saying otherwise)

    def sampling(self) -> np.ndarray | None:
        """(V, H) sampling factors per component of a grey or YCbCr frame (grey: one block per
        MCU, whatever the frame says); None for a frame our decoders do not read (RGB or CMYK
        coded, no height, a quantisation table missing, factors out of range)."""
        height, _, components = self.frame
        ids = bytes(c[0] for c in components)
        if height == 0 or len(components) not in (1, 3):
            return None
        if len(components) == 3 and (not self.ycc or ids == b"RGB"):
            return None
        if any(c[2] not in self.quant for c in components):
            return None
        samp = np.array([[c[1] & 15, c[1] >> 4] for c in components], np.int64)
        if len(components) == 1:
            samp[:] = 1
        return samp if 1 <= samp.min() and samp.max() <= 4 else None

    @property
    def qt(self) -> np.ndarray:
        """The quantisation tables by id (tables, 8, 8), natural order."""
        empty = np.zeros((8, 8), np.uint16)
        return np.stack([self.quant.get(k, empty) for k in range(max(self.quant) + 1)])

    @property
    def quant_tbl_no(self) -> np.ndarray:
        """Each component's quantisation table id."""
        return np.array([c[2] for c in self.frame[2]], np.int16)


def read_header(data: bytes) -> Header | None:
    """The marker segments of an 8-bit Huffman JPEG, up to its EOI; None for another file."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, marker_of, frame, tables, quant, scans, dri, ycc = 2, 0, None, {}, {}, [], 0, True
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xD9:
            if frame is None or not scans or not quant:
                return None
            return Header(marker_of, frame, quant, scans, dri, ycc)
        if pos + 4 > len(data):
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if frame is not None or body[0] != 8:
                return None
            if marker not in (*SEQUENTIAL_HUFFMAN, PROGRESSIVE_HUFFMAN):
                return None
            height, width, count = struct.unpack(">HHB", body[1:6])
            frame = (height, width, [tuple(body[6 + 3 * k : 9 + 3 * k]) for k in range(count)])
            marker_of = marker
        elif marker == 0xC4:
            at = 0
            while at + 17 <= len(body):
                bits = body[at + 1 : at + 17]
                total = sum(bits)
                tables[body[at] >> 4, body[at] & 15] = (bits, body[at + 17 : at + 17 + total])
                at += 17 + total
        elif marker == 0xDB:
            at = 0
            while at + 65 <= len(body):
                wide = body[at] >> 4  # 16-bit entries
                values = np.frombuffer(body, ">u2" if wide else np.uint8, 64, at + 1)
                table = np.zeros(64, np.uint16)
                table[ZIGZAG] = values
                quant[body[at] & 15] = table.reshape(8, 8)
                at += 65 + 64 * wide
        elif marker == 0xDD:
            dri = struct.unpack(">H", body[:2])[0]
        elif marker == 0xEE and body[:5] == b"Adobe" and len(body) >= 12:
            ycc = body[11] == 1  # its colour transform: 1 is YCbCr
        elif marker == 0xDA:
            start = pos + 2 + length
            end = _scan_end(data, start)
            if frame is None or end < 0:
                return None
            scans.append((body, pos, start, end, dict(tables)))
            pos = end
            continue
        pos += 2 + length
    return None


def parse(data: bytes) -> Scan | None:
    """The scan of a one-scan 8-bit sequential Huffman JPEG (grey or YCbCr, no restart
    markers); None for any other file."""
    header = read_header(data)
    if header is None or header.marker not in SEQUENTIAL_HUFFMAN or len(header.scans) != 1:
        return None
    samp = header.sampling()
    if header.restart or samp is None:
        return None
    return _scan(header, samp, *header.scans[0])


def _scan(header: Header, samp, body: bytes, sos: int, start: int, end: int, tables):
    height, width, components = header.frame
    count = body[0]
    if count != len(components):
        return None
    if body[1 + 2 * count : 4 + 2 * count] != b"\x00\x3f\x00":  # Ss=0, Se=63, Ah=Al=0
        return None
    ids = [c[0] for c in components]
    chosen = [body[1 + 2 * k : 3 + 2 * k] for k in range(count)]
    if [c[0] for c in chosen] != ids:  # the scan lists the components in frame order
        return None
    names = sorted({(0, c[1] >> 4) for c in chosen} | {(1, c[1] & 15) for c in chosen})
    if any(name not in tables for name in names):
        return None
    index = {name: k for k, name in enumerate(names)}
    lut = np.zeros((len(names), 1 << 16), np.uint16)
    code = np.zeros((len(names), 256), np.int64)
    code_len = np.zeros((len(names), 256), np.uint8)
    for name, k in index.items():
        if not _table(*tables[name], lut[k], code[k], code_len[k]):
            return None
    return Scan(
        width, height, tuple(ids), samp,
        np.array([index[0, c[1] >> 4] for c in chosen], np.int64),
        np.array([index[1, c[1] & 15] for c in chosen], np.int64),
        lut, code, code_len, header.qt, header.quant_tbl_no, index, sos, start, end,
    )  # fmt: skip


def _table(bits: bytes, symbols: bytes, lut, code, code_len) -> bool:
    """Fill one table's decoding lookahead and encoding codes (canonical Huffman codes)."""
    value, at = 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            if at >= len(symbols) or value >= 1 << length:
                return False
            symbol = symbols[at]
            shift = 16 - length
            lut[value << shift : (value + 1) << shift] = length << 8 | symbol
            code[symbol], code_len[symbol] = value, length
            value, at = value + 1, at + 1
        value <<= 1
    return True


def _scan_end(data: bytes, start: int) -> int:
    """The first marker after `start` that is not a stuffed 0xFF byte or a restart marker;
    -1 when none."""
    at = start
    while True:
        at = data.find(b"\xff", at)
        if at < 0 or at + 1 >= len(data):
            return -1
        if data[at + 1] != 0 and not 0xD0 <= data[at + 1] <= 0xD7:
            return at
        at += 2


class Decoded(NamedTuple):
    """A decoded JPEG: every block's coefficients in zig-zag order (MCUs x blocks per MCU x 64,
    int16), where each MCU's bits start in the unstuffed scan `raw` (and one more: its end);
    `bits` and `raw` are empty for a progressive file, whose bits cannot be copied."""

    blocks: np.ndarray
    bits: np.ndarray
    raw: np.ndarray


def decode(data: bytes, scan: Scan) -> Decoded | None:
    """The scan's coefficients; None for a scan that does not decode."""
    rows, cols = scan.mcus
    owner = _owner(scan)
    padded = unstuff(data, scan.start, scan.end)
    blocks = np.zeros((rows * cols, len(owner), 64), np.int16)
    bits = np.zeros(rows * cols + 1, np.int64)
    ok = _decode(padded, scan.lut, short_codes(scan.lut), scan.dc_table[owner],
                 scan.ac_table[owner], owner, blocks, bits)  # fmt: skip
    return Decoded(blocks, bits, padded[:-PAD]) if ok else None


def short_codes(lut: np.ndarray) -> np.ndarray:
    """The entries of `lut` (tables x 16-bit lookaheads) for codes of at most 16 - FAST_SHIFT
    bits, by their first bits, 0 for longer codes: a table that stays in the L1 cache, where
    most codes are found (a whole 16-bit table takes 128 KB)."""
    short = lut[:, :: 1 << FAST_SHIFT]
    return np.where(short >> 8 <= 16 - FAST_SHIFT, short, 0).astype(np.uint16)


def unstuff(data: bytes, start: int, end: int) -> np.ndarray:
    """The entropy-coded bytes from `start` to `end` without their stuffed zero bytes, and PAD
    zero bytes after them (the decoders read ahead)."""
    return _unstuff(np.frombuffer(data, np.uint8, end - start, start), PAD)


def splice(
    data: bytes,
    scan: Scan,
    decoded: Decoded,
    changed: np.ndarray,
    new_blocks: np.ndarray | None = None,
    new_at: np.ndarray | None = None,
) -> bytes | None:
    """The JPEG `data` with the MCUs flagged in `changed` (rows x cols bool) coded again and the
    others' bits copied; `new_blocks` replace the blocks of the MCUs `new_at` (the decoded
    ones are not written to). None when a changed block needs a code the source's tables
    lack."""
    rewrite = changed.ravel().copy()
    rewrite[1:] |= rewrite[:-1]  # the next MCU's DC differences refer to a changed block
    which = np.full(len(decoded.blocks), -1, np.int64)
    if new_blocks is None or new_at is None:
        new_blocks = decoded.blocks[:0]
    else:
        which[new_at] = np.arange(len(new_at))
    scan_bytes = _code_scan(scan, decoded, new_blocks, which, rewrite, scan.code, scan.code_len)
    return None if scan_bytes is None else data[: scan.start] + scan_bytes


def recode(data: bytes, scan: Scan, blocks: np.ndarray) -> bytes:
    """The JPEG `data` with its whole scan coded from `blocks` with Huffman tables made for
    them (as libjpeg's optimize_coding makes them), in one DHT segment before the scan."""
    owner = _owner(scan)
    freq = np.zeros((len(scan.code), 257), np.int64)
    none = np.full(len(blocks), -1, np.int64)
    _count(blocks, blocks[:0], none, scan.dc_table[owner], scan.ac_table[owner], owner, freq)
    code = np.zeros_like(scan.code)
    code_len = np.zeros_like(scan.code_len)
    segment = b""
    for name, k in scan.names.items():
        counts, symbols = optimal_table(freq[k])
        _table(counts, symbols, np.zeros(1 << 16, np.uint16), code[k], code_len[k])
        segment += bytes([name[0] << 4 | name[1]]) + counts + symbols
    rewrite = np.ones(len(blocks), bool)
    nothing = Decoded(blocks, np.zeros(len(blocks) + 1, np.int64), np.zeros(0, np.uint8))
    scan_bytes = _code_scan(scan, nothing, blocks[:0], none, rewrite, code, code_len)
    header = b"".join(
        _sequential(data[start:end], scan) if marker == 0xC2 else data[start:end]
        for marker, start, end in metadata.jpeg_segments(data)
        if marker not in (0xC4, 0xDA, 0xDD)
    )
    dht = b"\xff\xc4" + struct.pack(">H", len(segment) + 2) + segment
    return data[:2] + header + dht + _sos(scan) + scan_bytes


def _sequential(frame: bytes, scan: Scan) -> bytes:
    """A progressive frame header (SOF2 segment) as a sequential one: baseline, or extended
    where a quantisation table has 16-bit entries."""
    return frame[:1] + (b"\xc1" if scan.qt.max() > 255 else b"\xc0") + frame[2:]


def _sos(scan: Scan) -> bytes:
    """The header of one scan of all components, in frame order, with the scan's tables."""
    by_index = {k: name for name, k in scan.names.items()}
    body = bytes([len(scan.ids)])
    for index, component in enumerate(scan.ids):
        dc, ac = by_index[int(scan.dc_table[index])], by_index[int(scan.ac_table[index])]
        body += bytes([component, dc[1] << 4 | ac[1]])
    body += b"\x00\x3f\x00"
    return b"\xff\xda" + struct.pack(">H", len(body) + 2) + body


def optimal_table(freq: np.ndarray) -> tuple[bytes, bytes]:
    """(code counts per length 1-16, symbols) of the Huffman table that libjpeg's
    `jpeg_gen_optimal_table` makes for these symbol frequencies (JPEG Annex K.2, with one code
    point reserved so that no code is all ones)."""
    freq = freq.astype(np.int64).copy()
    freq[256] = 1
    size = np.zeros(257, np.int64)
    others = np.full(257, -1, np.int64)
    _huffman_sizes(freq, size, others)
    bits = np.bincount(size[size > 0], minlength=33)[:33].astype(np.int64)
    for i in range(32, 16, -1):  # no code longer than 16 bits
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1  # the reserved code point
    symbols = [j for length in range(1, 33) for j in range(256) if size[j] == length]
    return bytes(bits[1:17].tolist()), bytes(symbols)


def _owner(scan: Scan) -> np.ndarray:
    """The component of each block of an MCU."""
    return np.repeat(np.arange(len(scan.samp)), np.diff(scan.slots))


def _code_scan(scan: Scan, decoded: Decoded, over, which, rewrite, code, code_len) -> bytes | None:
    """The stuffed entropy-coded bytes and EOI of a scan: the MCUs in `rewrite` coded from the
    blocks (MCU m's are over[which[m]] where that is not -1) with these codes, the others'
    bits copied; None when a code is missing."""
    owner = _owner(scan)
    blocks, bits, raw = decoded
    out = np.empty(len(raw) + 256 * int(rewrite.sum()) * blocks.shape[1] + 16, np.uint8)
    size = _splice(raw, bits, blocks, over, which, rewrite, code, code_len,
                   scan.dc_table[owner], scan.ac_table[owner], owner, out)  # fmt: skip
    if size < 0:
        return None
    return _stuff(out[:size]).tobytes() + b"\xff\xd9"


# ---- compiled parts ----------------------------------------------------------------------


@jit
def _unstuff(data: np.ndarray, pad: int) -> np.ndarray:
    out = np.zeros(len(data) + pad, np.uint8)
    n, i = 0, 0
    while i < len(data):
        out[n] = data[i]
        n += 1
        i += 2 if data[i] == 0xFF else 1  # 0xFF 0x00 is one 0xFF byte
    return out[: n + pad]


@jit
def _stuff(data: np.ndarray) -> np.ndarray:
    out = np.empty(2 * len(data), np.uint8)
    n = 0
    for i in range(len(data)):
        out[n] = data[i]
        n += 1
        if data[i] == 0xFF:
            out[n] = 0
            n += 1
    return out[:n]


@jit
def _decode(raw, lut, fast, dc_of, ac_of, owner, blocks, bits) -> bool:
    """Huffman-decode the unstuffed scan `raw` (with 8 zero bytes after it) into `blocks`;
    `lut`: per table, (code length << 8 | symbol) of each 16-bit lookahead, 0 where none;
    `fast`: the same for the short codes only, by their first bits (`short_codes`)."""
    acc, have, at = np.int64(0), 0, 0  # bits read ahead (only the low `have` count), next byte
    end = len(raw) - PAD
    pred = np.zeros(owner.max() + 1, np.int64)
    for m in range(blocks.shape[0]):
        bits[m] = at * 8 - have
        for b in range(blocks.shape[1]):
            block = blocks[m, b]
            table = dc_of[b]
            k = 0
            while k < 64:
                if have < 27:  # room for a code and its value (16 + 11 bits): 4 more bytes
                    acc = (
                        (acc << 32)
                        | (np.int64(raw[at]) << 24)
                        | (np.int64(raw[at + 1]) << 16)
                        | (np.int64(raw[at + 2]) << 8)
                        | np.int64(raw[at + 3])
                    )
                    at, have = at + 4, have + 32
                peek = (acc >> (have - 16)) & 0xFFFF
                entry = np.int64(fast[table, peek >> FAST_SHIFT])
                if entry == 0:
                    entry = np.int64(lut[table, peek])
                    if entry == 0:
                        return False
                have -= entry >> 8
                symbol = entry & 0xFF
                run, size = (0, symbol) if k == 0 else (symbol >> 4, symbol & 15)
                value = np.int64(0)
                if size:
                    have -= size
                    value = (acc >> have) & ((np.int64(1) << size) - 1)
                    if value < np.int64(1) << (size - 1):
                        value -= (np.int64(1) << size) - 1
                if k == 0:
                    pred[owner[b]] += value
                    block[0] = pred[owner[b]]
                    table = ac_of[b]
                    k = 1
                elif size:
                    k += run
                    if k > 63:
                        return False
                    block[k] = value
                    k += 1
                elif run == 15:
                    k += 16
                else:
                    break  # end of block
    bits[blocks.shape[0]] = at * 8 - have
    return at * 8 - have <= end * 8


@jit
def _emit(out, acc, have, n, bits, length):
    """Append `length` (at most 32) bits; (acc, have, n): the bit buffer, the bits in it (fewer
    than 8 between calls), the bytes written. Returns the new state."""
    acc = (acc << length) | (bits & ((np.int64(1) << length) - 1))
    have += length
    while have >= 8:
        have -= 8
        out[n] = (acc >> have) & 0xFF
        n += 1
    return acc & ((np.int64(1) << have) - 1), have, n


@jit
def _put(out, state, value, length) -> None:
    """`_emit` with its state in an array: (bit buffer, bits in it, bytes written)."""
    state[0], state[1], state[2] = _emit(out, state[0], state[1], state[2], value, length)


@jit
def _category(value) -> int:
    """The bits of |value| (JPEG's magnitude category)."""
    value = abs(value)
    if value < CATEGORIES.size:
        return np.int64(CATEGORIES[value])
    size = 0
    while value:
        size += 1
        value >>= 1
    return size


@jit
def _mcu(blocks, over, which, m):
    """MCU m's blocks: a replacement's where it has one."""
    return over[which[m]] if which[m] >= 0 else blocks[m]


@jit
def _symbols(blocks, over, which, m, b, owner, symbols, values, sizes) -> int:
    """Block `b` of MCU `m` as Huffman symbols in coding order, each with its value bits: the DC
    difference's category first (against the previous block of its component), then the AC
    run/size symbols, ZRL (0xF0) and EOB (0x00). Returns how many."""
    mcu = _mcu(blocks, over, which, m)
    block = mcu[b]
    prev = 0
    if b > 0 and owner[b - 1] == owner[b]:
        prev = mcu[b - 1, 0]
    elif m > 0:
        last = b
        while last + 1 < blocks.shape[1] and owner[last + 1] == owner[b]:
            last += 1
        prev = _mcu(blocks, over, which, m - 1)[last, 0]
    diff = np.int64(block[0]) - prev
    size = _category(diff)
    symbols[0], values[0], sizes[0] = size, diff if diff > 0 else diff - 1, size
    nonzero = np.uint64(0)  # bit k: coefficient k is not 0 (a branch-free scan)
    for k in range(1, 64):
        nonzero |= np.uint64(block[k] != 0) << np.uint64(k)
    n, after = 1, 1  # symbols so far; the coefficient after the last one coded
    while nonzero:
        low = nonzero & (~nonzero + np.uint64(1))
        k = np.int64(DE_BRUIJN_BIT[(low * DE_BRUIJN) >> np.uint64(58)])
        nonzero ^= low
        run = k - after
        while run > 15:
            symbols[n], sizes[n] = 0xF0, 0
            n, run = n + 1, run - 16
        value = np.int64(block[k])
        size = _category(value)
        symbols[n], values[n], sizes[n] = (run << 4) | size, value if value > 0 else value - 1, size
        n, after = n + 1, k + 1
    if after < 64:
        symbols[n], sizes[n] = 0, 0  # end of block
        n += 1
    return n


@jit
def _encode_mcu(out, state, blocks, over, which, m, code, code_len, dc_of, ac_of, owner,
                scratch) -> bool:  # fmt: skip
    """Code MCU m's blocks; `scratch`: three int64 arrays of 80 for `_symbols`."""
    symbols, values, sizes = scratch[0], scratch[1], scratch[2]
    acc, have, n = state[0], state[1], state[2]
    for b in range(blocks.shape[1]):
        count = _symbols(blocks, over, which, m, b, owner, symbols, values, sizes)
        for i in range(count):
            table = dc_of[b] if i == 0 else ac_of[b]
            length = np.int64(code_len[table, symbols[i]])
            if length == 0:
                return False
            size = sizes[i]  # the code and its value bits at once (at most 16 + 11 bits)
            bits = (code[table, symbols[i]] << size) | (values[i] & ((np.int64(1) << size) - 1))
            acc, have, n = _emit(out, acc, have, n, bits, length + size)
    state[0], state[1], state[2] = acc, have, n
    return True


@jit
def _count(blocks, over, which, dc_of, ac_of, owner, freq) -> None:
    """How often each table's symbols occur in the whole scan."""
    scratch = np.empty((3, 80), np.int64)
    symbols, values, sizes = scratch[0], scratch[1], scratch[2]
    for m in range(blocks.shape[0]):
        for b in range(blocks.shape[1]):
            n = _symbols(blocks, over, which, m, b, owner, symbols, values, sizes)
            freq[dc_of[b], symbols[0]] += 1
            for i in range(1, n):
                freq[ac_of[b], symbols[i]] += 1


@jit
def _huffman_sizes(freq, size, others) -> None:
    """Code sizes of Annex K.2: merge the two least frequent (the higher symbol on ties)."""
    while True:
        c1, c2, v = -1, -1, np.int64(1) << 62
        for i in range(257):
            if freq[i] and freq[i] <= v:
                v, c1 = freq[i], i
        v = np.int64(1) << 62
        for i in range(257):
            if freq[i] and freq[i] <= v and i != c1:
                v, c2 = freq[i], i
        if c2 < 0:
            return
        freq[c1] += freq[c2]
        freq[c2] = 0
        size[c1] += 1
        while others[c1] >= 0:
            c1 = others[c1]
            size[c1] += 1
        others[c1] = c2
        size[c2] += 1
        while others[c2] >= 0:
            c2 = others[c2]
            size[c2] += 1


@jit
def _copy_bits(out, state, raw, start, stop) -> None:
    """Append bits `start` to `stop` of `raw`."""
    at = start
    while at < stop and at & 7:
        _put(out, state, (raw[at >> 3] >> (7 - (at & 7))) & 1, 1)
        at += 1
    if state[1] == 0:  # both byte-aligned: whole bytes
        whole = (stop - at) >> 3
        n = state[2]
        out[n : n + whole] = raw[at >> 3 : (at >> 3) + whole]
        state[2] = n + whole
        at += whole * 8
    while at + 8 <= stop:
        _put(out, state, raw[at >> 3], 8)
        at += 8
    while at < stop:
        _put(out, state, (raw[at >> 3] >> (7 - (at & 7))) & 1, 1)
        at += 1


@jit
def _splice(raw, bits, blocks, over, which, rewrite, code, code_len, dc_of, ac_of, owner, out):
    """The new scan's bytes in `out` (unstuffed, padded with ones); its size, or -1."""
    state = np.zeros(3, np.int64)
    scratch = np.empty((3, 80), np.int64)
    m = 0
    count = len(rewrite)
    while m < count:
        if rewrite[m]:
            if not _encode_mcu(out, state, blocks, over, which, m, code, code_len, dc_of, ac_of,
                               owner, scratch):  # fmt: skip
                return -1
            m += 1
            continue
        stop = m
        while stop < count and not rewrite[stop]:
            stop += 1
        _copy_bits(out, state, raw, bits[m], bits[stop])
        m = stop
    if state[1]:
        _put(out, state, 0xFF, 8 - state[1])
    return state[2]
