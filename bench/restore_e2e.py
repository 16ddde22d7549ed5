"""End-to-end restore against model-only, in one run, on synthetic photos: the GPU benchmark.

    python bench/restore_e2e.py --output-dir DIR [--models default,spl]
        [--megapixels 1,4,12] [--items-per-size 64] [--model-batch 64] [--precision auto]
        [--model-batches 1,8,32,64,128 | --no-sweep] [--holes free|marks] [--quick]
        [--threads-per-actor N] [--in-process [--workers N]]

One command (at most about 8 minutes on one GPU) that measures, on whatever device is here:
1. model-only: `spl` and the default model's network at 256², fp32 and bf16 (GPU), model
   batches 1-128, eager and compiled: images/s and achieved TFLOP/s (bench/model_throughput.py);
2. end-to-end, for each of `--models` on the same photos: `python -m jobs.restore` over JPEG
   photos on local disk (1-12 MP, PNG masks), one actor on a GPU and the job's own pool on CPU:
   steady windows/s against the same model's `Inpainter.infer` windows/s at the same model
   batch and precision, in the pool's layout, measured right after it on the same device;
   bytes to and from the actor per item (stats `infer_bytes`: windows, holes and predictions
   only) against the encoded input's bytes; GPU utilisation sampled by nvidia-smi.
   Where Ray is not installed (or with `--in-process`), the same stages run in threads of this
   process with an in-process actor: no object store, so it measures the stages and the
   actor's batching, not Ray's transport.
`--holes free` (the default) draws rectangles and strokes until 2-20 % of the photo is hole;
`--holes marks` stamps one watermark per photo as the archive evaluation does (text, logo,
strokes or blob in turn, `spl_model.stamps`, grown 2 px): the holes a watermark job meets.
`--quick` is the CPU check: 24 photos of 1 MP with `marks` holes, no sweep.
Prints a table and writes DIR/restore_e2e.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
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


def photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth gradient with blobs and grain: compresses like a photo, not like noise."""
    small = rng.integers(0, 255, (height // 64 + 2, width // 64 + 2, 3)).astype(np.uint8)
    import cv2

    base = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.integers(-12, 13, (height, width, 1), dtype=np.int16)
    return np.clip(base.astype(np.int16) + grain, 0, 255).astype(np.uint8)


def hole_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Rectangles and strokes until 2-20 % of the image is hole."""
    import cv2

    target = rng.uniform(0.02, 0.20) * height * width
    mask = np.zeros((height, width), np.uint8)
    while int(mask.astype(bool).sum()) < target:
        if rng.random() < 0.5:
            w, h = (int(v) for v in rng.integers(width // 40, width // 6, 2))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            mask[y : y + h, x : x + w] = 255
        else:
            points = rng.integers(0, [width, height], (4, 2)).astype(np.int32)
            thickness = int(max(3, min(height, width) // 60))
            cv2.polylines(mask, [points], False, 255, thickness)
    return mask


def mark_mask(rng: np.random.Generator, height: int, width: int, index: int) -> np.ndarray:
    """One watermark's hole, grown 2 px: text, logo, strokes and blob in turn."""
    from spl_model.stamps import KINDS, make_stamp

    kind = KINDS[index % len(KINDS)]
    return make_stamp((height, width), kind, rng).hole(grow=2).astype(np.uint8) * 255


def write_photos(
    folder: Path, megapixels: list[float], per_size: int, holes: str = "free", seed: int = 0
) -> dict:
    """`per_size` JPEG photos and PNG masks of each size, written by one thread per CPU
    (each item from its own seed, so the set does not depend on the thread count)."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir(parents=True)

    def write(item: tuple[int, float, int]) -> int:
        index, mp, i = item
        rng = np.random.default_rng([seed, index])
        width = round((mp * 1e6 * 4 / 3) ** 0.5)
        height = round(width * 3 / 4)
        key = f"{mp:g}mp-{i:03d}"
        path = folder / "images" / f"{key}.jpg"
        Image.fromarray(photo(rng, height, width)).save(path, quality=90)
        if holes == "free":
            mask = hole_mask(rng, height, width)
        else:
            mask = mark_mask(rng, height, width, i)
        Image.fromarray(mask).save(folder / "masks" / f"{key}.png")
        return path.stat().st_size

    items = [(mp, i) for mp in megapixels for i in range(per_size)]
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        sizes = list(pool.map(write, [(n, mp, i) for n, (mp, i) in enumerate(items)]))
    return {"items": len(items), "encoded_bytes": sum(sizes)}


class GpuSampler(threading.Thread):
    """GPU utilisation (%) from nvidia-smi every 0.2 s, when there is one."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self.stop.is_set():
            try:
                out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return
            self.stop.wait(0.2)


def model_file(name: str, folder: Path) -> str:
    import spl_model

    if name == "default":
        return str(spl_model.default_checkpoint())
    path = folder / f"{name}.safetensors"
    spl_model.save_generator(spl_model.build_generator(name), path)
    return str(path)


def model_only_windows(
    checkpoint: str, model_batch: int, precision: str, batches: int,
    copies: int = 1, threads: int | None = None,
) -> dict:
    """`Inpainter.infer` (the actor's device step) on 256² windows: windows/s of `copies`
    models run side by side (in threads, as the actors' model threads run) with `threads`
    torch threads each (None: torch's default)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    import spl_model

    default_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    inpainters = [spl_model.Inpainter(checkpoint, precision=precision) for _ in range(copies)]
    rng = np.random.default_rng(1)
    windows = rng.integers(0, 255, (model_batch, 256, 256, 3), np.uint8)
    holes = np.zeros((model_batch, 256, 256), bool)
    holes[:, 64:160, 48:200] = True

    def run(inpainter: spl_model.Inpainter, count: int) -> None:
        if threads:
            torch.set_num_threads(threads)  # per thread under OpenMP
        for _ in range(count):
            inpainter.infer(windows, holes)

    with ThreadPoolExecutor(copies) as pool:
        list(pool.map(run, inpainters, [1] * copies))  # warm-up (cudnn autotune)
        start = time.perf_counter()
        list(pool.map(run, inpainters, [batches] * copies))
        seconds = time.perf_counter() - start
    used = torch.get_num_threads()
    torch.set_num_threads(default_threads)
    return {
        "device": str(inpainters[0].device),
        "precision": inpainters[0].precision,
        "model_batch": model_batch,
        "copies": copies,
        "threads": used,
        "windows_per_s": copies * model_batch * batches / seconds,
    }


def end_to_end(
    folder: Path, checkpoint: str, model_batch: int, precision: str, threads: int | None
) -> dict:
    out = folder / "out"
    spec = job_spec(folder, checkpoint, model_batch, precision, threads)
    (folder / "job.yaml").write_text(yaml.safe_dump(spec))
    sampler = GpuSampler()
    sampler.start()
    with (folder / "job.log").open("wb") as log:
        code = subprocess.run(
            [sys.executable, "-m", "jobs.restore", "--config", str(folder / "job.yaml")],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])},
            stdout=log,
            stderr=subprocess.STDOUT,
        ).returncode
    sampler.stop.set()
    if code != 0:
        raise SystemExit(f"job failed ({code}); see {folder / 'job.log'}")
    summary = json.loads((out / "runs" / "bench.json").read_text())
    stats = pq.read_table(out / "stats").to_pylist()
    pool = summary["resources"]
    return {
        "mode": "ray", "actors": pool["actors"][1], "threads_per_actor": pool["threads_per_actor"],
        **metrics(stats, spec["batch_size"], summary["wall_s"], sampler),
    }


def end_to_end_in_process(
    folder: Path, checkpoint: str, model_batch: int, precision: str, threads: int | None,
    workers: int,
) -> dict:
    """The same stages without Ray (for a GPU machine that has no Ray): `plan.restore_units`
    on groups of blocks in `workers` threads, sending windows to one in-process `InferActor`
    whose asyncio loop runs in its own thread. No object store: it measures the stages and
    the actor's batching, not Ray's transport."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    from pipeline.config import RestoreConfig
    from pipeline.dataset import restore_units, stage_settings, units_per_task
    from pipeline.stages.infer import REQUEST_COLUMNS, merge_results, rows_to_infer
    from pipeline.stages.infer_actor import InferActor
    from pipeline.work import find_work

    config = RestoreConfig.from_dict(job_spec(folder, checkpoint, model_batch, precision, threads))
    work = find_work(config, run_id="bench")
    stages = stage_settings(config, work, run_id="bench")
    actor = InferActor(
        checkpoint, precision=precision, model_batch=model_batch, threads=threads
    )
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    class LocalPool:
        """`InferPool`'s two calls over the in-process actor."""

        def submit(self, block: pa.Table) -> tuple:
            rows = rows_to_infer(block)
            request = block.select(list(REQUEST_COLUMNS)).take(rows)
            call = asyncio.run_coroutine_threadsafe(actor.infer(request), loop) if rows else None
            return block, rows, call

        def collect(self, sent: tuple) -> pa.Table:
            block, rows, call = sent
            return merge_results(block, rows, call.result() if call else None)

    per_task = units_per_task(config, work.listing.layout)
    units = work.units_table()
    work.scratch.remove()
    groups = [units.slice(i, per_task) for i in range(0, units.num_rows, per_task)]

    def run_group(table: pa.Table) -> list[dict]:
        return [row for out in restore_units(table, stages, LocalPool()) for row in out.to_pylist()]

    sampler = GpuSampler()
    sampler.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        stats = [row for rows in pool.map(run_group, groups) for row in rows]
    wall = time.perf_counter() - start
    sampler.stop.set()
    mode = f"in-process, {workers} threads"
    return {
        "mode": mode, "actors": 1, "threads_per_actor": threads,
        **metrics(stats, config.batch_size, wall, sampler),
    }


def job_spec(
    folder: Path, checkpoint: str, model_batch: int, precision: str, threads: int | None
) -> dict:
    import torch

    return {
        **({"threads_per_actor": threads} if threads else {}),
        # one actor on the GPU; on CPU the job's own pool (one single-threaded actor per core)
        **({"actors": "1"} if torch.cuda.is_available() else {}),
        "images": str(folder / "images"),
        "masks": str(folder / "masks"),
        "output": str(folder / "out"),
        "checkpoint": checkpoint,
        "batch_size": 8,
        "model_batch": model_batch,
        "precision": precision,
        "num_cpus": os.cpu_count(),
        "output_format": "same",
        "progress_bars": False,
        "run_id": "bench",
    }


def metrics(stats: list[dict], batch: int, wall_s: float, sampler: GpuSampler) -> dict:
    """Steady-state rates (after the first block) and bytes per item from stats rows."""
    ok = [r for r in stats if r["status"] == "ok"]
    if not ok:
        errors = sorted({r["error"] for r in stats})[:3]
        raise SystemExit(f"no item was restored ({len(stats)} rows); errors: {errors}")
    finished = [r["finished_at"] for r in ok]
    windows = max(1, sum(r["crops"] for r in ok))
    util = sampler.samples
    return {
        "items": len(stats),
        "ok": len(ok),
        "errors": sorted({r["error"] for r in stats if r["status"] == "error"})[:5],
        "wall_s": wall_s,
        "wall_items_per_s": len(ok) / wall_s,
        "steady_items_per_s": steady_rate(finished, [1.0] * len(ok), skip=batch),
        "steady_windows_per_s": steady_rate(finished, [r["crops"] for r in ok], skip=batch),
        "windows_per_item": windows / max(1, len(ok)),
        "actor_bytes_per_item": sum(r["infer_bytes"] or 0 for r in ok) / max(1, len(ok)),
        "input_bytes_per_item": sum(r["input_bytes"] or 0 for r in ok) / max(1, len(ok)),
        "model_ms_per_window": sum(r["infer_ms"] or 0 for r in ok) / windows,
        "gpu_util_mean": float(np.mean(util)) if util else None,
        "gpu_util_samples": len(util),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--models", default="default", help="default, spl, spl-small (a list)")
    parser.add_argument("--megapixels", default="1,4,12")
    parser.add_argument("--items-per-size", type=int, default=64)
    parser.add_argument("--model-batch", type=int, help="default: by device (Inpainter)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--model-batches", default="1,8,32,64,128")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip part 1")
    parser.add_argument("--holes", choices=("free", "marks"), default="free")
    parser.add_argument("--threads-per-actor", type=int, help="the job's knob (default: its own)")
    parser.add_argument("--quick", action="store_true", help="CPU check: 1 MP, 24 marks, no sweep")
    parser.add_argument(
        "--in-process", action="store_true", help="no Ray (the default where Ray is missing)"
    )
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    args = parser.parse_args()
    import torch

    from spl_model.inpainter import MODEL_BATCH

    cuda = torch.cuda.is_available()
    model_batch = args.model_batch or MODEL_BATCH["cuda" if cuda else "cpu"]
    megapixels = [float(v) for v in args.megapixels.split(",")]
    per_size = args.items_per_size
    if args.quick:
        megapixels, per_size, args.holes, args.sweep = [1.0], 24, "marks", False
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / "restore_e2e.json"
    result: dict = {
        "machine": f"{platform.machine()} ({os.cpu_count()} CPUs)",
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "torch": torch.__version__,
        "model_batch": model_batch,
        "runs": [],
    }
    if args.sweep:  # model-only sweep: both networks, fp32 and bf16 (GPU), batches
        sweep = REPO / "bench" / "model_throughput.py"
        command = [sys.executable, str(sweep), "--models", "spl,default", "--cpu-models",
                   "default", "--batches", args.model_batches, "--cuda-batches",
                   args.model_batches, "--output", str(args.output_dir / "model_sweep.json")]
        if cuda:
            command.append("--no-cpu")
        subprocess.run(command, check=True, cwd=REPO)
        result["model_only_sweep"] = json.loads((args.output_dir / "model_sweep.json").read_text())
    in_process = args.in_process or importlib.util.find_spec("ray") is None
    with tempfile.TemporaryDirectory(prefix="spl-e2e-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        result["data"] = write_photos(folder / "data", megapixels, per_size, args.holes)
        result["data"]["holes"] = args.holes
        result["data"]["seconds"] = time.perf_counter() - t0
        for name in args.models.split(","):
            checkpoint = model_file(name, folder)
            shutil.rmtree(folder / "data" / "out", ignore_errors=True)
            if in_process:
                e2e = end_to_end_in_process(
                    folder / "data", checkpoint, model_batch, args.precision,
                    args.threads_per_actor, args.workers,
                )
            else:
                e2e = end_to_end(
                    folder / "data", checkpoint, model_batch, args.precision, args.threads_per_actor
                )
            # the model alone in the pool's layout (its actors' models side by side), and in one
            # process on every core (torch's default threads)
            batches = 20 if cuda else max(3, 16 // model_batch)  # 16 windows a model on CPU
            alone = model_only_windows(
                checkpoint, model_batch, args.precision, batches,
                copies=e2e["actors"], threads=e2e["threads_per_actor"],
            )
            one = model_only_windows(checkpoint, model_batch, args.precision, batches)
            ratio = (e2e["steady_windows_per_s"] or 0) / alone["windows_per_s"]
            run = {
                "model": name, "end_to_end": e2e, "model_only": alone,
                "model_only_one_process": one, "ratio": ratio,
            }
            result["runs"].append(run)
            path.write_text(json.dumps(result, indent=2, default=str))
            print_run(result, run, model_batch)
    print(f"wrote {path}")


def print_run(result: dict, run: dict, model_batch: int) -> None:
    e2e, alone = run["end_to_end"], run["model_only"]
    print(
        f"\n{result['gpu'] or result['machine']}, model {run['model']}, model batch "
        f"{model_batch}, end-to-end {e2e['mode']}"
    )
    print(f"{'measure':<40} {'value':>12}")
    one = run["model_only_one_process"]
    layout = f"{alone['copies']} x {alone['threads']} threads"
    lines = [
        (f"model-only windows/s, {layout}", alone["windows_per_s"]),
        (f"model-only windows/s, 1 x {one['threads']} threads", one["windows_per_s"]),
        ("end-to-end steady windows/s", e2e["steady_windows_per_s"] or float("nan")),
        ("end-to-end / model-only", run["ratio"]),
        ("end-to-end steady items/s", e2e["steady_items_per_s"] or float("nan")),
        ("windows per item", e2e["windows_per_item"]),
        ("input MB per item", e2e["input_bytes_per_item"] / 1e6),
        ("to/from the actor MB per item", e2e["actor_bytes_per_item"] / 1e6),
        ("model ms per window (in actor)", e2e["model_ms_per_window"]),
        ("GPU utilisation %", e2e["gpu_util_mean"] if e2e["gpu_util_mean"] is not None
         else float("nan")),
    ]  # fmt: skip
    for name, value in lines:
        print(f"{name:<40} {value:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
