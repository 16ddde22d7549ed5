"""What a run shows while it works: a progress bar on a terminal, plain lines when piped."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.jobs.test_refusals import spl
from tests.pipeline import data


def archive(root: Path, count: int) -> tuple[str, str]:
    images, masks = root / "images", root / "masks"
    images.mkdir()
    masks.mkdir()
    hole = np.zeros((48, 64), np.uint8)
    hole[10:20, 10:30] = 255
    for i in range(count):
        data.photo(i, (64, 48)).save(images / f"p{i}.png")
        Image.fromarray(hole).save(masks / f"p{i}.png")
    return str(images), str(masks)


def in_a_terminal(*args: str) -> tuple[int, str]:
    """Run `spl ARGS` with a pseudo-terminal as stdout and stderr; (exit status, output)."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", *args],
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env={**env, "COLUMNS": "120"},
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=300), b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_a_progress_bar_and_a_pipe_gets_plain_lines(tmp_path):
    images, masks = archive(tmp_path, 6)
    common = ("--images", images, "--masks", masks, "--engine", "opencv-telea",
              "--batch-size", "2", "--num-cpus", "2")  # fmt: skip
    status, shown = in_a_terminal("restore", *common, "--output", str(tmp_path / "a"))
    assert status == 0, shown[-3000:]
    assert "restore:" in shown and "6/6" in shown and "ok 6 error 0" in shown  # the bar
    assert "\r" in shown  # redrawn in place
    piped = spl("restore", *common, "--output", str(tmp_path / "b"), "--progress-s", "0.1")
    assert piped.returncode == 0, piped.stderr[-3000:]
    lines = [line for line in piped.stderr.splitlines() if line.startswith("restore: ")]
    assert lines and lines[-1].startswith("restore: 6/6 items (100%) | ok 6 error 0")
    assert "\r" not in piped.stderr and "\x1b[" not in piped.stderr  # no control characters
    quiet = spl("-q", "restore", *common, "--output", str(tmp_path / "c"))
    assert quiet.returncode == 0 and "restore: " not in quiet.stderr
