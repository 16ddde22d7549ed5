"""Stages one by one, without Ray: modes and orientation survive, bad items become rows."""

from __future__ import annotations

import io

import fsspec
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageOps

from pipeline.schema import RESULT_SCHEMA, WORK_SCHEMA, table
from pipeline.stages.decode import decode_batch
from pipeline.stages.finish import finish_batch
from pipeline.stages.prepare import prepare_batch
from pipeline.stages.read import read_units
from pipeline.stages.settings import (
    DecodeSettings,
    FinishSettings,
    PrepareSettings,
    ReadSettings,
    WriteSettings,
)
from pipeline.stages.sinks import write_images
from pipeline.stages.sources import UNIT_SCHEMA
from pipeline.stages.template import place_template
from tests.pipeline import data

SIZE = (64, 48)  # width, height
BOX = (16, 12, 40, 30)


def run_stages(
    image_bytes: bytes,
    mask_bytes: bytes | None,
    out: str,
    output_format: str = "same",
    **decode_kwargs,
):
    """One item through decode -> prepare -> finish (OpenCV, no model) -> encode+write; returns
    its stats row."""
    rows = table(
        [
            {
                "key": "k/item",
                "image_uri": "mem://x",
                "image_bytes": image_bytes,
                "mask_bytes": mask_bytes,
                "t_start": 0.0,
            }
        ],
        WORK_SCHEMA,
    )
    decoded = decode_batch(rows, DecodeSettings(**decode_kwargs))
    prepared = prepare_batch(decoded, PrepareSettings("opencv-telea"))
    inpainted = finish_batch(prepared, FinishSettings("opencv-telea"))
    write = WriteSettings(
        output=out,
        output_format=output_format,
        output_quality=95,
        run_id="r",
        settings_id="s",
        strategy="crop",
        io_retries=1,
    )
    stats = write_images(inpainted, write)
    assert stats.schema == RESULT_SCHEMA
    return stats.to_pylist()[0]


def hole_of(box=BOX) -> np.ndarray:
    hole = np.zeros((SIZE[1], SIZE[0]), bool)
    hole[box[1] : box[3], box[0] : box[2]] = True
    return hole


@pytest.mark.parametrize(
    ("mode", "fmt", "expect_mode"),
    [
        ("RGB", "PNG", "RGB"),
        ("L", "PNG", "L"),
        ("RGBA", "PNG", "RGBA"),
        ("LA", "PNG", "LA"),
        ("CMYK", "TIFF", "CMYK"),
        ("I;16", "PNG", "I;16"),
        ("P", "PNG", "RGB"),
    ],
)
def test_output_keeps_the_input_mode_and_every_pixel_outside_the_hole(
    tmp_path, mode, fmt, expect_mode
):
    src = data.photo(1, SIZE)
    if mode == "I;16":
        wide = (np.asarray(src.convert("L")).astype(np.uint16) * 257 + 3).astype(np.uint16)
        src = Image.frombytes("I;16", SIZE, wide.astype("<u2").tobytes())
    elif mode == "RGBA" or mode == "LA":
        src = src.convert(mode)
        alpha = np.tile(np.linspace(10, 250, SIZE[0]).astype(np.uint8), (SIZE[1], 1))
        src.putalpha(Image.fromarray(alpha, "L"))
    else:
        src = src.convert(mode)
    row = run_stages(data.encode(src, fmt), data.encode(data.box_mask(SIZE, BOX)), str(tmp_path))
    assert row["status"] == "ok", row["error"]
    assert row["input_mode"] == mode and row["output_mode"] == expect_mode
    out = Image.open(row["output_uri"])
    assert out.mode == expect_mode and out.size == SIZE
    before = np.asarray(src.convert(expect_mode) if mode == "P" else src)
    after = np.asarray(out)
    outside = ~hole_of()
    assert np.array_equal(after[outside], before[outside])
    assert not np.array_equal(after[~outside], before[~outside])  # the hole was filled
    if mode in ("RGBA", "LA"):  # alpha is never invented, even in the hole
        assert np.array_equal(after[..., -1], before[..., -1])


