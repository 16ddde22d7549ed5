"""Run a restore on a 3-node `ray.cluster_utils.Cluster` and remove a worker node mid-run.

Used by test_cluster.py in its own process (a process can join one Ray cluster only).
Usage: python -m tests.pipeline.cluster_job SPEC.json RESULT.json
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from pipeline import RestoreConfig, run_restore

OBJECT_STORE = 150 * 2**20


def main(spec_path: str, result_path: str) -> None:
    logging.basicConfig(level=logging.INFO)
    spec = json.loads(Path(spec_path).read_text())
    remove_after = spec.pop("remove_after_images")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": OBJECT_STORE},
    )
    doomed = cluster.add_node(num_cpus=2, object_store_memory=OBJECT_STORE)
    cluster.add_node(num_cpus=3, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    result: dict = {"doomed_node": doomed.node_id}

    def job() -> None:
        try:
            result["summary"] = run_restore(RestoreConfig.from_dict(spec))
        except BaseException as exc:  # reported to the test, which fails with it
            result["error"] = f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=job, daemon=True)
    worker.start()
    images = Path(spec["output"]) / "images"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and worker.is_alive():
        done = len(list(images.rglob("*.png"))) if images.exists() else 0
        if done >= remove_after:
            result["images_before_removal"] = done
            cluster.remove_node(doomed)
            result["removed_at"] = time.time()
            break
        time.sleep(0.2)
    worker.join(timeout=300)
    result["alive_after_join"] = worker.is_alive()
    Path(result_path).write_text(json.dumps(result, default=str))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
