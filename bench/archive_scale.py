"""Listing plus ledger at archive scale: driver wall time and peak memory of the step every run
starts with (`pipeline.work.find_work`: list inputs, match masks, read the ledger, decide what
is done), on synthetic archives.

    python bench/archive_scale.py [--sizes 10000,100000] [--s3 20000] [--manifest 1000000]
                                  [--new 0.01]

Per size N: N image/mask pairs on local disk (1000 per folder; tiny files, since listing never
reads them), and a ledger of N `ok` rows in 20 stats files. Two scenarios: `fresh` (empty OUT)
and `rerun` (all N done, plus N * --new new pairs). Each is measured twice, each time in its own
process: with the plan's map and reduce tasks in Ray workers (`ray`, as a run does it; 2 CPUs)
and in the measured process itself (`in-process`, as a dry run does it). Measured: the peak RSS
growth of that process over the step (its RSS sampled every 10 ms, minus RSS before) and bytes
per listed key. `--s3 N` repeats both on SeaweedFS S3; `--manifest N` names N pairs with a Parquet
inventory (no files are created, the listing reads the inventory). Prints a table and writes
bench/results/archive_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "archive_scale.json"
SETTINGS_PROBE = {"engine": "opencv-telea"}


def make_archive(fs, root: str, start: int, count: int) -> None:
    for i in range(start, start + count):
        folder = f"d{i // 1000:05d}"
        fs.pipe_file(f"{root}/images/{folder}/{i:08d}.png", b"x")
        fs.pipe_file(f"{root}/masks/{folder}/{i:08d}.png", b"m")


def make_ledger(root: str, count: int, options: dict) -> None:
    """`count` ok rows for the first `count` items, with the settings id a run would use."""
    import pyarrow as pa

    from pipeline import RestoreConfig
    from pipeline.schema import STATS_SCHEMA
    from pipeline.stats import StatsSink

    config = RestoreConfig.from_dict(spec(root, options))
    settings = config.settings_id("opencv-telea", "opencv-telea", None, "files")
    sink = StatsSink(config.output, "ledger", options, flush_rows=10**9)
    per_file = max(1, count // 20)
    for first in range(0, count, per_file):
        keys = [f"d{i // 1000:05d}/{i:08d}" for i in range(first, min(count, first + per_file))]
        uris = [f"{config.images}/{k}.png" for k in keys]
        n = len(keys)
        columns = {name: pa.nulls(n, STATS_SCHEMA.field(name).type) for name in STATS_SCHEMA.names}
        columns.update(
            run_id=pa.array(["ledger"] * n),
            key=pa.array(keys),
            image_uri=pa.array(uris),
            status=pa.array(["ok"] * n),
            settings_id=pa.array([settings] * n),
        )
        sink.add(pa.table(columns, schema=STATS_SCHEMA))
        sink.flush()


def spec(root: str, options: dict, manifest: str | None = None) -> dict:
    return {
        "images": f"{root}/images",
        "masks": f"{root}/masks",
        "output": f"{root}/out",
        "storage_options": options,
        **({"manifest": manifest} if manifest else {}),
        **SETTINGS_PROBE,
    }


def make_manifest(root: str, count: int) -> str:
    """A Parquet inventory naming `count` image/mask pairs by full path (no files needed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = [f"d{i // 1000:05d}/{i:08d}.png" for i in range(count)]
    paths = [f"{root}/images/{k}" for k in keys] + [f"{root}/masks/{k}" for k in keys]
    path = f"{root}/inventory.parquet"
    pq.write_table(pa.table({"key": paths, "size": [1] * len(paths)}), path)
    return path


PROBE = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
from pipeline import RestoreConfig
from pipeline.work import find_work

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

class Peak(threading.Thread):  # the step's own peak: RSS sampled every 10 ms while it runs
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.stop = rss(), threading.Event()
    def run(self):
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, rss())

