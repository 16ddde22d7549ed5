"""The spliced JPEG scan: the source decoded to the same coefficients libjpeg reads, every byte
outside the changed MCUs kept, and libjpeg's path wherever the splice cannot go."""

from __future__ import annotations

import io

import jpeglib
import numpy as np
import pytest
from PIL import Image

from pipeline.stages import encode_jpeg, jpeg_scan
from pipeline.stages.restored import Restored
from tests.pipeline import data
from tests.pipeline.test_fidelity import JPEG_VARIANTS

# the one-scan files of the fidelity tests: what the splice takes
VARIANTS = {name: JPEG_VARIANTS[name] for name in ("420", "444", "422", "gray", "optimized")}
SIZE = (203, 141)  # partial MCUs at the right and bottom edges


def source(variant: str, size=SIZE, seed: int = 0) -> bytes:
    options = dict(VARIANTS[variant])
    img = data.photo(seed, size, options.pop("mode", "RGB"))
    return data.encode(img, "JPEG", **options)


def read_coefficients(blob: bytes, tmp_path) -> list[np.ndarray]:
    path = tmp_path / "c.jpg"
    path.write_bytes(blob)
    with jpeglib.version(encode_jpeg.LIBJPEG):
        dct = jpeglib.read_dct(str(path))
        dct.load()
    return [getattr(dct, name).copy() for name in ("Y", "Cb", "Cr")[: dct.num_components]]


def component(blocks: np.ndarray, scan: jpeg_scan.Scan, index: int) -> np.ndarray:
    """One component's blocks as libjpeg lays them out: rows x cols x 8 x 8, natural order."""
    rows, cols = scan.mcus
    v, h = scan.samp[index]
    start, stop = scan.slots[index], scan.slots[index + 1]
    grid = blocks[:, start:stop].reshape(rows, cols, v, h, 64).transpose(0, 2, 1, 3, 4)
    natural = np.zeros_like(grid)
    natural[..., jpeg_scan.ZIGZAG] = grid
    return natural.reshape(rows * v, cols * h, 8, 8)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_scan_decodes_to_libjpegs_coefficients_and_splices_back_byte_for_byte(
    variant, tmp_path
):
    blob = source(variant)
    scan = jpeg_scan.parse(blob)
    decoded = jpeg_scan.decode(blob, scan)
    blocks = decoded.blocks
    for index, expected in enumerate(read_coefficients(blob, tmp_path)):
        got = component(blocks, scan, index)[: expected.shape[0], : expected.shape[1]]
        assert np.array_equal(got, expected), index
    whole = blob[: scan.end + 2]
    nothing = np.zeros(scan.mcus, bool)
    assert jpeg_scan.splice(blob, scan, decoded, nothing) == whole
    # coding every MCU again with the source's tables gives the source's own scan
    assert jpeg_scan.splice(blob, scan, decoded, ~nothing) == whole


@pytest.mark.parametrize("options", [{"progressive": True}, {"restart_marker_blocks": 2}])
def test_files_the_splice_cannot_take_are_left_to_libjpeg(options):
    blob = data.encode(data.photo(1, SIZE), "JPEG", quality=90, **options)
    assert jpeg_scan.parse(blob) is None
    cmyk = data.encode(data.photo(1, SIZE).convert("CMYK"), "JPEG", quality=90)
    assert jpeg_scan.parse(cmyk) is None


def assert_as_libjpeg_writes(result, blob: bytes, restored: Restored, tmp_path, monkeypatch):
    """`result` of encode_keeping_blocks has libjpeg's coefficients (jpeglib's path, which the
    writer took for every JPEG before) and changed as many MCUs."""
    with monkeypatch.context() as patch:
        patch.setattr(encode_jpeg, "_splice", lambda *args: None)
        libjpeg = encode_jpeg.encode_keeping_blocks(blob, restored, 1, None)
    expected = read_coefficients(libjpeg.data, tmp_path)
    for a, b in zip(read_coefficients(result.data, tmp_path), expected, strict=True):
        assert np.array_equal(a, b)
    assert result.mcus == libjpeg.mcus > 0
    return libjpeg


def restored_box(blob: bytes, box, noise: float) -> Restored:
    """The decoded source with `box` mirrored, plus noise: what the sink gets after a
    restore."""
    pixels = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
    x0, y0, x1, y1 = box
    part = pixels[y0:y1, x0:x1][::-1, ::-1].astype(float)
    part += np.random.default_rng(0).normal(0, noise, part.shape)
    changed = np.ones(part.shape[:2], bool)
    return Restored(pixels, box, part.clip(0, 255).astype(np.uint8), changed)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("box", [(60, 30, 90, 70), (190, 130, 203, 141)])
def test_a_spliced_jpeg_equals_libjpegs_rewrite_and_keeps_the_sources_header(
    variant, box, tmp_path, monkeypatch
):
    blob = source(variant)
    restored = restored_box(blob, box, noise=20)
    spliced = encode_jpeg.encode_keeping_blocks(blob, restored, 1, None)
    scan = jpeg_scan.parse(blob)
    if variant != "optimized":  # (its tables lack codes this fill needs: coded again)
        assert spliced.data[: scan.start] == blob[: scan.start]  # every segment as it was
    assert_as_libjpeg_writes(spliced, blob, restored, tmp_path, monkeypatch)


def test_a_changed_block_whose_codes_the_sources_tables_lack_gets_tables_made_for_it(
    tmp_path, monkeypatch
):
    """Optimised Huffman tables have codes only for the symbols the source used: a flat source
    lacks the codes of strong detail, so its whole scan is coded again with tables made for
    the new coefficients (those libjpeg's optimize_coding makes), every block outside the
    changed MCUs kept."""
    flat = Image.new("RGB", SIZE, (120, 130, 140))
    blob = data.encode(flat, "JPEG", quality=95, optimize=True)
    scan = jpeg_scan.parse(blob)
    decoded = jpeg_scan.decode(blob, scan)
    blocks = decoded.blocks
    changed = np.zeros(scan.mcus, bool)
    changed[0, 0] = True
    strong = blocks.copy()
    strong[0, 0, 1:] = 200  # every AC symbol of size 8: none in these tables
    assert jpeg_scan.splice(blob, scan, decoded._replace(blocks=strong), changed) is None
    recoded = jpeg_scan.recode(blob, scan, strong)
    again = jpeg_scan.parse(recoded)
    assert np.array_equal(jpeg_scan.decode(recoded, again).blocks, strong)
    # the source's own blocks give the source's own tables back
    assert np.array_equal(jpeg_scan.parse(jpeg_scan.recode(blob, scan, blocks)).code_len,
                          scan.code_len)  # fmt: skip
    restored = restored_box(blob, (40, 40, 80, 80), noise=60)
    result = encode_jpeg.encode_keeping_blocks(blob, restored, 1, None)
    kept = read_coefficients(result.data, tmp_path)
    assert np.array_equal(kept[0][12:], read_coefficients(blob, tmp_path)[0][12:])
    assert_as_libjpeg_writes(result, blob, restored, tmp_path, monkeypatch)
