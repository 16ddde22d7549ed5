"""Listing: layouts are detected, outputs inside the input prefix are never re-read as inputs,
keys match masks by relative path, and progress lines say done/total, rate and ETA."""

from __future__ import annotations

import io

import pytest

from pipeline.config import ConfigError, RestoreConfig
from pipeline.progress import Progress, Steps, track
from pipeline.work import list_units
from tests.pipeline import data


def test_pairs_listing_skips_outputs_hidden_files_and_matches_masks(tmp_path):
    item = data.good_item(1)
    for rel in ("a/x.jpg", "a/y.png", "a/y.jpg", "b/z.webp", ".hidden.png", "out/images/a/x.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(item["image"])
    for rel in ("masks/a/x.png", "masks/a/y.png", "masks/orphan.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(item["mask"])
    config = RestoreConfig.from_dict(
        {"images": str(tmp_path), "masks": str(tmp_path / "masks"), "output": str(tmp_path / "out")}
    )
    listing = list_units(config)
    assert listing.layout == "pairs" and listing.items == 4 and listing.orphan_masks == 1
    units = {u["key"]: u for u in listing.units}
    # two images share the stem a/y: both keep their extension in the key
    assert set(units) == {"a/x", "a/y.png", "a/y.jpg", "b/z"}
    assert units["a/x"]["mask"].endswith("masks/a/x.png")
    assert units["b/z"]["kind"] == "invalid" and "no mask" in units["b/z"]["error"]


def test_layout_detection_refuses_mixed_inputs(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "b.tar").write_bytes(b"x")
    config = RestoreConfig.from_dict(
        {"images": str(tmp_path), "mask_template": "t.png", "output": str(tmp_path / "o")}
    )
    with pytest.raises(ConfigError, match="mixes"):
        list_units(config)
    missing = RestoreConfig.from_dict(
        {"images": str(tmp_path / "nope"), "masks": "m", "output": str(tmp_path / "o")}
    )
    with pytest.raises(ConfigError, match="does not exist"):
        list_units(missing)


def test_progress_line_has_done_total_rate_and_eta():
    progress = Progress(total=100, already_done=10)
    progress.add("ok", 30)
    progress.add("error", 10)
    line = progress.line()
    assert line.startswith("50/100 items (50%)")
    assert "images/s" in line and "ETA" in line and "already_done 10" in line
    assert "?" in Progress(total=None).line()


def test_the_other_long_commands_show_plain_progress_lines_when_piped():
    shown = io.StringIO()  # not a terminal: lines, no control characters
    assert list(track(range(5), "compact: reading", unit="files", interval_s=0, stream=shown)) == [
        0, 1, 2, 3, 4,
    ]  # fmt: skip
    lines = shown.getvalue().splitlines()
    assert lines[0].startswith("compact: reading: 1/5 files (20%) | ")
    assert lines[-1].startswith("compact: reading: 5/5 files (100%)") and "ETA" in lines[-1]
    assert "\r" not in shown.getvalue() and "\x1b" not in shown.getvalue()
    later = io.StringIO()
    steps = Steps("detect: reading the sample", interval_s=0, stream=later)
    steps.update(2)  # the total is learnt later
    steps.update(4, total=8)
    steps.close()
    assert later.getvalue().splitlines()[0].startswith("detect: reading the sample: 2/? items")
    assert "4/8 items (50%)" in later.getvalue()
    quiet = io.StringIO()
    list(track(range(3), "x", show=False, stream=quiet))
    assert quiet.getvalue() == ""


def test_a_mask_template_stored_among_the_images_is_not_an_image(tmp_path):
    item = data.good_item(1)
    for rel in ("photos/a.jpg", "photos/b.jpg", "photos/watermark.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(item["image"])
    config = RestoreConfig.from_dict(
        {
            "images": str(tmp_path / "photos"),
            "mask_template": str(tmp_path / "photos" / "watermark.png"),
            "output": str(tmp_path / "out"),
        }
    )
    assert sorted(u["key"] for u in list_units(config).units) == ["a", "b"]