def test_exif_orientation_is_applied_once(tmp_path):
    src = data.photo(2, (64, 48))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    jpeg = data.encode(src, "JPEG", exif=exif.tobytes(), quality=95)
    mask = data.encode(data.box_mask((48, 64), (8, 8, 20, 20)))  # drawn on the upright image
    row = run_stages(jpeg, mask, str(tmp_path))
    assert row["status"] == "ok", row["error"]
    assert (row["width"], row["height"]) == (48, 64)
    # JPEG out of JPEG keeps the stored pixels (and their coefficients) and the orientation tag
    out = Image.open(row["output_uri"])
    assert out.size == (64, 48) and out.format == "JPEG" and out.getexif().get(0x0112) == 6
    assert ImageOps.exif_transpose(out).size == (48, 64)
    # any other output format is written upright, without the tag
    png = run_stages(jpeg, mask, str(tmp_path / "png"), output_format="png")
    out = Image.open(png["output_uri"])
    assert out.size == (48, 64) and out.getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize(
    "options",
    [{"subsampling": 2}, {"subsampling": 1}, {"subsampling": 0}, {"progressive": True},
     {"restart_marker_blocks": 2}, {"orientation": 8}],
    ids=["420", "422", "444", "progressive", "restarts", "rotated"],
)  # fmt: skip
def test_a_jpeg_decodes_to_exactly_the_pixels_pillow_gives(options):
    exif = Image.Exif()
    exif[0x0112] = options.pop("orientation", 1)
    jpeg = data.encode(data.photo(5, (67, 45)), "JPEG", quality=90, exif=exif.tobytes(), **options)
    shown = (45, 67) if exif[0x0112] == 8 else (67, 45)  # masks are drawn on the shown image
    mask = data.encode(data.box_mask(shown, (4, 4, 20, 20)))
    rows = table([{"key": "k", "image_bytes": jpeg, "mask_bytes": mask}], WORK_SCHEMA)
    row = decode_batch(rows, DecodeSettings()).to_pylist()[0]
    assert row["status"] is None, row["error"]
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(jpeg))).convert("RGB"))
    got = np.frombuffer(row["pixels"], np.uint8).reshape(row["height"], row["width"], 3)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize(
    ("image", "mask", "status", "words"),
    [
        (b"\xff\xd8 truncated jpeg", "ok", "error", ["not an image"]),
        ("ok", data.encode(data.box_mask((30, 30))), "error", ["mask", "aspect"]),
        ("ok", data.encode(data.box_mask(SIZE, ())), "skipped", ["no hole pixels"]),
        ("ok", b"", "error", ["mask is empty"]),
        ("big", "ok", "error", ["max_image_pixels"]),
    ],
)
def test_bad_items_become_rows_with_a_reason(tmp_path, image, mask, status, words):
    good = data.encode(data.photo(3, SIZE))
    image = good if image in ("ok", "big") else image
    mask = data.encode(data.box_mask(SIZE)) if mask == "ok" else mask
    limit = 100 if image is good and status == "error" and "max_image_pixels" in words else None
    row = run_stages(image, mask, str(tmp_path), max_image_pixels=limit)
    assert row["status"] == status
    for word in words:
        assert word in row["error"]
    assert row["output_uri"] is None and not list(tmp_path.rglob("*.png"))


def test_template_is_pinned_scaled_and_offset():
    template = data.encode(data.box_mask((40, 20), (0, 0, 40, 20)))  # a solid 2:1 block
    hole = place_template(template, (100, 200), "bottom-right", ("10", "5%"), scale=0.2)
    ys, xs = np.nonzero(hole)
    # 0.2 x 200 px wide = 40 x 20; 10 px from the right edge, 5% of 100 = 5 px from the bottom
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (150, 189, 75, 94)
    full = place_template(template, (50, 100), "fill")
    assert full.all()


