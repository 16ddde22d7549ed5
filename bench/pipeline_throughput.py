"""End-to-end pipeline images/s against model-only images/s, and peak memory at N and 10N items.

    python bench/pipeline_throughput.py [--config spl] [--items 8] [--batch 4] [--size 256]
                                        [--threads T] [--scale 10] [--memory-config spl-small]

Same model (random weights of `--config`, or an OpenCV engine), batch size, torch threads
and machine for both sides:
- model-only: `spl_model.Inpainter.inpaint` on images already decoded in memory, timed
  before and after the pipeline run (their mean is the reference);
- end-to-end: `python -m jobs.restore` on PNG pairs on local disk, one actor with the same
  threads: list, read, decode, infer, encode, write images + stats.
End-to-end is reported twice: `wall` (the whole job: Ray start, model load, all items) and
`steady` (the slope of items finished against time, first and last block left out: see
bench/steady.py),
plus the model's own time inside the actor (stats `infer_ms`), which separates slower model
calls (CPU contention with the pipeline's other processes) from pipeline stalls.
Peak memory is the summed PSS of the job's whole process tree (driver, raylet, workers), and
the driver's own peak RSS, sampled every 0.25 s; memory is "flat" when 10x the items needs
about the same. Prints a table and writes bench/results/pipeline_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml
from steady import steady_rate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
RESULTS = REPO / "bench" / "results" / "pipeline_throughput.json"
ENGINES = ("opencv-telea", "opencv-ns")


def make_model(config: str, folder: Path) -> dict:
    """Job keys selecting the model: an engine name, or random weights saved as a checkpoint."""
    if config in ENGINES:
        return {"engine": config}
    import spl_model

    path = folder / f"{config}.safetensors"
    spl_model.save_generator(spl_model.build_generator(config), path)
    return {"checkpoint": str(path)}


def picture(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx, yy, (xx + yy) / 2], -1) * (255 / size)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def hole(size: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[size // 4 : size * 5 // 8, size // 5 : size * 3 // 4] = True
    return mask


def write_pairs(folder: Path, count: int, size: int) -> None:
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir(parents=True)
    mask = Image.fromarray(hole(size).astype(np.uint8) * 255)
    for i in range(count):
        Image.fromarray(picture(i, size)).save(folder / "images" / f"{i:05d}.png")
        mask.save(folder / "masks" / f"{i:05d}.png")


def model_only(model: dict, count: int, size: int, batch: int, threads: int) -> dict:
    import torch

    import spl_model

    torch.set_num_threads(threads)
    source = model.get("engine") or spl_model.load_generator(model["checkpoint"])
    inpainter = spl_model.Inpainter(source, device="cpu", model_batch=batch)
    images = [picture(i, size) for i in range(count)]
    masks = [hole(size)] * count
    inpainter.inpaint(images[:batch], masks[:batch])  # warm-up
    start = time.perf_counter()
    for i in range(0, count, batch):
        inpainter.inpaint(images[i : i + batch], masks[i : i + batch])
    seconds = time.perf_counter() - start
    return {"images": count, "seconds": seconds, "images_per_s": count / seconds}


def _tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue
    tree, grew = {root}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sorted(tree)


def _kb(pid: int, path: str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak_tree_kb = self.peak_driver_kb = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pss = sum(_kb(p, "smaps_rollup", "Pss:") for p in _tree(self.pid))
            self.peak_tree_kb = max(self.peak_tree_kb, pss)
            self.peak_driver_kb = max(self.peak_driver_kb, _kb(self.pid, "status", "VmRSS:"))
            self.stop.wait(self.every_s)


def end_to_end(model: dict, folder: Path, batch: int, threads: int) -> dict:
    out = folder / "out"
    spec = {
        "images": str(folder / "images"),
        "masks": str(folder / "masks"),
        "output": str(out),
        **model,
        "batch_size": batch,
        "model_batch": batch,
        "actors": "1",
        "threads_per_actor": threads,
        "num_cpus": os.cpu_count(),
        "progress_bars": False,
        "run_id": "bench",
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec))
    log = (folder / "job.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.restore", "--config", str(folder / "job.yaml")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sampler = MemorySampler(proc.pid)
    sampler.start()
    code = proc.wait()
    sampler.stop.set()
    sampler.join()
    if code != 0:
        raise SystemExit(f"job failed ({code}); see {folder / 'job.log'}")
    summary = json.loads((out / "runs" / "bench.json").read_text())
    columns = ["finished_at", "infer_ms", "infer_bytes", "crops"]
    stats = pq.read_table(out / "stats", columns=columns)
    sent = [b for b in stats["infer_bytes"].to_pylist() if b]
    windows = sum(c or 0 for c in stats["crops"].to_pylist())
    done = sorted(stats["finished_at"].to_pylist())
    infer_s = sum(ms or 0.0 for ms in stats["infer_ms"].to_pylist()) / 1000
    ok = summary["counts"]["ok"]
    steady = steady_rate(done, [1.0] * len(done), skip=batch)
    return {
        "images": ok,
        "wall_s": summary["wall_s"],
        "wall_images_per_s": ok / summary["wall_s"],
        "steady_images_per_s": steady,
        "actor_model_images_per_s": ok / infer_s if infer_s else None,
        # bytes to and from the inference actor (windows, holes, predictions: nothing else)
        "actor_bytes_per_item": sum(sent) / len(sent) if sent else None,
        "actor_bytes_per_window_byte": sum(sent) / (windows * 2 * 256 * 256 * 3) if sent else None,
        "peak_tree_pss_mb": sampler.peak_tree_kb / 1024,
        "peak_driver_rss_mb": sampler.peak_driver_kb / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="spl", help="spl, spl-small, opencv-telea, opencv-ns")
    parser.add_argument("--items", type=int, default=12, help="N (throughput and memory)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=256, help="square image side (px)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--scale", type=int, default=10, help="memory at N and scale*N; 0: skip")
    parser.add_argument("--memory-config", default=None, help="model for the memory runs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    memory_config = args.memory_config or args.config

    with tempfile.TemporaryDirectory(prefix="spl-bench-") as tmp:
        tmp = Path(tmp)
        model = make_model(args.config, tmp)
        write_pairs(tmp / "n", args.items, args.size)
        # model-only before and after the pipeline run: a shared machine's load drifts
        before = model_only(model, args.items, args.size, args.batch, args.threads)
        e2e = end_to_end(model, tmp / "n", args.batch, args.threads)
        after = model_only(model, args.items, args.size, args.batch, args.threads)
        alone = {
            "images": args.items,
            "images_per_s": (before["images_per_s"] + after["images_per_s"]) / 2,
            "before_images_per_s": before["images_per_s"],
            "after_images_per_s": after["images_per_s"],
        }
        memory = []
        if args.scale:
            mem_model = model if memory_config == args.config else make_model(memory_config, tmp)
            first = e2e if memory_config == args.config else None
            for count in (args.items, args.items * args.scale):
                if first is not None and count == args.items:
                    memory.append({"items": count, **first})
                    continue
                folder = tmp / f"mem-{count}"
                write_pairs(folder, count, args.size)
                memory.append(
                    {"items": count, **end_to_end(mem_model, folder, args.batch, args.threads)}
                )

    steady = e2e["steady_images_per_s"]
    result = {
        "machine": f"{platform.machine()} {platform.processor()} ({os.cpu_count()} CPUs)",
        "load_average_at_end": os.getloadavg(),
        "config": args.config,
        "batch": args.batch,
        "size": args.size,
        "threads": args.threads,
        "model_only": alone,
        "end_to_end": e2e,
        "ratio_wall": e2e["wall_images_per_s"] / alone["images_per_s"],
        "ratio_steady": steady / alone["images_per_s"] if steady else None,
        "memory_config": memory_config,
        "memory": memory,
    }
    print(
        f"config {args.config}, batch {args.batch}, {args.size}px, {args.threads} threads, "
        f"{result['machine']}"
    )
    print(f"{'measure':<26} {'items':>6} {'img/s':>8} {'vs model':>9}")
    rows = [
        ("model-only (Inpainter)", alone["images"], alone["images_per_s"], 1.0),
        ("end-to-end, wall", e2e["images"], e2e["wall_images_per_s"], result["ratio_wall"]),
        (
            "end-to-end, steady",
            e2e["images"],
            steady or float("nan"),
            result["ratio_steady"] or float("nan"),
        ),
        (
            "model inside the actor",
            e2e["images"],
            e2e["actor_model_images_per_s"] or float("nan"),
            (e2e["actor_model_images_per_s"] or float("nan")) / alone["images_per_s"],
        ),
    ]
    for name, items, rate, ratio in rows:
        print(f"{name:<26} {items:>6} {rate:>8.3f} {ratio:>9.2f}")
    print(
        f"(model-only {before['images_per_s']:.3f} img/s before the pipeline run, "
        f"{after['images_per_s']:.3f} after; load average {os.getloadavg()[0]:.1f})"
    )
    if e2e["actor_bytes_per_item"]:
        print(
            f"to and from the actor: {e2e['actor_bytes_per_item'] / 1e6:.2f} MB per item, "
            f"{e2e['actor_bytes_per_window_byte']:.3f}x the window and prediction bytes"
        )
    if memory:
        print(f"\nmemory ({memory_config}) {'items':>6} {'tree PSS MB':>12} {'driver RSS MB':>14}")
        for row in memory:
            print(
                f"{'':<19} {row['items']:>6} {row['peak_tree_pss_mb']:>12.0f} "
                f"{row['peak_driver_rss_mb']:>14.0f}"
            )
        result["memory_ratio"] = memory[-1]["peak_tree_pss_mb"] / memory[0]["peak_tree_pss_mb"]
        print(f"{'':<19} {args.scale}N/N peak tree PSS: {result['memory_ratio']:.2f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
