"""Telea's fast-marching inpainting as OpenCV computes it (`cv2.inpaint(..., INPAINT_TELEA)`),
compiled with numba.

OpenCV works out each neighbour's weight once per colour channel although it depends only on
the distance map; here it is worked out once and shared by the three channels. Everything else
follows OpenCV step by step: the same distance map (negated outside the hole), the same order
(a queue on (distance, arrival), as OpenCV's sorted list pops), the same float32 arithmetic and
the same one-sided gradients, so the fill matches OpenCV's on nearly every pixel (on watermark
holes about 1 % of the values differ, mostly by 1-3 levels, where float rounding breaks a tie
the other way). It costs about half of OpenCV's CPU. This is the pre-fill every residual
generator reads, at model size in training and at full resolution in the pipeline, where it is
the largest CPU cost of a photo with a text watermark (bench/stage_costs.py).
"""

from __future__ import annotations

import cv2
import numba
import numpy as np

from .compiled import usable_cwd

KNOWN, BAND, INSIDE, CHANGE = 0, 1, 2, 3  # OpenCV's pixel states; CHANGE: reached outside
FAR = np.float32(1.0e6)  # the distance of a pixel not reached yet
jit = numba.njit(cache=True, nogil=True, error_model="numpy")


def telea_inpaint(image: np.ndarray, hole: np.ndarray, radius: int) -> np.ndarray:
    """`image` (uint8 H×W×3) with `hole` (bool H×W) filled by Telea's method from the known
    pixels within `radius` px (a copy; pixels outside the hole are unchanged)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("telea_inpaint takes uint8 H×W×3 images")
    if image.shape[:2] != hole.shape:
        raise ValueError(f"hole {hole.shape} does not match image {image.shape[:2]}")
    radius = min(max(int(radius), 1), 100)
    inside = np.zeros((hole.shape[0] + 2, hole.shape[1] + 2), bool)  # a frame, as OpenCV's
    inside[1:-1, 1:-1] = hole
    band = _framed(_grow(inside, cv2.MORPH_CROSS, 1) & ~inside)
    ring = _framed(_grow(inside, cv2.MORPH_RECT, radius) & ~inside & ~band)
    out = np.array(image, order="C", copy=True)
    band_ys, band_xs = np.nonzero(band)  # raster order, as OpenCV queues them
    if not band_ys.size:
        return out
    usable_cwd()
    t = np.full(inside.shape, FAR, np.float32)
    t[band] = 0.0
    capacity = band_ys.size + max(int(inside.sum()), int(ring.sum())) + 1
    queue = _queue(capacity)
    dks, dls, dsts = _neighbours(radius)
    states = ring.view(np.uint8) * np.uint8(INSIDE)  # KNOWN is 0
    _march(out, states, t, band_ys, band_xs, dks, dls, dsts, *queue, False)
    t[states == CHANGE] *= -1  # the ring's distances, negated outside the hole as OpenCV's
    states = inside.view(np.uint8) * np.uint8(INSIDE)
    _march(out, states, t, band_ys, band_xs, dks, dls, dsts, *queue, True)
    return out


def _queue(capacity: int) -> tuple[np.ndarray, ...]:
    """A binary min-heap for `capacity` entries: each entry's order key (its distance's float32
    bits above its arrival number: distances are never negative, so the integers order as the
    pairs (distance, arrival) do, as OpenCV's list pops them) and its pixel (row above column)."""
    return np.empty(capacity, np.uint64), np.empty(capacity, np.uint64)