def tar_unit(key: str, shard: bytes) -> pa.Table:
    """One WebDataset unit for `shard`, stored in fsspec's memory filesystem."""
    fsspec.filesystem("memory").pipe_file(f"/shards/{key}.tar", shard)
    row = {"kind": "tar", "key": key, "image": f"memory:///shards/{key}.tar"}
    return pa.table({name: [row.get(name)] for name in UNIT_SCHEMA.names}, UNIT_SCHEMA)


def read_all(units: pa.Table) -> list[dict]:
    blocks = read_units(units, ReadSettings(io_retries=0, batch_size=8))
    return [r for b in blocks for r in b.to_pylist()]


def test_tar_keys_cannot_escape_and_missing_masks_are_rows():
    good = data.good_item(4, SIZE)
    shard = data.tar_shard(
        [
            ("a/one.jpg", good["image"]),
            ("a/one.mask.png", good["mask"]),
            ("../../evil.png", good["image"]),
            ("../../evil.mask.png", good["mask"]),
            ("lonely.png", good["image"]),
            ("meta.json", b"{}"),
        ]
    )
    units = tar_unit("s1", shard)
    blocks = list(read_units(units, ReadSettings(io_retries=1, batch_size=2)))
    assert all(len(b) <= 2 for b in blocks)
    rows = {r["key"]: r for b in blocks for r in b.to_pylist()}
    assert set(rows) == {"s1/a/one", "s1/__/__/evil", "s1/lonely"}
    assert rows["s1/lonely"]["status"] == "error" and "no mask" in rows["s1/lonely"]["error"]
    assert rows["s1/a/one"]["image_bytes"] == good["image"]


def test_truncated_tar_keeps_the_items_before_the_damage():
    good = data.good_item(5, SIZE)
    shard = data.tar_shard(
        [
            ("x.png", good["image"]),
            ("x.mask.png", good["mask"]),
            ("y.png", good["image"] * 3),
            ("y.mask.png", good["mask"]),
        ]
    )
    units = tar_unit("cut", shard[: len(shard) // 2 + 700])
    rows = read_all(units)
    assert rows[0]["key"] == "cut/x" and rows[0]["status"] is None
    assert rows[-1]["status"] == "error" and "unreadable after 1 item" in rows[-1]["error"]


def test_seam_ratio_is_about_one_for_a_seamless_fill_and_high_for_a_visible_one():
    from pipeline.stages.quality import seam

    image = np.asarray(data.photo(6, SIZE))
    hole = hole_of()
    _, seamless = seam(image, hole)
    patched = image.copy()
    patched[hole] = 0
    seam_l1, visible = seam(patched, hole)
    assert 0.5 < seamless < 2 and visible > 5 * seamless and seam_l1 > 50


def test_a_sample_repeated_back_to_back_in_a_tar_is_two_items():
    first, second = data.good_item(7, SIZE), data.good_item(8, SIZE)
    shard = data.tar_shard(
        [
            ("dup.png", first["image"]),
            ("dup.mask.png", first["mask"]),
            ("dup.png", second["image"]),
            ("dup.mask.png", second["mask"]),
        ]
    )
    units = tar_unit("twice", shard)
    rows = read_all(units)
    assert [r["key"] for r in rows] == ["twice/dup", "twice/dup~2"]
    assert [r["image_bytes"] for r in rows] == [first["image"], second["image"]]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_box_of_the_upright_image_is_found_in_the_files_stored_order(orientation):
    from pipeline.stages import metadata

    upright = np.random.default_rng(orientation).integers(0, 255, (37, 53))
    box = (5, 7, 20, 30)
    stored = metadata.to_stored(upright, orientation)
    x0, y0, x1, y1 = metadata.stored_box(box, upright.shape, orientation)
    expected = metadata.to_stored(upright[7:30, 5:20], orientation)
    assert np.array_equal(stored[y0:y1, x0:x1], expected)
