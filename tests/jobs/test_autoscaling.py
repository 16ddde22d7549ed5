"""GPU pools on an autoscaling cluster: a head with no CPU or GPU for work, a CPU worker type and
a GPU worker type, both with min_workers 0 (Ray's fake multi-node provider on this machine).
The job must ask for GPUs so the autoscaler starts the GPU worker, whose one CPU its actor takes;
the restore tasks run on the CPU worker and send their windows to the actor on the GPU worker.
A job whose GPUs can never come fails in one sentence after a bounded wait."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.ledger import load_history
from pipeline.schema import STATS_SCHEMA

from .conftest import Spl
from .ray_head import RayHead

WORKERS = {
    "cpu_worker": {
        "resources": {"CPU": 2, "object_store_memory": 150 * 2**20},
        "node_config": {},
        "min_workers": 0,
        "max_workers": 1,
    },
    "gpu_worker": {  # one CPU: the actor's, so no restore task runs here
        "resources": {"CPU": 1, "GPU": 1, "object_store_memory": 150 * 2**20},
        "node_config": {},
        "min_workers": 0,
        "max_workers": 1,
    },
}
FAKE_NODE_PREFIX = "ffffffffffffffff"  # the fake provider's worker node ids


@pytest.fixture(scope="module")
def autoscaling_head(seaweedfs) -> Iterator[RayHead]:
    root = Path(tempfile.mkdtemp(prefix="splauto", dir="/tmp"))
    head = RayHead(root)
    head.start(worker_types=WORKERS, head_cpus=0)
    try:
        yield head
    finally:
        head.stop()
        shutil.rmtree(root, ignore_errors=True)


def ray_state(head: RayHead, kind: str) -> list[dict]:
    """`ray list <kind>` of the test cluster (the state API), as dicts."""
    env = {k: v for k, v in {**os.environ, **head.client_env()}.items() if v is not None}
    ray = str(Path(sys.executable).parent / "ray")
    listed = subprocess.run(
        [ray, "list", kind, "--format", "json", "--limit", "10000", "--detail"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(listed.stdout)


def flags(archive, output: str, *extra: str) -> list[str]:
    return [
        "--images", archive.images, "--masks", archive.masks, "--output", output,
        "--batch-size", "2", "--actors", "1", "--no-progress-bars", *archive.storage_flags(),
        *extra,
    ]  # fmt: skip


def test_gpus_that_can_never_come_fail_in_one_sentence_after_the_wait(
    autoscaling_head, archive, out_prefix
):
    spl = Spl(autoscaling_head.client_env())
    extra = ("--gpus-per-actor", "2", "--gpu-wait-s", "5")  # no worker type has 2 GPUs
    submitted = spl("submit", *flags(archive, out_prefix, *extra), "--name", "nogpu")
    assert submitted.exit_code == 0, submitted.output
    status = spl("status", "nogpu", "--wait", "--timeout", "120", "--json")
    assert json.loads(status.stdout)["job"]["status"] == "FAILED"
    logs = spl("logs", "nogpu").output
    assert "asked for 1 actor(s) with 2 GPU each" in logs and "after 5 s" in logs, logs[-2000:]
    # (first in this module: before any GPU worker exists, nothing is left from other jobs)


def test_gpu_actors_bring_up_a_gpu_worker_and_every_row_is_restored_there(
    autoscaling_head, archive, out_prefix
):
    spl = Spl(autoscaling_head.client_env())
    submitted = spl("submit", *flags(archive, out_prefix, "--gpus-per-actor", "1"), "--name", "gpu")
    assert submitted.exit_code == 0, submitted.output
    status = spl("status", "gpu", "--wait", "--timeout", "300", "--json", *archive.storage_flags())
    report = json.loads(status.stdout)
    logs = spl("logs", "gpu").output[-3000:]
    assert report["job"]["status"] == "SUCCEEDED", logs
    summary = report["summary"]
    assert summary["resources"]["gpus_per_actor"] == 1 and summary["resources"]["device"] == "auto"
    rows = load_history(
        out_prefix, archive.storage_options, columns=list(STATS_SCHEMA.names)
    ).to_pylist()
    assert summary["counts"]["ok"] == len(archive.keys), [r["error"] for r in rows]
    assert sorted(r["key"] for r in rows) == sorted(archive.keys)
    assert all(r["node"].startswith(FAKE_NODE_PREFIX) for r in rows), {r["node"] for r in rows}
    assert {r["engine"] for r in rows} == {"spl"}  # the bundled model, on the worker's CPU
    # every window was inferred on the GPU worker, sent by restore tasks that ran elsewhere
    nodes = ray_state(autoscaling_head, "nodes")
    gpu_nodes = {n["node_id"] for n in nodes if n["resources_total"].get("GPU")}
    assert {r["node"] for r in rows} <= gpu_nodes and len(gpu_nodes) == 1
    tasks = [t for t in ray_state(autoscaling_head, "tasks") if "restore_units" in t["name"]]
    task_nodes = {t["node_id"] for t in tasks if t.get("node_id")}
    cpu_nodes = {n["node_id"] for n in nodes if n["node_id"].startswith(FAKE_NODE_PREFIX)}
    assert task_nodes and task_nodes <= cpu_nodes - gpu_nodes, (task_nodes, nodes)
