"""`spl report`: a real report of a real run, opened in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from jobs.report import report
from pipeline import RestoreConfig, previews, run_restore
from pipeline import report as report_module
from pipeline.previews import OUTLINE_RGB
from pipeline.schema import STATS_SCHEMA

from .data import box_mask, encode, photo

ARTIFACTS = Path(os.environ.get("SPL_TEST_ARTIFACTS", "out/test-artifacts"))
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def restored_run(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    images, masks = root / "archive" / "images", root / "archive" / "masks"
    for i in range(5):
        (images / "set").mkdir(parents=True, exist_ok=True)
        (masks / "set").mkdir(parents=True, exist_ok=True)
        photo(i, (160, 120)).save(images / "set" / f"p{i}.jpg", quality=90)
        box_mask((160, 120)).save(masks / "set" / f"p{i}.png")
    (images / "set" / "broken.jpg").write_bytes(b"<html>403 Forbidden</html>")
    (masks / "set" / "broken.png").write_bytes(encode(box_mask((160, 120))))
    (images / "set" / "lonely.png").write_bytes(encode(photo(9, (64, 64))))  # no mask
    out = root / "out"
    run_restore(
        RestoreConfig.from_dict(
            {
                "images": str(images),
                "masks": str(masks),
                "output": str(out),
                "engine": "opencv-telea",
            }
        )
    )
    return out


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    return found


def browse(page: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


def outline_widths(shot: Path) -> list[int]:
    """The widths (px) of the hole outlines a screenshot shows, widest first."""
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    drawn = (np.abs(pixels - OUTLINE_RGB).sum(axis=2) < 40).astype(np.uint8)
    _, _, boxes, _ = cv2.connectedComponentsWithStats(drawn)
    return sorted((int(w) for _, _, w, _, area in boxes[1:] if area > 40), reverse=True)


def test_report_opens_in_chromium_with_every_image_loaded(restored_run, tmp_path):
    result = CliRunner().invoke(report, [str(restored_run), "--sample", "4", "--worst", "2"])
    assert result.exit_code == 0, result.output
    page = restored_run / "report.html"
    assert result.output.strip() == str(page)
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: nothing to fetch
    # 5 restored items fit in 4 + 2: one gallery of them all, none shown twice
    assert text.count('<div class="card"') == 5 and 'id="worst"' not in text
    assert re.search(r"<td>1</td><td>[^<]*(cannot|not|unidentified)[^<]*</td>", text, re.I)
    assert "lonely" in text  # the missing-mask error is listed with its key
    assert "seam ratio &gt; 1.5" in text  # thresholds say what to act on

    dom = browse(page, tmp_path, "--dump-dom", page.as_uri()).stdout
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    loaded = int(re.search(r'data-images-ok="(\d+)"', dom).group(1))
    assert images == loaded >= 5 * 3 + 3  # every layer (before, after, outline) and plot
    assert 'id="all"' in dom


def test_screenshots_show_the_hole_outlined_and_at_full_size(restored_run, tmp_path):
    """What a person sees: the outline on each picture, and a click's full-size view (opened
    here through its address) larger than the thumbnail."""
    CliRunner().invoke(report, [str(restored_run)])
    page = restored_run / "report.html"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = {"page": ARTIFACTS / "report.png", "full": ARTIFACTS / "report-full-size.png"}
    browse(page, tmp_path, "--window-size=1300,2400", f"--screenshot={shots['page'].resolve()}",
           page.as_uri())  # fmt: skip
    browse(page, tmp_path, "--window-size=1300,1000", f"--screenshot={shots['full'].resolve()}",
           page.as_uri() + "#full=all-0")  # fmt: skip
    on_page = outline_widths(shots["page"])
    assert len(on_page) >= 3  # an outline over each picture in view
    full = outline_widths(shots["full"])
    assert full, "no outline in the full-size view"
    # the test photos' hole is 40 px wide: magnified in whole steps in the full-size view, its
    # outline is wider than at 1:1, and wider than on any thumbnail
    assert full[0] >= 2 * 40 and full[0] > on_page[0]


def test_a_large_run_fetches_images_for_the_galleries_only(tmp_path, monkeypatch):
    """100k stats rows: the page is built from columns; only gallery thumbnails touch images."""
    n = 100_000
    rows = {
        "run_id": ["r1"] * n,
        "key": [f"k{i:06d}" for i in range(n)],
        "image_uri": [f"{tmp_path}/missing/{i}.jpg" for i in range(n)],
        "status": ["ok" if i % 10 else "error" for i in range(n)],
        "error": [None if i % 10 else f"cannot identify image file 'x{i}.jpg'" for i in range(n)],
        "hole_ratio": [(i % 97) / 100 for i in range(n)],
        "seam_ratio": [1 + (i % 13) / 10 for i in range(n)],
        "finished_at": [datetime(2026, 1, 1, tzinfo=UTC)] * n,
    }
    table = pa.table({f.name: rows.get(f.name, [None] * n) for f in STATS_SCHEMA}, STATS_SCHEMA)
    (tmp_path / "stats").mkdir()
    pq.write_table(table, tmp_path / "stats" / "r1.parquet")
    fetched = []
    monkeypatch.setattr(previews, "fetch_item_bytes", lambda uri, so: fetched.append(uri) or b"")
    page = report_module.build_report(str(tmp_path), report_module.ReportOptions(sample=5, worst=3))
    assert len(fetched) <= (5 + 3) * 3
    worst, sample = page.split('id="worst"')[1].split('id="sample"')
    keys = re.compile(r'<div class="key">(k\d+)</div>')
    assert len(keys.findall(worst)) == 3 and len(keys.findall(sample)) == 5
    assert not set(keys.findall(worst)) & set(keys.findall(sample))  # never shown twice
    assert "Items in this output: <b>100000</b>" in page
    assert "<td>10000</td><td>cannot identify image file &#x27;…&#x27;</td>" in page
