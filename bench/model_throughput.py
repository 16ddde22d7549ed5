"""Model-only throughput of the SPL generator at 256²: images/s, FLOPs per image, FLOP rate.

    python bench/model_throughput.py [--configs spl,spl-small] [--batches 1,4,8] [--runs 3]
                                     [--no-cpu] [--compile] [--output FILE]

Runs fp32 on the CPU, and fp32 and bf16 (autocast, channels_last, cudnn.benchmark) on a GPU when
one is present; `--compile` adds torch.compile'd GPU rows. A batch that does not fit in memory
is recorded as such. Prints a table and writes bench/results/model_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from spl_model import build_generator

RESULTS = Path(__file__).parent / "results" / "model_throughput.json"


def inputs(batch: int, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, 256, 256, generator=g)
    mask = torch.zeros(batch, 1, 256, 256)
    mask[:, :, 64:160, 48:200] = 1
    masked_512 = F.interpolate(image * (1 - mask) + mask, 512)
    tensors = (image, mask, masked_512, F.interpolate(mask, 512))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return tuple(t.to(device).contiguous(memory_format=fmt) for t in tensors)


def flops_per_image(model: torch.nn.Module, device: torch.device) -> float:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(*inputs(1, device, False))
    return counter.get_total_flops()


def measure(model, device, batch: int, precision: str, runs: int) -> float:
    """Median seconds per batch over `runs` timed runs after one warm-up."""
    channels_last = device.type == "cuda"
    args = inputs(batch, device, channels_last)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    cast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
    times = []
    with torch.inference_mode(), cast:
        for i in range(runs + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(*args)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:  # the first run is the warm-up
                times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="spl", help="generator configs (spl, spl-small)")
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-cpu", dest="cpu", action="store_false", help="GPU rows only")
    parser.add_argument("--compile", action="store_true", help="add torch.compile'd GPU rows")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    targets = [(torch.device("cpu"), "fp32", False)] if args.cpu else []
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        cuda = torch.device("cuda")
        targets += [(cuda, "fp32", False), (cuda, "bf16", False)]
        if args.compile:
            targets.append((cuda, "bf16", True))
    print(f"{'config':<10} {'device':<26} {'prec':<9} {'batch':>5} {'img/s':>9} {'TFLOP/s':>8}")
    rows = []
    for config in args.configs.split(","):
        flops = flops_per_image(build_generator(config).eval(), torch.device("cpu"))
        for device, precision, compiled in targets:
            model = build_generator(config).eval().to(device)
            if device.type == "cuda":
                model = model.to(memory_format=torch.channels_last)
            if compiled:
                model = torch.compile(model)
            name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor()
            for batch in (int(b) for b in args.batches.split(",")):
                row = {
                    "config": config,
                    "device": f"{device.type} ({name or platform.machine()})",
                    "threads": torch.get_num_threads(),
                    "precision": precision + ("+compile" if compiled else ""),
                    "batch": batch,
                    "gflop_per_image": flops / 1e9,
                }
                try:
                    seconds = measure(model, device, batch, precision, args.runs)
                except torch.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    rows.append({**row, "error": "out of memory"})
                    print(f"{config:<10} {row['device'][:26]:<26} {row['precision']:<9} "
                          f"{batch:>5} out of memory")  # fmt: skip
                    continue
                row["images_per_s"] = batch / seconds
                row["achieved_tflop_per_s"] = flops * batch / seconds / 1e12
                rows.append(row)
                print(
                    f"{config:<10} {row['device'][:26]:<26} {row['precision']:<9} {batch:>5} "
                    f"{row['images_per_s']:>9.2f} {row['achieved_tflop_per_s']:>8.2f}",
                    flush=True,
                )
                args.output.parent.mkdir(parents=True, exist_ok=True)
                args.output.write_text(
                    json.dumps({"torch": torch.__version__, "rows": rows}, indent=2)
                )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
