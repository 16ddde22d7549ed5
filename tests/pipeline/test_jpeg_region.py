"""A JPEG written back as a JPEG is decoded only where the stages read it: its pixels there
are libjpeg's, the rest is never used, and every output is the one a whole decode gives."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.schema import WORK_SCHEMA, table
from pipeline.stages import jpeg_pixels, jpeg_region, jpeg_scan
from pipeline.stages.decode import decode_batch
from pipeline.stages.finish import finish_batch
from pipeline.stages.infer_actor import InferActor
from pipeline.stages.prepare import prepare_batch
from pipeline.stages.restored import Restored
from pipeline.stages.settings import (
    DecodeSettings,
    FinishSettings,
    PrepareSettings,
    WriteSettings,
)
from pipeline.stages.sinks import write_images
from tests.pipeline import data
from tests.pipeline.test_infer import infer

SIZE = (2000, 1500)  # width, height: a hole and a window around it are a small part of it
HOLE = (700, 300, 760, 318)  # a caption-like strip


def jpeg(subsampling: int = 2, size=SIZE, progressive: bool = False, orientation: int = 1):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return data.encode(data.photo(4, size), "JPEG", quality=88, subsampling=subsampling,
                       progressive=progressive, exif=exif.tobytes())  # fmt: skip


def decoded_row(image: bytes, mask_box=HOLE, keep_jpeg: bool = True, size=SIZE) -> dict:
    mask = data.encode(data.box_mask(size, mask_box))
    rows = table([{"key": "k", "image_bytes": image, "mask_bytes": mask, "t_start": 0.0}],
                 WORK_SCHEMA)  # fmt: skip
    return decode_batch(rows, DecodeSettings(keep_jpeg=keep_jpeg))


@pytest.mark.parametrize("subsampling", [0, 1, 2], ids=["444", "422", "420"])
def test_pixels_are_decoded_only_where_asked_and_equal_libjpegs_there(subsampling):
    image = jpeg(subsampling)
    row = decoded_row(image).to_pylist()[0]
    assert row["status"] is None and row["pixels"] is None and row["pixels_box"] == [0, 0, 0, 0]
    whole = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    pixels, columns = jpeg_region.pixels(row, (100, 50, 333, 211))
    x0, y0, x1, y1 = columns["pixels_box"]  # the box, and a margin for the writer
    assert (x0, y0, x1, y1) == (84, 34, 349, 227)
    assert np.array_equal(pixels[y0:y1, x0:x1], whole[y0:y1, x0:x1])
    assert not pixels[:y0].any() and not pixels[y1:].any()  # never decoded
    row.update(columns)
    _, more = jpeg_region.pixels(row, (120, 60, 300, 200))
    assert more == {}  # decoded already
    # a box beyond a share of the image: decoded whole
    pixels, columns = jpeg_region.pixels(row, (0, 0, 900, 700))
    assert columns["pixels_box"] is None and np.array_equal(pixels, whole)


def test_a_large_hole_or_another_output_format_decodes_the_whole_image():
    big = decoded_row(jpeg(), (100, 100, 900, 700)).to_pylist()[0]
    assert big["pixels"] is not None and big["pixels_box"] is None
    other = decoded_row(jpeg(), keep_jpeg=False).to_pylist()[0]
    assert other["pixels"] is not None and other["jpeg_blocks"] is None


def test_a_restored_image_never_hands_out_pixels_that_were_not_decoded():
    pixels = np.zeros((50, 60, 3), np.uint8)
    part = np.ones((10, 10, 3), np.uint8)
    restored = Restored(pixels, (20, 20, 30, 30), part, np.ones((10, 10), bool), (10, 10, 40, 40))
    assert restored.region((12, 12, 38, 38)).shape == (26, 26, 3)
    with pytest.raises(ValueError, match="decoded"):
        restored.region()


def restore(decoded, engine: str, out: str, output_format: str, model: str | None = None):
    """decode -> prepare -> (infer) -> finish -> write, in this process; (stats row, bytes)."""
    work = prepare_batch(decoded, PrepareSettings(engine, prefill="telea" if model else "none"))
    if model:
        work = infer(InferActor(model, device="cpu"), work)
    finished = finish_batch(work, FinishSettings(engine))
    write = WriteSettings(output=out, output_format=output_format, output_quality=95,
                          run_id="r", settings_id="s", strategy="crop", io_retries=1)  # fmt: skip
    stats = write_images(finished, write).to_pylist()[0]
    assert stats["status"] == "ok", stats["error"]
    with open(stats["output_uri"].removeprefix("file://"), "rb") as handle:
        return stats, handle.read()


@pytest.mark.parametrize(
    ("engine", "output_format", "progressive", "orientation"),
    [("spl", "same", False, 1), ("opencv-telea", "same", False, 1),
     ("opencv-telea", "png", False, 1), ("opencv-telea", "same", True, 1),
     ("opencv-telea", "same", False, 6), ("spl", "png", False, 3)],
)  # fmt: skip
def test_a_restore_decoded_in_part_equals_the_restore_decoded_whole(
    tmp_path, model_file, engine, output_format, progressive, orientation
):
    image = jpeg(progressive=progressive, orientation=orientation)
    model = model_file if engine == "spl" else None
    shown = SIZE[::-1] if orientation in (5, 6, 7, 8) else SIZE  # masks are drawn upright
    part = decoded_row(image, keep_jpeg=True, size=shown)
    assert part["pixels"].null_count == 1  # decoded later, in part
    whole = decoded_row(image, keep_jpeg=False, size=shown)
    a, out_a = restore(part, engine, str(tmp_path / "a"), output_format, model)
    b, out_b = restore(whole, engine, str(tmp_path / "b"), output_format, model)
    assert out_a == out_b
    for name in ("jpeg_path", "seam_l1", "fill_delta", "crops", "hole_pixels"):
        assert a[name] == b[name], name


def test_the_coefficient_decoder_covers_what_it_says():
    assert jpeg_pixels.supported(jpeg_scan.parse(jpeg(2)))
    gray = data.encode(data.photo(4, (64, 48)).convert("L"), "JPEG")
    assert not jpeg_pixels.supported(jpeg_scan.parse(gray))  # decoded whole, by OpenCV
