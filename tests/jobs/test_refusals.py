"""`spl restore` as a user meets it in a shell: what cannot work is refused in one sentence with
exit status 2 before Ray starts or OUT is created; a run whose items failed says why and exits 3."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.pipeline import data


def spl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_"))}
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=300,
    )


def refused(result: subprocess.CompletedProcess) -> str:
    """The one-sentence refusal of a job that could not start (exit 2, no traceback)."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        data.photo(i, (64, 48)).save(folder / f"p{i}.png")
    return folder


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket closes


def test_missing_inputs_and_loose_images_without_masks_are_refused_before_out_exists(
    tmp_path, photos
):
    out = tmp_path / "out"
    line = refused(spl("restore", "--images", str(tmp_path / "nope"), "--output", str(out)))
    assert "`images`" in line and "does not exist" in line
    line = refused(spl("restore", "--images", str(photos), "--output", str(out)))
    assert "need masks" in line and "--masks" in line and "--mask-template" in line
    assert not out.exists()  # nothing was started, nothing left behind


def test_an_output_that_cannot_be_written_is_refused(photos):
    template = str(photos / "p0.png")
    out = "/proc/spl-restore-out"  # /proc takes no new folder, not even from root
    args = ("--images", str(photos), "--mask-template", template, "--output", out)
    line = refused(spl("restore", *args))
    assert "`output`" in line and "cannot be written" in line


def test_s3_without_credentials_or_without_a_server_says_what_to_set(tmp_path):
    endpoint = f"--storage-option=endpoint_url=http://127.0.0.1:{closed_port()}"
    args = ("restore", "--images", "s3://archive/in", "--masks", "s3://archive/masks",
            "--output", str(tmp_path / "out"), endpoint)  # fmt: skip
    line = refused(spl(*args, env={"AWS_CONFIG_FILE": "/nonexistent", "HOME": str(tmp_path)}))
    assert "no credentials" in line and "AWS_ACCESS_KEY_ID" in line
    keys = {"AWS_ACCESS_KEY_ID": "someone", "AWS_SECRET_ACCESS_KEY": "secret"}
    line = refused(spl(*args, env=keys))
    assert "no storage server answered" in line and "endpoint_url" in line


def test_a_run_with_failed_items_exits_3_and_says_why_unless_errors_are_allowed(
    tmp_path, photos
):
    masks = tmp_path / "masks"
    masks.mkdir()
    hole = np.zeros((48, 64), np.uint8)
    hole[10:20, 10:30] = 255
    for i in range(2):
        Image.fromarray(hole).save(masks / f"p{i}.png")
    Image.fromarray(np.full((10, 90), 255, np.uint8)).save(masks / "p2.png")  # wrong aspect
    args = ("restore", "--images", str(photos), "--masks", str(masks),
            "--engine", "opencv-telea", "--num-cpus", "2")  # fmt: skip
    result = spl(*args, "--output", str(tmp_path / "out"))
    assert result.returncode == 3, result.stderr[-2000:]
    assert "ok 2, error 1" in result.stdout
    why = [line for line in result.stderr.splitlines() if "item(s) failed" in line]
    assert len(why) == 1 and "1 x mask does not fit the image" in why[0]
    assert f"spl report {tmp_path / 'out'}" in why[0]
    again = spl(*args, "--output", str(tmp_path / "out2"), "--allow-errors")
    assert again.returncode == 0, again.stderr[-2000:]


def test_masks_that_match_no_image_are_refused_with_examples_of_each_side(tmp_path, photos):
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("scan-a", "scan-b"):
        Image.fromarray(np.full((48, 64), 255, np.uint8)).save(masks / f"{name}.png")
    args = ("--images", str(photos), "--masks", str(masks), "--engine", "opencv-telea",
            "--num-cpus", "2", "--output", str(tmp_path / "out"))  # fmt: skip
    line = refused(spl("restore", *args))
    assert "no mask under `masks`" in line and "relative path without extension" in line
    assert "images such as p0, p1, p2" in line and "masks such as scan-a, scan-b" in line