def _grow(inside: np.ndarray, shape: int, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(shape, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(inside.view(np.uint8), kernel).astype(bool)


def _framed(region: np.ndarray) -> np.ndarray:
    region[[0, -1], :] = False
    region[:, [0, -1]] = False
    return region


def _neighbours(radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column offsets of the neighbours within `radius`, in OpenCV's scan order (rows,
    then columns), and the distance weight |r|^-3 of each; the centre is left out (it is always
    the pixel being filled)."""
    dks, dls, dsts = [], [], []
    for dk in range(-radius, radius + 1):
        for dl in range(-radius, radius + 1):
            if (dk or dl) and dk * dk + dl * dl <= radius * radius:
                length = float(dk * dk + dl * dl)
                dks.append(dk)
                dls.append(dl)
                dsts.append(1.0 / (length * np.sqrt(length)))
    return np.array(dks, np.int64), np.array(dls, np.int64), np.array(dsts, np.float32)


@jit
def _order(distance, seq, bits):
    """The heap key of (distance, arrival); `bits` is a float32 scratch array's uint32 view."""
    bits.view(np.float32)[0] = distance
    return (np.uint64(bits[0]) << np.uint64(32)) | np.uint64(seq)


@jit
def _cell(y, x):
    """A pixel as one heap word: its row above its column."""
    return (np.uint64(y) << np.uint64(32)) | np.uint64(x)


@jit
def _push(keys, cells, size, key, cell):
    at = size
    while at > 0:
        parent = (at - 1) >> 1
        if keys[parent] < key:
            break
        keys[at], cells[at] = keys[parent], cells[parent]
        at = parent
    keys[at], cells[at] = key, cell
    return size + 1


@jit
def _pop(keys, cells, size):
    """The smallest entry's pixel (row, column) and the heap's new size."""
    cell = cells[0]
    size -= 1
    key, last = keys[size], cells[size]
    at = 0
    while True:
        child = 2 * at + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if key < keys[child]:
            break
        keys[at], cells[at] = keys[child], cells[child]
        at = child
    keys[at], cells[at] = key, last
    return np.int64(cell >> np.uint64(32)), np.int64(cell & np.uint64(0xFFFFFFFF)), size


@jit
def _solve(i1, j1, i2, j2, states, t):
    """The arrival time from two neighbours (the eikonal equation's upwind solution)."""
    a11 = np.float64(t[i1, j1])
    a22 = np.float64(t[i2, j2])
    if states[i1, j1] != INSIDE:
        if states[i2, j2] != INSIDE:
            if abs(a11 - a22) >= 1.0:
                return np.float32(1 + min(a11, a22))
            return np.float32((a11 + a22 + np.sqrt(2 - (a11 - a22) * (a11 - a22))) * 0.5)
        return np.float32(1 + a11)
    if states[i2, j2] != INSIDE:
        return np.float32(1 + a22)
    return np.float32(1 + min(a11, a22))


@jit
def _arrival(i, j, states, t):
    return min(
        min(_solve(i - 1, j, i, j - 1, states, t), _solve(i + 1, j, i, j - 1, states, t)),
        min(_solve(i - 1, j, i, j + 1, states, t), _solve(i + 1, j, i, j + 1, states, t)),
    )


@jit
def _step(ii, jj, q):
    """The q-th of the four neighbours: up, left, down, right."""
    if q == 0:
        return ii - 1, jj
    if q == 1:
        return ii, jj - 1
    if q == 2:
        return ii + 1, jj
    return ii, jj + 1


@jit
def _seed(band_ys, band_xs, keys, cells):
    """Queue the band (the known pixels next to the hole) at distance 0, in raster order: keys
    that rise with the arrival number already form a heap."""
    for n in range(band_ys.size):
        keys[n] = np.uint64(n)  # distance 0.0 has all bits 0
        cells[n] = _cell(band_ys[n], band_xs[n])
    return band_ys.size


@jit
def _time_gradient(i, j, states, t):
    """OpenCV's gradient of the distance map at (i, j): central, or one-sided next to
    pixels not reached yet."""
    tij = t[i, j]
    if states[i, j + 1] != INSIDE:
        if states[i, j - 1] != INSIDE:
            gx = np.float32(t[i, j + 1] - t[i, j - 1]) * np.float32(0.5)
        else:
            gx = np.float32(t[i, j + 1] - tij)
    elif states[i, j - 1] != INSIDE:
        gx = np.float32(tij - t[i, j - 1])
    else:
        gx = np.float32(0.0)
    if states[i + 1, j] != INSIDE:
        if states[i - 1, j] != INSIDE:
            gy = np.float32(t[i + 1, j] - t[i - 1, j]) * np.float32(0.5)
        else:
            gy = np.float32(t[i + 1, j] - tij)
    elif states[i - 1, j] != INSIDE:
        gy = np.float32(tij - t[i - 1, j])
    else:
        gy = np.float32(0.0)
    return gx, gy


@jit
def _pair(after_known, before_known, a, b, c, d):
    """The two image indices of a gradient and its scale: (a, b)·2 when both sides are known
    (OpenCV's factor), (a, c) or (d, b) one-sided, none when neither is."""
    if after_known and before_known:
        return a, b, np.float32(2.0)
    if after_known:
        return a, c, np.float32(1.0)
    if before_known:
        return d, b, np.float32(1.0)
    return c, c, np.float32(0.0)


@jit
def _fill_pixel(out, states, t, i, j, dks, dls, dsts, acc):
    """Telea's weighted first-order estimate of hole pixel (i, j) (frame coordinates)."""
    rows, cols = states.shape
    tij = t[i, j]
    gtx, gty = _time_gradient(i, j, states, t)
    acc[:] = 0.0  # per channel: the weighted values and the two gradient terms
    s = np.float32(1.0e-20)
    for n in range(dks.size):
        k = i + dks[n]
        l = j + dls[n]  # noqa: E741 (OpenCV's names)
        if k <= 0 or l <= 0 or k >= rows - 1 or l >= cols - 1 or states[k, l] == INSIDE:
            continue
        ry = np.float32(i - k)
        rx = np.float32(j - l)
        lev = np.float32(1.0) / (np.float32(1.0) + abs(np.float32(t[k, l] - tij)))
        direction = np.float32(rx * gtx + ry * gty)
        if abs(direction) <= 0.01:
            direction = np.float32(0.000001)
        w = abs(np.float32(dsts[n] * lev) * direction)
        km = k - 1 + (1 if k == 1 else 0)  # image coordinates, clamped at the border
        kp = k - 1 - (1 if k == rows - 2 else 0)
        lm = l - 1 + (1 if l == 1 else 0)
        lp = l - 1 - (1 if l == cols - 2 else 0)
        xa, xb, sx = _pair(
            states[k, l + 1] != INSIDE, states[k, l - 1] != INSIDE, lp + 1, lm - 1, lm, lp
        )
        ya, yb, sy = _pair(
            states[k + 1, l] != INSIDE, states[k - 1, l] != INSIDE, kp + 1, km - 1, km, kp
        )
        for c in range(3):
            gx = np.float32(np.int32(out[km, xa, c]) - np.int32(out[km, xb, c])) * sx
            gy = np.float32(np.int32(out[ya, lm, c]) - np.int32(out[yb, lm, c])) * sy
            acc[c, 0] += w * np.float32(out[km, lm, c])
            acc[c, 1] -= w * np.float32(gx * rx)
            acc[c, 2] -= w * np.float32(gy * ry)
        s += w
    for c in range(3):
        ia, jx, jy = acc[c, 0], acc[c, 1], acc[c, 2]
        norm = np.float32(np.sqrt(np.float32(jx * jx + jy * jy)))
        term = np.float32(jx + jy) / (norm + np.float32(1.0e-20))
        value = np.rint(np.float32(ia / s) + term + np.float32(0.5))
        out[i - 1, j - 1, c] = np.uint8(min(max(value, 0.0), 255.0))


@jit
def _march(out, states, t, band_ys, band_xs, dks, dls, dsts, keys, cells, fill):
    """From the band through the pixels `states` marks INSIDE, in order of arrival: each gets
    its distance, and with `fill` its value (the hole, from its edge inwards); without, the
    pixels reached are left CHANGE (the known ring around the hole, only measured)."""
    rows, cols = states.shape
    acc = np.zeros((3, 3), np.float32)
    bits = np.zeros(1, np.uint32)
    size = seq = _seed(band_ys, band_xs, keys, cells)
    while size > 0:
        ii, jj, size = _pop(keys, cells, size)
        states[ii, jj] = KNOWN if fill else CHANGE
        for q in range(4):
            i, j = _step(ii, jj, q)
            if i <= 0 or j <= 0 or i >= rows or j >= cols or states[i, j] != INSIDE:
                continue
            dist = _arrival(i, j, states, t)
            t[i, j] = dist
            if fill:
                _fill_pixel(out, states, t, i, j, dks, dls, dsts, acc)
            states[i, j] = BAND
            size = _push(keys, cells, size, _order(dist, seq, bits), _cell(i, j))
            seq += 1
