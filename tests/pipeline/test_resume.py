"""SIGKILL the driver mid-run, run again: every item restored exactly once, no duplicate rows.

The job runs as `python -m jobs.restore` in a subprocess that reaches SeaweedFS the standard
AWS way (AWS_ENDPOINT_URL and keys in the environment, nothing in the job spec).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from pipeline.ledger import load_history
from pipeline.schema import STATS_SCHEMA
from tests.conftest import clean_env
from tests.pipeline import data

REPO = Path(__file__).resolve().parents[2]
ITEMS = 30
SIZE = (384, 288)
BIG_HOLE = (80, 60, 300, 220)


def start_job(spec: dict, workdir: Path, env: dict, name: str) -> subprocess.Popen:
    config = workdir / f"{name}.yaml"
    config.write_text(yaml.safe_dump(spec))
    log = (workdir / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.restore", "--config", str(config)],
        cwd=REPO,
        env={**clean_env(), **env, "PYTHONPATH": str(REPO)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), int(fields[3]))
    return table


def _started_by(pid: int) -> list[int]:
    """Processes in the job's session or below it: the Ray processes the job started."""
    table = _proc_table()
    mine = {p for p, (_, sid) in table.items() if sid == pid} | {pid}
    grew = True
    while grew:
        more = {p for p, (ppid, _) in table.items() if ppid in mine} - mine
        mine |= more
        grew = bool(more)
    return sorted(mine - {pid})


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver; then, by pid, the Ray processes it started (a crashed host would
    take them down too)."""
    children = _started_by(proc.pid)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(1.0)  # orphaned workers get a moment to notice, as they would in a real crash
    for child in children:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sigkill_of_the_driver_then_rerun_restores_every_item_exactly_once(
    seaweedfs, s3_prefix, tmp_path
):
    s3 = seaweedfs.filesystem()
    root = s3_prefix.removeprefix("s3://")
    for i in range(ITEMS):
        s3.pipe_file(f"{root}/images/{i:03d}.png", data.encode(data.photo(100 + i, SIZE)))
        s3.pipe_file(f"{root}/masks/{i:03d}.png", data.encode(data.box_mask(SIZE, BIG_HOLE)))
    spec = {
        "images": f"{s3_prefix}/images",
        "masks": f"{s3_prefix}/masks",
        "output": f"{s3_prefix}/out",
        # the model (about a second per item here): the run is still going when it is killed
        "checkpoint": data.small_checkpoint(tmp_path / "small.safetensors"),
        "batch_size": 2,
        "actors": "1",
        "num_cpus": 2,
        "stats_flush_rows": 2,
        "progress_bars": False,
    }
    env = seaweedfs.env()

    first = start_job({**spec, "run_id": "first"}, tmp_path, env, "first")
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:  # kill once some results are committed
            if s3.find(f"{root}/out/stats", refresh=True) if s3.exists(f"{root}/out") else []:
                break
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
        else:
            pytest.fail("the first run committed nothing in time")
    finally:
        kill_tree(first)
    summary_one = json.loads(s3.cat_file(f"{root}/out/runs/first.json"))
    assert summary_one["status"] == "running"  # it really died mid-run

    second = start_job({**spec, "run_id": "second"}, tmp_path, env, "second")
    try:
        assert second.wait(timeout=240) == 0, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        if second.poll() is None:
            kill_tree(second)
    summary = json.loads(s3.cat_file(f"{root}/out/runs/second.json"))
    counts = summary["counts"]
    assert summary["status"] == "finished" and counts["listed"] == ITEMS
    assert counts["already_done"] >= 1 and counts["ok"] >= 1  # work was split across the runs
    assert counts["ok"] + counts["already_done"] == ITEMS and counts["error"] == 0

    rows = load_history(f"{s3_prefix}/out", seaweedfs.storage_options,
                        columns=list(STATS_SCHEMA.names)).to_pylist()  # fmt: skip
    keys = [r["key"] for r in rows]
    assert sorted(keys) == [f"{i:03d}" for i in range(ITEMS)]  # one row per item, no duplicate
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["run_id"] for r in rows} == {"first", "second"}
    images = s3.find(f"{root}/out/images", refresh=True)
    assert len(images) == ITEMS
    for path in images[:: max(1, ITEMS // 8)]:  # complete files under final names
        Image.open(io.BytesIO(s3.cat_file(path))).load()


def test_a_mask_uploaded_after_its_image_is_restored_by_the_next_run_on_its_own(
    ray_local, tmp_path
):
    from pipeline import RestoreConfig, run_restore
    from pipeline.ledger import latest_rows
    from tests.pipeline import data as shapes

    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    for name in ("early", "late"):
        (images / f"{name}.png").write_bytes(shapes.encode(shapes.photo(7, (64, 48))))
    (masks / "early.png").write_bytes(shapes.encode(shapes.box_mask((64, 48), (8, 8, 30, 30))))
    spec = {"images": str(images), "masks": str(masks), "output": str(out),
            "engine": "opencv-telea", "progress_bars": False}  # fmt: skip
    first = run_restore(RestoreConfig.from_dict(spec))
    assert first["counts"]["error"] == 1
    rows = {r["key"]: r for r in latest_rows(str(out)).to_pylist()}
    assert rows["late"]["error_kind"] == "transient" and "no mask" in rows["late"]["error"]

    (masks / "late.png").write_bytes(shapes.encode(shapes.box_mask((64, 48), (8, 8, 30, 30))))
    second = run_restore(RestoreConfig.from_dict(spec))  # no --retry-failed
    assert second["counts"]["ok"] == 1 and second["counts"]["already_done"] == 1


def test_permanent_errors_stay_done_until_retry_failed_and_old_rows_count_as_permanent():
    import pyarrow as pa

    from pipeline.errors import error_kind
    from pipeline.ledger import done_keys

    assert error_kind("error", "cannot read s3://b/k: ReadTimeoutError") == "transient"
    assert error_kind("error", "inpainting failed: OutOfMemoryError: CUDA out of memory") == (
        "transient"
    )
    assert error_kind("error", "the image is corrupt or truncated: broken data") == "permanent"
    assert error_kind("ok", None) is None
    history = pa.table({
        "key": ["bad", "flaky", "legacy", "fine"],
        "status": ["error", "error", "error", "ok"],
        "settings_id": ["s"] * 4,
        "error_kind": ["permanent", "transient", None, None],
    })  # fmt: skip
    assert done_keys(history, "s") == {"bad", "legacy", "fine"}
    assert done_keys(history, "s", retry_failed=True) == {"fine"}
