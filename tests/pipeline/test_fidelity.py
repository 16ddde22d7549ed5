"""Archival fidelity: a restored JPEG keeps every DCT block outside the hole, 16-bit stays
16-bit, EXIF thumbnails never show the removed object, masks follow a documented orientation."""

from __future__ import annotations

import io
import struct
import tempfile
from pathlib import Path

import cv2
import jpeglib
import numpy as np
import pytest
from PIL import ExifTags, Image, PngImagePlugin

from pipeline import RestoreConfig, run_restore
from pipeline.ledger import load_history
from pipeline.schema import STATS_SCHEMA
from tests.pipeline import data

SIZE = (200, 136)  # width, height: neither a multiple of 16, so edge MCUs are partial
BOX = (70, 40, 120, 80)
JPEG_VARIANTS = {
    "420": {"quality": 90},
    "444": {"quality": 90, "subsampling": 0},
    "422": {"quality": 88, "subsampling": 1},
    "gray": {"quality": 90, "mode": "L"},
    "progressive": {"quality": 90, "progressive": True},
    "restart": {"quality": 90, "restart_marker_blocks": 3},
    "optimized": {"quality": 85, "optimize": True},
    "arithmetic": {"quality": 90, "arithmetic": True},
    "300dpi": {"quality": 90, "dpi": (300, 300)},
}


def restore(folder: Path, out: Path, **spec) -> tuple[dict, dict[str, dict]]:
    summary = run_restore(
        RestoreConfig.from_dict(
            {
                "images": str(folder / "images"),
                "masks": str(folder / "masks"),
                "output": str(out),
                "engine": "opencv-telea",
                "progress_bars": False,
                "actors": "1",
                **spec,
            }
        )
    )
    rows = load_history(str(out), {}, columns=list(STATS_SCHEMA.names)).to_pylist()
    return summary, {r["key"]: r for r in rows if r["run_id"] == summary["run_id"]}


def jpeg(variant: dict, seed: int = 1, exif: bytes | None = None) -> bytes:
    options = dict(variant)
    img = data.photo(seed, SIZE)
    if options.pop("mode", "RGB") == "L":
        img = img.convert("L")
    if options.pop("arithmetic", False):  # Pillow cannot write these; libjpeg (jpeglib) can
        with tempfile.TemporaryDirectory() as folder, jpeglib.version("turbo210"):
            spatial = jpeglib.from_spatial(np.asarray(img))
            spatial.write_spatial(f"{folder}/a.jpg", qt=options["quality"], flags=["+ARITH_CODE"])
            return Path(f"{folder}/a.jpg").read_bytes()
    return data.encode(img, "JPEG", **options, **({"exif": exif} if exif else {}))


def coefficients(blob: bytes, tmp: Path) -> object:
    path = tmp / f"c{abs(hash(blob))}.jpg"
    path.write_bytes(blob)
    with jpeglib.version("turbo210"):  # the build that reads arithmetic coding too
        dct = jpeglib.read_dct(str(path))
        dct.load()
    return dct


