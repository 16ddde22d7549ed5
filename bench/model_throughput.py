"""Model-only throughput, eager and torch.compile'd side by side, through `Inpainter.infer` (what
an inference actor runs: uint8 windows in, uint8 predictions out, copies included).

    python bench/model_throughput.py [--models spl,default] [--cpu-models default]
                                     [--batches 1,8] [--cuda-batches 1,8,32,64,128] [--runs 3]
                                     [--no-cpu] [--no-compile] [--output FILE]

Models: a generator config (`spl`, `spl-small`, random weights) or `default` (the bundled
model). Rows: fp32 on the CPU; fp32 and bf16 on CUDA when present; each eager and compiled.
A compiled model is built as the actor builds it (model batch = the largest batch, warmed up on
its fixed batch shapes; a batch between two shapes runs padded, as in the actor) and its warm-up
seconds are recorded. `x eager` is compiled / eager images/s at the same batch, measured in the
same run. Prints a table and writes bench/results/model_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from spl_model import Inpainter, build_generator, default_checkpoint, load_generator

RESULTS = Path(__file__).parent / "results" / "model_throughput.json"


def generator(name: str) -> torch.nn.Module:
    if name == "default":
        return load_generator(default_checkpoint())
    return build_generator(name).eval()


def flops_per_image(model: torch.nn.Module) -> float:
    image, mask = torch.rand(1, 3, 256, 256), torch.zeros(1, 1, 256, 256)
    mask[:, :, 64:160, 48:200] = 1
    masked_512 = F.interpolate(image * (1 - mask) + mask, 512)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(image, mask, masked_512, F.interpolate(mask, 512))
    return counter.get_total_flops()


def windows(batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(batch)
    holes = np.zeros((batch, 256, 256), bool)
    holes[:, 64:160, 48:200] = True
    return rng.integers(0, 256, (batch, 256, 256, 3), dtype=np.uint8), holes


def seconds_per_batch(inpainter: Inpainter, batch: int, runs: int) -> float:
    """Median seconds of `infer` over `runs` timed calls after one untimed call."""
    images, holes = windows(batch)
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        inpainter.infer(images, holes)  # returns host memory: the device work is done
        if i:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="spl,default", help="models measured on CUDA")
    parser.add_argument("--cpu-models", default="default", help="models measured on the CPU")
    parser.add_argument("--batches", default="1,8", help="CPU batches")
    parser.add_argument("--cuda-batches", default="1,8,32,64,128")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-cpu", dest="cpu", action="store_false", help="CUDA rows only")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager only")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    targets = []  # (device, precision, models, batches)
    if args.cpu:
        targets.append(("cpu", "fp32", args.cpu_models, args.batches))
    if torch.cuda.is_available():
        for precision in ("fp32", "bf16"):
            targets.append(("cuda", precision, args.models, args.cuda_batches))
    modes = (False, True) if args.compile else (False,)
    print(
        f"{'model':<10} {'device':<24} {'prec':<5} {'mode':<8} {'batch':>5} {'img/s':>9} "
        f"{'TFLOP/s':>8} {'x eager':>7} {'warmup s':>8}"
    )
    rows: list[dict] = []
    flops: dict[str, float] = {}
    for device, precision, models, batch_list in targets:
        batches = [int(b) for b in batch_list.split(",")]
        name = torch.cuda.get_device_name() if device == "cuda" else platform.processor()
        for model_name in models.split(","):
            if model_name not in flops:
                flops[model_name] = flops_per_image(generator(model_name))
            eager_rate: dict[int, float] = {}
            for compiled in modes:
                inpainter = Inpainter(
                    generator(model_name),
                    device=device,
                    precision=precision,
                    model_batch=max(batches),
                    compile=compiled,
                )
                warmup = inpainter.warm_up()
                mode = "compiled" if inpainter.compiled else "eager"
                if compiled and not inpainter.compiled:
                    mode = "failed"  # the compiler failed; the log says why
                for batch in batches:
                    row = {
                        "model": model_name,
                        "config": (
                            "spl-small (bundled weights)" if model_name == "default" else model_name
                        ),
                        "device": f"{device} ({name or platform.machine()})",
                        "threads": torch.get_num_threads(),
                        "precision": precision,
                        "mode": mode,
                        "batch": batch,
                        "padded_to": inpainter.padded_batch(batch),
                        "warmup_s": round(warmup, 2),
                        "gflop_per_image": flops[model_name] / 1e9,
                    }
                    try:
                        seconds = seconds_per_batch(inpainter, batch, args.runs)
                    except torch.OutOfMemoryError:
                        torch.cuda.empty_cache()
                        rows.append({**row, "error": "out of memory"})
                        print(f"{model_name:<10} {device:<24} {precision:<5} {mode:<8} {batch:>5}"
                              " out of memory")  # fmt: skip
                        continue
                    rate = batch / seconds
                    row["images_per_s"] = rate
                    row["achieved_tflop_per_s"] = flops[model_name] * rate / 1e12
                    if not compiled:
                        eager_rate[batch] = rate
                    elif batch in eager_rate:
                        row["speedup_vs_eager"] = rate / eager_rate[batch]
                    rows.append(row)
                    ratio = f"{row['speedup_vs_eager']:.2f}" if "speedup_vs_eager" in row else ""
                    print(
                        f"{model_name:<10} {row['device'][:24]:<24} {precision:<5} {mode:<8} "
                        f"{batch:>5} {rate:>9.2f} {row['achieved_tflop_per_s']:>8.3f} "
                        f"{ratio:>7} {warmup if compiled else 0:>8.1f}",
                        flush=True,
                    )
                    args.output.parent.mkdir(parents=True, exist_ok=True)
                    args.output.write_text(
                        json.dumps({"torch": torch.__version__, "rows": rows}, indent=2)
                    )
                del inpainter
                if device == "cuda":
                    torch.cuda.empty_cache()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
