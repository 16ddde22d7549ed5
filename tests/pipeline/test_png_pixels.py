"""PNGs decoded straight into arrays: Pillow's pixels, or None where Pillow must read them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.schema import WORK_SCHEMA, table, unpack_bits
from pipeline.stages.decode import decode_batch
from pipeline.stages.png_pixels import decode
from pipeline.stages.settings import DecodeSettings
from tests.pipeline import data

SIZE = (157, 93)  # width, height: a row of a 1-bit mask is not a whole number of bytes


def png(img: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG", **options)
    return buffer.getvalue()


def pillow(source: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(source))
    return np.asarray(img.convert("L") if img.mode == "1" else img)


def moded(mode: str) -> Image.Image:
    img = data.photo(3, SIZE)
    if mode in ("LA", "RGBA"):
        img = img.convert(mode)
        img.putalpha(Image.fromarray(np.asarray(data.photo(4, SIZE).convert("L"))))
        return img
    return img.convert(mode)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_the_pixels_are_pillows(mode, level):
    source = png(moded(mode), compress_level=level)
    assert np.array_equal(decode(source), pillow(source))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_rows_of_every_filter_type(mode):
    pixels = np.asarray(moded(mode))
    assert np.array_equal(decode(data.png_with_every_filter(pixels)), pixels)


def test_what_it_does_not_read_is_left_to_pillow():
    assert decode(png(data.photo(3, SIZE).convert("P"))) is None  # palette
    assert decode(png(Image.fromarray(np.full((9, 9), 300, np.uint16)))) is None  # 16 bits
    whole = png(data.photo(3, SIZE))
    assert decode(whole[: len(whole) // 2] + whole[-12:]) is None  # IDAT cut short
    broken = bytearray(data.png_with_every_filter(np.zeros((4, 6), np.uint8), 0))
    at = broken.index(b"IDAT") + 4 + 2 + 5  # the stored block's data: row 0's filter type
    broken[at] = 9
    assert decode(bytes(broken)) is None  # an unknown filter type


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "1"])
def test_the_decode_stage_gives_the_rows_pillow_gave(mode):
    """Image and mask, both PNG: the same pixels, modes, original bytes and hole as before."""
    image = png(moded(mode))
    mask = png(data.box_mask(SIZE, (20, 30, 90, 60)).convert(mode), compress_level=1)
    rows = table([{"key": "a", "image_bytes": image, "mask_bytes": mask, "t_start": 0.0}],
                 WORK_SCHEMA)  # fmt: skip
    (row,) = decode_batch(rows, DecodeSettings()).to_pylist()
    img = Image.open(io.BytesIO(image))
    assert row["status"] is None and row["input_mode"] == img.mode
    assert row["orig_mode"] == {"1": "L"}.get(mode, mode)  # 1-bit comes back as 8-bit grey
    rgb = np.frombuffer(row["pixels"], np.uint8).reshape(SIZE[1], SIZE[0], 3)
    assert np.array_equal(rgb, np.asarray(img.convert("RGB")))
    assert row["orig"] == (img.tobytes() if mode in ("LA", "RGBA") else None)
    hole = unpack_bits(row["hole"], SIZE[1], SIZE[0])
    assert hole.sum() == 70 * 30 and hole[30:60, 20:90].all()