def untouched_blocks(dct, hole: np.ndarray, component: int) -> np.ndarray:
    """Block map of a component: True where its MCU holds no hole pixel."""
    samp = np.asarray(dct.samp_factor).reshape(-1, 2)
    mcu_h, mcu_w = 8 * samp[:, 0].max(), 8 * samp[:, 1].max()
    rows, cols = -(-hole.shape[0] // mcu_h), -(-hole.shape[1] // mcu_w)
    padded = np.zeros((rows * mcu_h, cols * mcu_w), bool)
    padded[: hole.shape[0], : hole.shape[1]] = hole
    touched = padded.reshape(rows, mcu_h, cols, mcu_w).any(axis=(1, 3))
    v, h = samp[component]
    blocks = np.repeat(np.repeat(touched, v, 0), h, 1)
    shape = getattr(dct, ("Y", "Cb", "Cr")[component]).shape[:2]
    return ~blocks[: shape[0], : shape[1]]


def assert_blocks_kept(before, after, hole: np.ndarray) -> int:
    """Every block outside the hole's MCUs is identical; returns how many blocks changed."""
    changed = 0
    for index, name in enumerate(("Y", "Cb", "Cr")[: before.num_components]):
        old, new = getattr(before, name), getattr(after, name)
        keep = untouched_blocks(before, hole, index)
        assert np.array_equal(old[keep], new[keep]), f"{name}: a block outside the hole changed"
        changed += int((old != new).any(axis=(2, 3)).sum())
    return changed


def hole_map(box=BOX, size=SIZE, dilate: int = 0) -> np.ndarray:
    hole = np.zeros((size[1], size[0]), bool)
    hole[box[1] - dilate : box[3] + dilate, box[0] - dilate : box[2] + dilate] = True
    return hole


@pytest.fixture(scope="module")
def jpeg_runs(ray_local, tmp_path_factory):
    """Every JPEG variant restored twice with the same mask (second pass on the first's output)."""
    tmp = tmp_path_factory.mktemp("jpegs")
    mask = data.encode(data.box_mask(SIZE, BOX))
    sources = {
        name: jpeg(variant, seed=i) for i, (name, variant) in enumerate(JPEG_VARIANTS.items())
    }
    for name, blob in sources.items():
        (tmp / "in" / "images").mkdir(parents=True, exist_ok=True)
        (tmp / "in" / "masks").mkdir(parents=True, exist_ok=True)
        (tmp / "in" / "images" / f"{name}.jpg").write_bytes(blob)
        (tmp / "in" / "masks" / f"{name}.png").write_bytes(mask)
    first, rows = restore(tmp / "in", tmp / "out1", dilate=3)
    (tmp / "pass2" / "images").mkdir(parents=True)
    for name in sources:
        blob = (tmp / "out1" / "images" / f"{name}.jpg").read_bytes()
        (tmp / "pass2" / "images" / f"{name}.jpg").write_bytes(blob)
    (tmp / "pass2" / "masks").symlink_to(tmp / "in" / "masks")
    second, rows2 = restore(tmp / "pass2", tmp / "out2", dilate=3)
    return tmp, sources, first, rows, second, rows2


@pytest.mark.parametrize("variant", list(JPEG_VARIANTS))
def test_a_restored_jpeg_keeps_every_block_outside_the_hole(jpeg_runs, variant):
    tmp, sources, _, rows, _, rows2 = jpeg_runs
    row = rows[variant]
    assert row["status"] == "ok" and row["jpeg_path"].startswith("coefficients"), row["jpeg_path"]
    out1 = (tmp / "out1" / "images" / f"{variant}.jpg").read_bytes()
    before, after = coefficients(sources[variant], tmp), coefficients(out1, tmp)
    assert np.array_equal(before.qt, after.qt)  # the source's own quantisation tables
    hole = hole_map(dilate=3)
    assert assert_blocks_kept(before, after, hole) > 0  # ... and the hole was filled
    # a second pass with the same mask changes nothing outside the hole
    out2 = (tmp / "out2" / "images" / f"{variant}.jpg").read_bytes()
    assert rows2[variant]["jpeg_path"].startswith("coefficients")
    assert_blocks_kept(after, coefficients(out2, tmp), hole)
    # restored pixels inside the hole differ from the source's; the size barely moves
    ratio = len(out1) / len(sources[variant])
    assert 0.9 < ratio < (1.06 if variant == "progressive" else 1.02), ratio


def header(blob: bytes) -> tuple[bytes, bytes]:
    """A JPEG's JFIF fields (version, density unit and densities) and its frame's components."""
    jfif = frame = b""
    pos = 2
    while pos + 4 <= len(blob) and not frame:
        marker, length = blob[pos + 1], struct.unpack(">H", blob[pos + 2 : pos + 4])[0]
        if marker == 0xE0 and blob[pos + 4 : pos + 9] == b"JFIF\0" and not jfif:
            jfif = blob[pos + 9 : pos + 16]
        if marker in (0xC0, 0xC1, 0xC2, 0xC9, 0xCA):
            frame = blob[pos + 4 : pos + 2 + length]
        pos += 2 + length
    return jfif, frame


@pytest.mark.parametrize("variant", list(JPEG_VARIANTS))
def test_a_restored_jpeg_keeps_the_sources_density_and_components(jpeg_runs, variant):
    tmp, sources, *_ = jpeg_runs
    out1 = (tmp / "out1" / "images" / f"{variant}.jpg").read_bytes()
    jfif, frame = header(sources[variant])
    kept_jfif, kept_frame = header(out1)
    assert jfif and kept_jfif == jfif  # e.g. 300 dpi stays 300 dpi
    assert kept_frame[5:] == frame[5:]  # component ids, sampling factors and table numbers


def test_the_run_summary_reports_input_and_output_bytes(jpeg_runs):
    _, sources, first, rows, _, _ = jpeg_runs
    assert first["bytes"]["input"] == sum(len(b) for b in sources.values())
    assert first["bytes"]["output"] == sum(r["output_bytes"] for r in rows.values())
    assert 0.8 < first["bytes"]["ratio"] < 1.02  # a smooth fill compresses better


def exif_with_thumbnail(thumbnail: bytes, orientation: int = 1) -> bytes:
    """EXIF (little-endian TIFF): IFD0 with Make and Orientation, IFD1 with a JPEG thumbnail."""
    make = b"Cam\x00"
    ifd0, ifd1 = 8, 8 + 30
    body = b"II*\x00" + struct.pack("<I", ifd0)
    body += struct.pack("<H", 2)
    body += struct.pack("<HHI", 0x010F, 2, 4) + make
    body += struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    body += struct.pack("<I", ifd1)
    body += struct.pack("<H", 2)
    body += struct.pack("<HHII", 0x0201, 4, 1, ifd1 + 30)
    body += struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail))
    body += struct.pack("<I", 0)
    return b"Exif\x00\x00" + body + thumbnail