from pipeline.model import choose_model
config = RestoreConfig.from_dict(json.loads(sys.argv[2]))
mode = sys.argv[3]
if mode == "ray":  # the plan's map and reduce tasks run in Ray workers, as in a run
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
model = choose_model(config)  # imports done before measuring: only the step's own memory counts
import pipeline.planner, pyarrow.dataset  # noqa: imported by the step
before = rss()
sampler = Peak()
sampler.start()
t0 = time.perf_counter()
work = find_work(config, "bench", model)
wall = time.perf_counter() - t0
sampler.stop.set()
sampler.join()
peak = max(sampler.peak, rss())
work.scratch.remove()
print(json.dumps({"wall_s": wall, "peak_growth": max(0, peak - before),
                  "listed": work.listing.items, "to_run": work.to_run, "already": work.already}))
"""


def measure(root: str, options: dict, manifest: str | None = None) -> list[dict]:
    """The step with its tasks in Ray workers (a run), then in this process (a dry run)."""
    results = []
    for mode in ("ray", "in-process"):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(REPO), json.dumps(spec(root, options, manifest)),
             mode],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["bytes_per_key"] = round(result["peak_growth"] / max(1, result["listed"]), 1)
        results.append({"mode": mode, **result})
    return results


def scenario(fs, root: str, size: int, new: float, options: dict, where: str) -> list[dict]:
    rows = []
    make_archive(fs, root, 0, size)
    for result in measure(root, options):
        rows.append({"where": where, "keys": size, "scenario": "fresh", **result})
        print(rows[-1], flush=True)
    make_ledger(root, size, options)
    make_archive(fs, root, size, int(size * new))
    for result in measure(root, options):
        rows.append({"where": where, "keys": size, "scenario": f"rerun +{new:.0%} new", **result})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--s3", type=int, default=0, help="keys on SeaweedFS S3 (0: skip)")
    parser.add_argument("--new", type=float, default=0.01)
    parser.add_argument(
        "--manifest", type=int, default=0, help="keys named by a Parquet inventory (0: skip)"
    )
    args = parser.parse_args()
    import fsspec

    rows = []
    if args.manifest:
        with tempfile.TemporaryDirectory(prefix="spl-archive-") as root:
            os.makedirs(f"{root}/images")
            os.makedirs(f"{root}/masks")
            for result in measure(root, {}, make_manifest(root, args.manifest)):
                rows.append(
                    {"where": "manifest", "keys": args.manifest, "scenario": "fresh", **result}
                )
                print(rows[-1], flush=True)
            make_ledger(root, args.manifest, {})
            grown = make_manifest(root, int(args.manifest * (1 + args.new)))
            for result in measure(root, {}, grown):
                rows.append(
                    {"where": "manifest", "keys": args.manifest,
                     "scenario": f"rerun +{args.new:.0%} new", **result}
                )  # fmt: skip
                print(rows[-1], flush=True)
    for size in (int(s) for s in args.sizes.split(",") if s):
        with tempfile.TemporaryDirectory(prefix="spl-archive-") as root:
            fs = fsspec.filesystem("file", auto_mkdir=True)
            rows += scenario(fs, root, size, args.new, {}, "local")
    if args.s3:
        from bench.shard_outputs import start_seaweedfs
        from tests.conftest import S3_KEY, S3_SECRET

        workdir = Path(tempfile.mkdtemp(prefix="spl-archive-s3-"))
        process, endpoint, _ = start_seaweedfs(workdir)
        try:
            import s3fs

            options = {"key": S3_KEY, "secret": S3_SECRET, "endpoint_url": endpoint}
            fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
            fs.mkdir("archive")
            started = time.monotonic()
            rows += scenario(fs, "s3://archive", args.s3, args.new, options, "seaweedfs-s3")
            print(f"(S3 scenario incl. uploads: {time.monotonic() - started:.0f} s)")
        finally:
            process.kill()
            process.wait(timeout=10)
    print()
    head = ("where", "keys", "scenario", "tasks", "wall s", "driver peak growth MB", "bytes/key",
            "to run")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['where']} | {r['keys']} | {r['scenario']} | {r['mode']} | {r['wall_s']:.2f} | "
            f"{r['peak_growth'] / 2**20:.1f} | {r['bytes_per_key']} | {r['to_run']} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
