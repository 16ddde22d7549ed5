"""Progressive JPEGs: decoded to the coefficients libjpeg reads, and written back as one
baseline scan with the coefficients libjpeg's rewrite gives."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.stages import encode_jpeg, jpeg_coefficients, jpeg_progressive, metadata
from tests.pipeline import data
from tests.pipeline.test_jpeg_scan import (
    assert_as_libjpeg_writes,
    component,
    read_coefficients,
    restored_box,
)

SIZE = (203, 141)  # partial MCUs at the right and bottom edges
VARIANTS = {"420": {"subsampling": 2}, "444": {"subsampling": 0}, "422": {"subsampling": 1},
            "gray": {"mode": "L"}}  # fmt: skip


def source(variant: str, quality: int = 85) -> bytes:
    options = dict(VARIANTS[variant])
    img = data.photo(2, SIZE, options.pop("mode", "RGB"))
    return data.encode(img, "JPEG", quality=quality, progressive=True, **options)


@pytest.mark.parametrize("quality", [50, 95])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_progressive_jpeg_decodes_to_libjpegs_coefficients(variant, quality, tmp_path):
    blob = source(variant, quality)
    scan, parts = jpeg_progressive.parse(blob)
    assert len(parts) > 2  # DC, AC bands and refinements
    blocks = jpeg_progressive.decode(scan, parts)
    for index, expected in enumerate(read_coefficients(blob, tmp_path)):
        got = component(blocks, scan, index)[: expected.shape[0], : expected.shape[1]]
        assert np.array_equal(got, expected), index


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_restored_progressive_jpeg_is_written_as_baseline_as_libjpeg_would(
    variant, tmp_path, monkeypatch
):
    blob = source(variant)
    restored = restored_box(blob, (60, 30, 90, 70), noise=20)
    ours = encode_jpeg.encode_keeping_blocks(blob, restored, 1, None)
    assert not metadata.is_progressive(ours.data)
    assert "progressive source written as baseline" in ours.note
    libjpeg = assert_as_libjpeg_writes(ours, blob, restored, tmp_path, monkeypatch)
    assert abs(len(ours.data) / len(libjpeg.data) - 1) < 0.02  # tables made the same way


def test_progressive_files_with_restart_markers_are_left_to_libjpeg():
    blob = data.encode(data.photo(1, SIZE), "JPEG", quality=90, progressive=True,
                       restart_marker_blocks=2)  # fmt: skip
    assert metadata.restart_interval(blob) and metadata.is_progressive(blob)
    assert jpeg_progressive.parse(blob) is None and jpeg_coefficients.read(blob) is None