@pytest.mark.parametrize("output_format", ["same", "png"])
def test_an_exif_thumbnail_of_the_original_is_never_kept(ray_local, tmp_path, output_format):
    thumbnail = data.encode(data.photo(9, (40, 27)), "JPEG")
    exif = exif_with_thumbnail(thumbnail)
    for folder in ("images", "masks"):
        (tmp_path / "in" / folder).mkdir(parents=True)
    source = jpeg({"quality": 90}, exif=exif)
    assert thumbnail in source
    (tmp_path / "in" / "images" / "p.jpg").write_bytes(source)
    (tmp_path / "in" / "masks" / "p.png").write_bytes(data.encode(data.box_mask(SIZE, BOX)))
    _, rows = restore(tmp_path / "in", tmp_path / "out", output_format=output_format)
    written = Path(rows["p"]["output_uri"]).read_bytes()
    assert thumbnail not in written
    exif_out = Image.open(io.BytesIO(written)).getexif()
    assert exif_out.get(0x010F) == "Cam"  # the rest of EXIF is kept
    assert not exif_out.get_ifd(ExifTags.IFD.IFD1)


@pytest.mark.parametrize("suffix", ["png", "tiff"])
def test_sixteen_bit_rgb_stays_sixteen_bit_outside_the_hole(ray_local, tmp_path, suffix):
    rng = np.random.default_rng(3)
    wide = (
        np.asarray(data.photo(4, SIZE), np.uint16) * 257
        + rng.integers(0, 200, (SIZE[1], SIZE[0], 3))
    ).astype(np.uint16)
    _, blob = cv2.imencode(f".{suffix}", cv2.cvtColor(wide, cv2.COLOR_RGB2BGR))
    for folder in ("images", "masks"):
        (tmp_path / "in" / folder).mkdir(parents=True)
    (tmp_path / "in" / "images" / f"w.{suffix}").write_bytes(blob.tobytes())
    (tmp_path / "in" / "masks" / "w.png").write_bytes(data.encode(data.box_mask(SIZE, BOX)))
    _, rows = restore(tmp_path / "in", tmp_path / "out")
    row = rows["w"]
    assert row["status"] == "ok" and row["input_mode"] == row["output_mode"] == "RGB;16"
    back = cv2.imread(row["output_uri"], cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB)
    hole = hole_map()
    assert np.array_equal(back[~hole], wide[~hole])  # every 16-bit value outside the hole
    assert not np.array_equal(back[hole], wide[hole])


