"""The pixels of a box of a JPEG, from its decoded coefficients (pipeline/stages/jpeg_scan.py),
exactly as libjpeg-turbo computes them: the accurate integer IDCT (`jpeg_idct_islow`), "fancy"
(triangle) chroma upsampling and its YCbCr -> RGB tables, compiled with numba.

Only the blocks of the box and one MCU around it are transformed, so a photo whose hole is
small never becomes a whole RGB array. Covers YCbCr JPEGs with 4:4:4, 4:2:2 and 4:2:0 chroma
(`supported`); any other file is decoded whole by the caller.
"""

from __future__ import annotations

import numba
import numpy as np

from .jpeg_scan import ZIGZAG, Decoded, Scan

jit = numba.njit(cache=True, nogil=True)

# the samplings covered, (V, H) per component: 4:4:4, 4:2:2, 4:2:0
SAMPLINGS = ([[1, 1], [1, 1], [1, 1]], [[1, 2], [1, 1], [1, 1]], [[2, 2], [1, 1], [1, 1]])
CONST_BITS, PASS1_BITS = 13, 2
SCALE = 16  # the colour tables' fixed-point bits


def _fix(x: float) -> int:
    return int(x * (1 << CONST_BITS) + 0.5)


# jpeg_idct_islow's constants: FIX(0.298631336) ... FIX(3.072711026), in this order
IDCT = np.array(
    [_fix(c) for c in (0.298631336, 0.390180644, 0.541196100, 0.765366865, 0.899976223,
                       1.175875602, 1.501321110, 1.847759065, 1.961570560, 2.053119869,
                       2.562915447, 3.072711026)],
    np.int64,
)  # fmt: skip


def _color_tables() -> np.ndarray:
    """libjpeg's YCbCr -> RGB tables (jdcolor.c): Cr->R, Cb->B, Cr->G, Cb->G (with rounding)."""
    x = np.arange(256, dtype=np.int64) - 128
    one_half = 1 << (SCALE - 1)

    def fix(v: float) -> int:
        return int(v * (1 << SCALE) + 0.5)

    return np.stack(
        [
            (fix(1.40200) * x + one_half) >> SCALE,
            (fix(1.77200) * x + one_half) >> SCALE,
            -fix(0.71414) * x,
            -fix(0.34414) * x + one_half,
        ]
    )


COLOR = _color_tables()
NATURAL = np.argsort(ZIGZAG)  # the zig-zag position of each natural index


def supported(scan: Scan) -> bool:
    """Whether `pixels` covers this JPEG (YCbCr, 4:4:4, 4:2:2 or 4:2:0, not tiny)."""
    return scan.samp.tolist() in SAMPLINGS and min(scan.width, scan.height) >= 16


