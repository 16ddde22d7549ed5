"""What a run shows while it works: a progress bar on a terminal, plain lines when piped; and
what a Ctrl-C keeps."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
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
    strips = tmp_path / "strips"  # and --concat: before | mask | after of a few items
    piped = spl("restore", *common, "--output", str(tmp_path / "b"), "--progress-s", "0.1",
                "--concat", str(strips), "--concat-items", "4")  # fmt: skip
    assert piped.returncode == 0, piped.stderr[-3000:]
    lines = [line for line in piped.stderr.splitlines() if line.startswith("restore: ")]
    assert lines and lines[-1].startswith("restore: 6/6 items (100%) | ok 6 error 0")
    assert "\r" not in piped.stderr and "\x1b[" not in piped.stderr  # no control characters
    assert f"before | mask | after strips of 4 item(s): {strips}" in piped.stdout
    shown = sorted(strips.iterdir())
    assert [p.name for p in shown] == ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg"]
    strip = np.asarray(Image.open(shown[0]).convert("L")).astype(int)
    assert strip.shape == (48, 3 * 64 + 2 * 8)
    mask_panel = strip[:, 64 + 8 : 2 * 64 + 8]
    assert mask_panel[12:18, 12:28].min() > 200 and mask_panel[30:, :].max() < 60  # the hole
    quiet = spl("-q", "restore", *common, "--output", str(tmp_path / "c"))
    assert quiet.returncode == 0 and "restore: " not in quiet.stderr


def test_ctrl_c_keeps_every_finished_item_and_says_how_to_resume(tmp_path):
    """Interrupted with items at the model, the run records each item it wrote, and only those
    (what was lost before: 48 images written, 0 of the last ones recorded, all redone)."""
    import pyarrow.dataset as pads

    images, masks = archive(tmp_path, 24)
    out = tmp_path / "out"
    job = ("restore", "--images", images, "--masks", masks, "--output", str(out),
           "--batch-size", "2", "--num-cpus", "2")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_"))}
    with open(tmp_path / "stderr.txt", "w+") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", *job],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 240
        while len(list((out / "images").glob("*"))) < 4 and process.poll() is None:
            assert time.monotonic() < deadline, "no image was written"
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        status = process.wait(timeout=120)
        stderr.seek(0)
        shown = stderr.read()
    assert status == 130, shown[-3000:]
    assert "Ctrl-C: no new items start" in shown and "Run the same command again" in shown
    written = sorted(p.stem for p in (out / "images").iterdir())
    rows = pads.dataset(out / "stats", format="parquet").to_table(columns=["key", "status"])
    recorded = sorted(Path(k).stem for k in rows["key"].to_pylist())
    assert recorded == written and 4 <= len(written) < 24  # each written item has its row
    summary = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert summary["status"] == "interrupted" and summary["interrupted_by"] == "SIGINT"

    before = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    again = spl(*job)  # the re-run restores the rest, and nothing written before
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"ok {24 - len(written)}" in again.stdout
    assert f"already_done {len(written)}" in again.stdout
    assert all((out / "images" / name).stat().st_mtime_ns == t for name, t in before.items())
    assert len(list((out / "images").iterdir())) == 24