def rotated_jpeg(orientation: int) -> bytes:
    """A JPEG whose stored pixels are SIZE, shown rotated by its EXIF orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return data.encode(data.photo(5, SIZE), "JPEG", quality=92, exif=exif.tobytes())


def test_masks_follow_the_displayed_image_unless_told_they_are_drawn_on_stored_pixels(
    ray_local, tmp_path
):
    stored_mask = data.encode(data.box_mask(SIZE, BOX))  # drawn on the 200x136 stored pixels
    for folder in ("images", "masks"):
        (tmp_path / "in" / folder).mkdir(parents=True)
    (tmp_path / "in" / "images" / "r6.jpg").write_bytes(rotated_jpeg(6))  # shown as 136x200
    (tmp_path / "in" / "masks" / "r6.png").write_bytes(stored_mask)
    _, rows = restore(tmp_path / "in", tmp_path / "out-display")
    error = rows["r6"]["error"]
    assert rows["r6"]["status"] == "error" and "mask_orientation: stored" in error, error
    _, rows = restore(tmp_path / "in", tmp_path / "out-stored", mask_orientation="stored")
    row = rows["r6"]
    assert row["status"] == "ok" and row["jpeg_path"].startswith("coefficients")
    # the file keeps its stored pixels and orientation; the changed blocks are the mask's
    written = Path(row["output_uri"]).read_bytes()
    assert Image.open(io.BytesIO(written)).getexif().get(0x0112) == 6
    before = coefficients((tmp_path / "in" / "images" / "r6.jpg").read_bytes(), tmp_path)
    assert assert_blocks_kept(before, coefficients(written, tmp_path), hole_map()) > 0


def test_a_cmyk_jpeg_is_re_encoded_and_says_why(ray_local, tmp_path):
    for folder in ("images", "masks"):
        (tmp_path / "in" / folder).mkdir(parents=True)
    cmyk = data.encode(data.photo(6, SIZE, mode="CMYK"), "JPEG", quality=92)
    (tmp_path / "in" / "images" / "c.jpg").write_bytes(cmyk)
    (tmp_path / "in" / "masks" / "c.png").write_bytes(data.encode(data.box_mask(SIZE, BOX)))
    _, rows = restore(tmp_path / "in", tmp_path / "out")
    assert rows["c"]["status"] == "ok" and rows["c"]["jpeg_path"] == "reencode: CMYK JPEG"
    assert Image.open(rows["c"]["output_uri"]).mode == "CMYK"


def test_a_png_keeps_its_compressed_rows_and_its_chunks_outside_the_hole(ray_local, tmp_path):
    size, box = (640, 480), (200, 380, 420, 430)
    info = PngImagePlugin.PngInfo()
    info.add_text("Source", "archive scan 1931")
    source = data.encode(data.photo(7, size), "PNG", pnginfo=info, dpi=(300, 300))
    for folder in ("images", "masks"):
        (tmp_path / "in" / folder).mkdir(parents=True)
    (tmp_path / "in" / "images" / "p.png").write_bytes(source)
    (tmp_path / "in" / "masks" / "p.png").write_bytes(data.encode(data.box_mask(size, box)))
    _, rows = restore(tmp_path / "in", tmp_path / "out")
    row = rows["p"]
    assert row["status"] == "ok" and row["png_path"].startswith("deflate: "), row["png_path"]
    written = Path(row["output_uri"]).read_bytes()
    hole = hole_map(box, size)
    before, after = (
        np.asarray(Image.open(io.BytesIO(source))),
        np.asarray(Image.open(row["output_uri"])),
    )
    assert np.array_equal(after[~hole], before[~hole]) and not np.array_equal(after, before)
    kept, was = Image.open(io.BytesIO(written)), Image.open(io.BytesIO(source))
    assert kept.text == {"Source": "archive scan 1931"} and kept.info["dpi"] == was.info["dpi"]
    rows_again = int(row["png_path"].split()[1])
    assert rows_again < 480 // 2  # the rows above the hole are copied, not compressed again


def test_a_png_keeps_its_exif_but_not_its_thumbnail(ray_local, tmp_path):
    thumbnail = data.encode(data.photo(9, (40, 27)), "JPEG")
    for folder in ("images", "masks"):
        (tmp_path / "in" / folder).mkdir(parents=True)
    source = data.encode(data.photo(8, SIZE), "PNG", exif=exif_with_thumbnail(thumbnail))
    assert thumbnail in source
    (tmp_path / "in" / "images" / "p.png").write_bytes(source)
    (tmp_path / "in" / "masks" / "p.png").write_bytes(data.encode(data.box_mask(SIZE, BOX)))
    _, rows = restore(tmp_path / "in", tmp_path / "out")
    assert rows["p"]["png_path"].startswith("deflate: ")
    written = Path(rows["p"]["output_uri"]).read_bytes()
    assert thumbnail not in written
    exif_out = Image.open(io.BytesIO(written)).getexif()
    assert exif_out.get(0x010F) == "Cam" and not exif_out.get_ifd(ExifTags.IFD.IFD1)