def pixels(scan: Scan, decoded: Decoded, box: tuple[int, int, int, int]) -> np.ndarray:
    """The RGB pixels (uint8, stored orientation) of `box` = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    mcu_h, mcu_w = scan.mcu
    rows, cols = scan.mcus
    # the MCUs of the box, and one more around it: the chroma upsampling reads its neighbours
    r0, r1 = max(0, y0 // mcu_h - 1), min(rows, -(-y1 // mcu_h) + 1)
    c0, c1 = max(0, x0 // mcu_w - 1), min(cols, -(-x1 // mcu_w) + 1)
    vmax, hmax = int(scan.samp[:, 0].max()), int(scan.samp[:, 1].max())
    planes = []
    for index in range(3):
        v, h = (int(n) for n in scan.samp[index])
        qt = scan.qt[scan.quant_tbl_no[index]].ravel().astype(np.int64)
        plane = np.empty(((r1 - r0) * v * 8, (c1 - c0) * h * 8), np.uint8)
        _idct_region(decoded.blocks, int(scan.slots[index]), v, h, r0, r1, c0, c1, cols,
                     qt[ZIGZAG], plane)  # fmt: skip
        if (v, h) != (vmax, hmax):  # chroma at half resolution: up to the luma's grid
            height = -(-scan.height * v // vmax)  # the component's own size, in samples
            width = -(-scan.width * h // hmax)
            plane = _upsample(plane, vmax // v, height - r0 * v * 8, width - c0 * h * 8)
        planes.append(plane)
    oy, ox = y0 - r0 * mcu_h, x0 - c0 * mcu_w
    out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    _ycc_to_rgb(planes[0], planes[1], planes[2], oy, ox, COLOR, out)
    return out


@jit
def _idct_region(blocks, slot, v, h, r0, r1, c0, c1, cols, qt_zigzag, plane) -> None:
    work = np.empty(72, np.int64)  # the pass-1 block, then one output row
    coef = np.empty(64, np.int64)
    for r in range(r0, r1):
        for c in range(c0, c1):
            m = r * cols + c
            for by in range(v):
                for bx in range(h):
                    block = blocks[m, slot + by * h + bx]
                    y = ((r - r0) * v + by) * 8
                    x = ((c - c0) * h + bx) * 8
                    last = 63
                    while last > 0 and block[last] == 0:
                        last -= 1
                    if last == 0:  # a flat block (common): what the full transform gives it
                        dc = (np.int64(block[0]) * qt_zigzag[0]) << PASS1_BITS
                        plane[y : y + 8, x : x + 8] = _limit(_descale(dc, PASS1_BITS + 3))
                        continue
                    coef[:] = 0
                    for k in range(last + 1):
                        coef[ZIGZAG[k]] = np.int64(block[k]) * qt_zigzag[k]
                    _idct(coef, work, plane, y, x)


@jit
def _idct(coef, work, plane, y, x) -> None:
    """jpeg_idct_islow on one dequantised block (natural order) into plane[y:y+8, x:x+8]."""
    for col in range(8):  # pass 1: columns, scaled up by 2**PASS1_BITS
        if (coef[8 + col] == 0 and coef[16 + col] == 0 and coef[24 + col] == 0
                and coef[32 + col] == 0 and coef[40 + col] == 0 and coef[48 + col] == 0
                and coef[56 + col] == 0):  # fmt: skip
            dc = coef[col] << PASS1_BITS
            for k in range(8):
                work[8 * k + col] = dc
            continue
        _butterfly(coef, col, 8, work, col, 8, CONST_BITS - PASS1_BITS)
    row_out = work[64:]
    for row in range(8):  # pass 2: rows, to samples
        at = 8 * row
        if (work[at + 1] == 0 and work[at + 2] == 0 and work[at + 3] == 0 and work[at + 4] == 0
                and work[at + 5] == 0 and work[at + 6] == 0 and work[at + 7] == 0):  # fmt: skip
            value = _limit(_descale(work[at], PASS1_BITS + 3))
            for k in range(8):
                plane[y + row, x + k] = value
            continue
        _butterfly(work, at, 1, row_out, 0, 1, CONST_BITS + PASS1_BITS + 3)
        for k in range(8):
            plane[y + row, x + k] = _limit(row_out[k])


@jit
def _butterfly(src, start, step, dst, dstart, dstep, shift) -> None:
    """One 8-point pass of jpeg_idct_islow: src[start + k*step] -> dst[dstart + k*dstep],
    descaled by `shift` bits."""
    z2 = src[start + 2 * step]
    z3 = src[start + 6 * step]
    z1 = (z2 + z3) * IDCT[2]
    tmp2 = z1 - z3 * IDCT[7]
    tmp3 = z1 + z2 * IDCT[3]
    tmp0 = (src[start] + src[start + 4 * step]) << CONST_BITS
    tmp1 = (src[start] - src[start + 4 * step]) << CONST_BITS
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    tmp3 = src[start + step]
    tmp2 = src[start + 3 * step]
    tmp1 = src[start + 5 * step]
    tmp0 = src[start + 7 * step]
    z4, z3 = tmp1 + tmp3, tmp0 + tmp2
    z2, z1 = tmp1 + tmp2, tmp0 + tmp3
    z5 = (z3 + z4) * IDCT[5]
    tmp3 *= IDCT[6]
    tmp2 *= IDCT[11]
    tmp1 *= IDCT[9]
    tmp0 *= IDCT[0]
    z4 = z4 * -IDCT[1] + z5
    z3 = z3 * -IDCT[8] + z5
    z1 *= -IDCT[4]
    z2 *= -IDCT[10]
    tmp3 += z1 + z4
    tmp2 += z2 + z3
    tmp1 += z2 + z4
    tmp0 += z1 + z3
    dst[dstart] = _descale(tmp10 + tmp3, shift)
    dst[dstart + dstep] = _descale(tmp11 + tmp2, shift)
    dst[dstart + 2 * dstep] = _descale(tmp12 + tmp1, shift)
    dst[dstart + 3 * dstep] = _descale(tmp13 + tmp0, shift)
    dst[dstart + 4 * dstep] = _descale(tmp13 - tmp0, shift)
    dst[dstart + 5 * dstep] = _descale(tmp12 - tmp1, shift)
    dst[dstart + 6 * dstep] = _descale(tmp11 - tmp2, shift)
    dst[dstart + 7 * dstep] = _descale(tmp10 - tmp3, shift)


@jit
def _descale(value, shift):
    return (value + (np.int64(1) << (shift - 1))) >> shift


@jit
def _limit(value):
    """libjpeg's post-IDCT range limit: wrapped to 10 bits, centred, clamped to 0-255."""
    value = ((value + 512) & 1023) - 512 + 128
    return np.uint8(min(max(value, 0), 255))


