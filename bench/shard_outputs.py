"""S3 requests and images/s: loose files out (`--output-layout files`) against WebDataset out,
for the same WebDataset input on SeaweedFS.

    python bench/shard_outputs.py [--items 400] [--shards 4] [--size 128x96] [--rounds 2]
                                  [--results bench/results]

SeaweedFS is started here with its Prometheus metrics on; the requests of each run are the
difference of its `SeaweedFS_s3_request_total` counters for that run's own output bucket (the
input bucket is read the same way by both layouts). Both layouts run in one process on one Ray,
alternating, `--rounds` times each; engine opencv-telea (the sink, not the model, is measured).
Prints a table and writes <results>/shard_outputs.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import S3_KEY, S3_SECRET, _wait_for_s3, _weed_binary, free_ports  # noqa: E402

METRIC = re.compile(
    r'^SeaweedFS_s3_request_total\{bucket="([^"]+)",code="(\d+)",type="(\w+)"\} (\S+)'
)


def start_seaweedfs(workdir: Path) -> tuple[subprocess.Popen, str, str]:
    s3, master, volume, filer, metrics = free_ports(5)
    args = [
        _weed_binary(), "server", "-s3", f"-dir={workdir}", "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1", f"-s3.port={s3}", f"-master.port={master}",
        f"-volume.port={volume}", f"-filer.port={filer}", "-s3.port.iceberg=0",
        "-s3.port.lance=0", "-master.volumeSizeLimitMB=64", "-master.telemetry=false",
        "-volume.max=64",
        f"-metricsPort={metrics}",
    ]  # fmt: skip
    log = workdir / "weed.log"
    process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{s3}"
    _wait_for_s3(endpoint, process, log)
    return process, endpoint, f"http://127.0.0.1:{metrics}/metrics"


def requests(metrics_url: str, bucket: str) -> Counter[str]:
    """Answered S3 requests on `bucket` so far, by type (PUT, GET, DELETE, ...)."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        match = METRIC.match(line)
        if match and match.group(1) == bucket:
            counts[match.group(3)] += int(float(match.group(4)))
    return counts


def write_input(fs, bucket: str, items: int, shards: int, size: tuple[int, int]) -> None:
    import webdataset as wds

    from tests.pipeline import data

    per = -(-items // shards)
    for n in range(shards):
        buffer = io.BytesIO()
        with wds.TarWriter(buffer) as sink:
            for i in range(n * per, min(items, (n + 1) * per)):
                item = data.good_item(i, size, "JPEG")
                sink.write(
                    {
                        "__key__": f"{i:06d}",
                        "jpg": item["image"],
                        "mask.png": item["mask"],
                        "json": json.dumps({"i": i}).encode(),
                    }
                )
        fs.pipe_file(f"{bucket}/shards/{n:05d}.tar", buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--size", default="128x96")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--results", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    import ray
    import s3fs

    from pipeline import RestoreConfig, run_restore

    workdir = Path(tempfile.mkdtemp(prefix="spl-bench-s3-"))
    process, endpoint, metrics_url = start_seaweedfs(workdir)
    options = {"key": S3_KEY, "secret": S3_SECRET, "endpoint_url": endpoint}
    try:
        fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
        fs.mkdir("bench-in")
        write_input(fs, "bench-in", args.items, args.shards, size)
        ray.init(address="local", num_cpus=2, include_dashboard=False)
        runs = []
        for layout in ("files", "webdataset"):
            fs.mkdir(f"bench-{layout}")
        for round_ in range(args.rounds):
            for layout in ("files", "webdataset"):
                bucket, prefix = f"bench-{layout}", f"bench-{layout}/round-{round_}"
                before = requests(metrics_url, bucket)
                t0 = time.monotonic()
                summary = run_restore(
                    RestoreConfig.from_dict(
                        {
                            "images": "s3://bench-in/shards",
                            "output": f"s3://{prefix}",
                            "output_layout": layout,
                            "engine": "opencv-telea",
                            "storage_options": options,
                            "progress_bars": False,
                            "batch_size": 16,
                        }
                    )
                )
                wall = time.monotonic() - t0
                used = requests(metrics_url, bucket) - before
                ok = summary["counts"]["ok"]
                assert ok == args.items, summary["counts"]
                runs.append(
                    {
                        "layout": layout,
                        "round": round_,
                        "items": ok,
                        "wall_s": round(wall, 2),
                        "images_per_s": round(ok / wall, 2),
                        "requests": dict(used),
                        "put_per_1k": round(used["PUT"] * 1000 / ok, 1),
                        "objects_left": len(fs.find(prefix)),
                    }
                )
                print(f"{layout:>10} round {round_}: {runs[-1]}", flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        process.terminate()  # weed may take its time over a clean shutdown of a temp store
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)

    by_layout = {}
    for layout in ("files", "webdataset"):
        mine = [r for r in runs if r["layout"] == layout]
        by_layout[layout] = {
            "images_per_s": round(sum(r["images_per_s"] for r in mine) / len(mine), 2),
            "put_per_1k": mine[-1]["put_per_1k"],
            "requests_per_1k": {
                k: round(v * 1000 / mine[-1]["items"], 1) for k, v in mine[-1]["requests"].items()
            },
        }
    ratio = by_layout["webdataset"]["images_per_s"] / by_layout["files"]["images_per_s"]
    print()
    print(f"{args.items} items ({size[0]}x{size[1]} JPEG) in {args.shards} shards, SeaweedFS S3")
    print("| layout | images/s | PUT per 1k items | all requests per 1k items |")
    print("| --- | --- | --- | --- |")
    for layout, row in by_layout.items():
        print(
            f"| {layout} | {row['images_per_s']} | {row['put_per_1k']} | "
            f"{row['requests_per_1k']} |"
        )
    print(f"webdataset / files images/s: {ratio:.2f}x")
    result = {
        "items": args.items,
        "shards": args.shards,
        "size": list(size),
        "runs": runs,
        "by_layout": by_layout,
        "webdataset_over_files_images_per_s": round(ratio, 3),
        "host": platform.node(),
        "cpus": 2,
    }
    out = Path(args.results) / "shard_outputs.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
