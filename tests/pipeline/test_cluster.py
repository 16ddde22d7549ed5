"""A worker node is removed mid-run on a multi-node Ray: the job still returns every row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.ledger import load_history
from pipeline.schema import STATS_SCHEMA
from tests.conftest import clean_env
from tests.pipeline import data

REPO = Path(__file__).resolve().parents[2]
ITEMS = 24
SIZE = (256, 192)
HOLE = (40, 40, 200, 150)


def test_losing_a_worker_node_costs_retries_not_rows(tmp_path):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    for i in range(ITEMS):
        (images / f"{i:02d}.png").write_bytes(data.encode(data.photo(200 + i, SIZE)))
        (masks / f"{i:02d}.png").write_bytes(data.encode(data.box_mask(SIZE, HOLE)))
    spec = {
        "images": str(images),
        "masks": str(masks),
        "output": str(out),
        "engine": "opencv-ns",
        "batch_size": 2,
        "actors": "2",
        "stats_flush_rows": 4,
        "progress_bars": False,
        "run_id": "cluster",
        "remove_after_images": 4,
    }
    spec_path, result_path = tmp_path / "spec.json", tmp_path / "result.json"
    spec_path.write_text(json.dumps(spec))
    log = tmp_path / "cluster.log"
    with log.open("wb") as handle:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.pipeline.cluster_job", str(spec_path), str(result_path)],
            cwd=REPO,
            env={**clean_env(), "PYTHONPATH": str(REPO)},
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=420,
            start_new_session=True,
        )
    tail = log.read_text(errors="replace")[-4000:]
    assert proc.returncode == 0, tail
    result = json.loads(result_path.read_text())
    assert "error" not in result, result.get("error", "") + tail
    assert result.get("images_before_removal", 0) >= 4, "the node was not removed mid-run"
    summary = result["summary"]
    assert summary["status"] == "finished"
    assert summary["counts"] == {
        "listed": ITEMS, "ok": ITEMS, "error": 0, "skipped": 0, "already_done": 0,
    }  # fmt: skip
    rows = load_history(str(out), {}, columns=list(STATS_SCHEMA.names)).to_pylist()
    assert sorted(r["key"] for r in rows) == [f"{i:02d}" for i in range(ITEMS)]
    assert len(list((out / "images").glob("*.png"))) == ITEMS