def _upsample(plane: np.ndarray, factor_v: int, height: int, width: int) -> np.ndarray:
    """libjpeg's fancy upsampling of a half-width (and, with factor_v 2, half-height) chroma
    plane: each output sample is 3/4 of its nearer input sample and 1/4 of the further one,
    per direction. The component's samples end `height` rows and `width` columns from the
    plane's corner; libjpeg repeats its edge samples beyond, and so does this. A plane's own
    first and last rows and columns, where they are not the component's, read a repeated
    neighbour too: the caller's margin keeps those outputs off the box."""
    out = np.empty((plane.shape[0] * factor_v, plane.shape[1] * 2), np.uint8)
    _fancy(plane, factor_v, min(height, plane.shape[0]), min(width, plane.shape[1]), out)
    return out


@jit
def _fancy(plane, factor_v, height, width, out) -> None:
    rows, cols = plane.shape
    for i in range(rows):
        src = min(i, height - 1)
        for half in range(factor_v):
            other = src  # the further row: above for the upper output row, below for the lower
            if factor_v == 2:
                other = min(max(src - 1 if half == 0 else src + 1, 0), height - 1)
            for j in range(cols):
                jj = min(j, width - 1)
                lo, hi = max(jj - 1, 0), min(jj + 1, width - 1)
                if factor_v == 2:
                    this = 3 * np.int64(plane[src, jj]) + plane[other, jj]
                    last = 3 * np.int64(plane[src, lo]) + plane[other, lo]
                    after = 3 * np.int64(plane[src, hi]) + plane[other, hi]
                    out[2 * i + half, 2 * j] = (3 * this + last + 8) >> 4
                    out[2 * i + half, 2 * j + 1] = (3 * this + after + 7) >> 4
                else:
                    this = 3 * np.int64(plane[src, jj])
                    out[i, 2 * j] = (this + plane[src, lo] + 1) >> 2
                    out[i, 2 * j + 1] = (this + plane[src, hi] + 2) >> 2


@jit
def _ycc_to_rgb(y, cb, cr, oy, ox, color, out) -> None:
    limit = np.empty(1024, np.uint8)  # clamped to 0-255, from -384 up
    for v in range(1024):
        limit[v] = min(max(v - 384, 0), 255)
    r_of, b_of, g_of_cr, g_of_cb = color[0], color[1], color[2], color[3]
    for i in range(out.shape[0]):
        yrow, brow, rrow, orow = y[oy + i, ox:], cb[oy + i, ox:], cr[oy + i, ox:], out[i]
        for j in range(out.shape[1]):
            luma = np.int64(yrow[j]) + 384
            blue, red = brow[j], rrow[j]
            orow[j, 0] = limit[luma + r_of[red]]
            orow[j, 1] = limit[luma + ((g_of_cb[blue] + g_of_cr[red]) >> SCALE)]
            orow[j, 2] = limit[luma + b_of[blue]]
