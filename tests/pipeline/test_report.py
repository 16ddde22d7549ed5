"""`spl report`: a real report of a real run, opened in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from jobs.report import report
from pipeline import RestoreConfig, run_restore
from pipeline import report as report_module
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


def test_report_opens_in_chromium_with_every_image_loaded(restored_run, tmp_path):
    result = CliRunner().invoke(report, [str(restored_run), "--sample", "4", "--worst", "2"])
    assert result.exit_code == 0, result.output
    page = restored_run / "report.html"
    assert result.output.strip() == str(page)
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: nothing to fetch
    assert text.count('<div class="card">') == 6  # 4 sampled + 2 worst
    assert re.search(r"<td>1</td><td>[^<]*(cannot|not|unidentified)[^<]*</td>", text, re.I)
    assert "lonely" in text  # the missing-mask error is listed with its key

    browser = chromium()
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    loaded = int(re.search(r'data-images-ok="(\d+)"', dom).group(1))
    assert images == loaded >= 6 * 3 + 3  # every thumbnail and plot decoded
    assert 'id="sample"' in dom and 'id="worst"' in dom
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1300,1800",
         f"--screenshot={shot.resolve()}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.stat().st_size > 10_000


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
    monkeypatch.setattr(
        report_module, "fetch_item_bytes", lambda uri, so: fetched.append(uri) or b""
    )
    page = report_module.build_report(str(tmp_path), report_module.ReportOptions(sample=5, worst=3))
    assert len(fetched) <= (5 + 3) * 3
    assert "Items in this output: <b>100000</b>" in page
    assert "<td>10000</td><td>cannot identify image file &#x27;…&#x27;</td>" in page
