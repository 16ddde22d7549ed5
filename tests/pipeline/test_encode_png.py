"""A PNG written back as a PNG: the same pixels as a whole re-encode, the source's compressed
rows and chunks kept outside the restored rows, a stream every strict decoder accepts."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from pipeline.stages.deflate_blocks import walk
from pipeline.stages.encode import compose
from pipeline.stages.encode_jpeg import NotApplicable
from pipeline.stages.encode_png import encode_keeping_rows
from pipeline.stages.restored import Restored
from tests.pipeline import data

SIZE = (300, 220)  # width, height


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        out.append((png[at + 4 : at + 8], png[at + 8 : at + 8 + length]))
        at += 12 + length
    return out


def idat(png: bytes) -> bytes:
    return b"".join(body for kind, body in chunks(png) if kind == b"IDAT")


def restored_in(pixels: np.ndarray, box: tuple[int, int, int, int], seed: int = 0) -> Restored:
    """`pixels` (RGB) with a random restore inside `box` (an ellipse of it changed)."""
    x0, y0, x1, y1 = box
    rng = np.random.default_rng(seed)
    part = rng.integers(0, 256, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0 : y1 - y0, 0 : x1 - x0]
    changed = ((yy + 0.5) / (y1 - y0) - 0.5) ** 2 + ((xx + 0.5) / (x1 - x0) - 0.5) ** 2 < 0.25
    part[~changed] = pixels[y0:y1, x0:x1][~changed]
    return Restored(pixels, box, part, changed)


def pillow_png(mode: str, level: int = 6, seed: int = 1) -> bytes:
    img = data.photo(seed, SIZE)
    if mode != "RGB":
        img = img.convert(mode)
    if mode in ("RGBA", "LA"):
        alpha = np.tile(np.linspace(0, 255, SIZE[0], dtype=np.uint8), (SIZE[1], 1))
        img.putalpha(Image.fromarray(alpha))
    info = PngImagePlugin.PngInfo()
    info.add_text("Source", "archive scan 1931")
    buffer = io.BytesIO()
    img.save(buffer, "PNG", compress_level=level, pnginfo=info, dpi=(300, 300))
    return buffer.getvalue()


def case(png: bytes) -> tuple[np.ndarray, str, bytes | None]:
    """(RGB pixels, the mode written back, the original pixels) as the decode stage gives them."""
    from pipeline.stages.decode import to_rgb

    img = Image.open(io.BytesIO(png))
    img.load()
    return to_rgb(img)


def expected(restored: Restored, mode: str, orig: bytes | None) -> np.ndarray:
    """What a whole re-encode writes."""
    img = compose(restored.region(), restored.changed(), mode, orig)
    return np.asarray(img)


def decoded(png: bytes) -> np.ndarray:
    zlib.decompress(idat(png))  # a strict read: its Adler-32 is checked
    for kind, body in chunks(png):  # and every chunk's CRC
        assert kind == b"IEND" or len(body) >= 0
    back = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)  # libpng: CRCs too
    assert back is not None
    return np.asarray(Image.open(io.BytesIO(png)))


BOXES = {
    "middle": (40, 90, 260, 130),
    "top rows": (0, 0, 120, 12),
    "bottom rows": (100, 200, 300, 220),
    "everything": (0, 0, 300, 220),
}


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "I;16"])
@pytest.mark.parametrize("where", list(BOXES))
def test_the_pixels_are_those_of_a_whole_reencode(mode, where):
    source = pillow_png(mode) if mode != "I;16" else sixteen_bit_gray()
    pixels, out_mode, orig = case(source)
    restored = restored_in(pixels, BOXES[where])
    result = encode_keeping_rows(source, restored, out_mode, orig, 1)
    assert np.array_equal(decoded(result.data), expected(restored, out_mode, orig))


def sixteen_bit_gray() -> bytes:
    gray = np.asarray(data.photo(2, SIZE).convert("L"), np.uint16) * 257 + 3
    _, blob = cv2.imencode(".png", gray)
    return blob.tobytes()


def test_sixteen_bit_rgb_keeps_every_value_outside_the_restore():
    rng = np.random.default_rng(3)
    wide = (np.asarray(data.photo(4, SIZE), np.uint16) * 257
            + rng.integers(0, 200, (SIZE[1], SIZE[0], 3))).astype(np.uint16)  # fmt: skip
    _, blob = cv2.imencode(".png", cv2.cvtColor(wide, cv2.COLOR_RGB2BGR))
    source = blob.tobytes()
    restored = restored_in((wide >> 8).astype(np.uint8), BOXES["middle"])
    result = encode_keeping_rows(source, restored, "RGB;16", wide.tobytes(), 1)
    back = cv2.cvtColor(cv2.imdecode(np.frombuffer(result.data, np.uint8), -1), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, expected(restored, "RGB;16", wide.tobytes()))
    changed = restored.changed()
    assert np.array_equal(back[~changed], wide[~changed])


@pytest.mark.parametrize("level", [0, 1, 9])
def test_every_compression_level_and_stored_blocks(level):
    source = pillow_png("RGB", level)
    if level == 0:
        assert {t for t in walk(np.frombuffer(idat(source), np.uint8)[2:], 220 * 901).types} == {0}
    pixels, mode, orig = case(source)
    restored = restored_in(pixels, BOXES["middle"], seed=level)
    result = encode_keeping_rows(source, restored, mode, orig, 1)
    assert np.array_equal(decoded(result.data), expected(restored, mode, orig))


def test_rows_of_every_filter_type():
    """A PNG whose rows cycle through the five filters (written here, not by a library)."""
    pixels = np.asarray(data.photo(6, SIZE))
    source = data.png_with_every_filter(pixels)
    assert np.array_equal(decoded(source), pixels)
    restored = restored_in(pixels, BOXES["middle"])
    result = encode_keeping_rows(source, restored, "RGB", None, 1)
    assert np.array_equal(decoded(result.data), expected(restored, "RGB", None))


def test_rows_outside_the_restore_keep_their_compressed_bits_and_chunks_their_bytes():
    source = pillow_png("RGB")
    pixels, mode, orig = case(source)
    restored = restored_in(pixels, (120, 150, 180, 160))
    result = encode_keeping_rows(source, restored, mode, orig, 1)
    before, after = chunks(source), chunks(result.data)
    assert [c for c in before if c[0] != b"IDAT"] == [c for c in after if c[0] != b"IDAT"]
    assert [k for k, _ in after].index(b"IDAT") == [k for k, _ in before].index(b"IDAT")
    old, new = idat(source), idat(result.data)
    same = next(n for n in range(len(old)) if old[n] != new[n])
    assert same > len(old) // 2  # the rows above the restore: the very same bytes
    assert result.rows < result.rows_total // 2  # 10 rows, the next, 32 KiB, a block each side


def test_what_this_path_cannot_take_says_why():
    palette = io.BytesIO()
    data.photo(1, SIZE).convert("P").save(palette, "PNG")
    pixels, mode, orig = case(palette.getvalue())
    with pytest.raises(NotApplicable, match="colour type 3"):
        encode_keeping_rows(palette.getvalue(), restored_in(pixels, BOXES["middle"]), mode, orig, 1)
    source = pillow_png("RGB")
    pixels, mode, orig = case(source)
    with pytest.raises(NotApplicable, match="turned"):
        encode_keeping_rows(source, restored_in(pixels, BOXES["middle"]), mode, orig, 6)
    animated = io.BytesIO()
    frames = [data.photo(1, SIZE), data.photo(2, SIZE)]
    frames[0].save(animated, "PNG", save_all=True, append_images=frames[1:])
    source = animated.getvalue()
    pixels, mode, orig = case(source)
    with pytest.raises(NotApplicable, match="animated"):
        encode_keeping_rows(source, restored_in(pixels, BOXES["middle"]), mode, orig, 1)
