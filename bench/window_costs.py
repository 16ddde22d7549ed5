"""Windows and model time per item: a 1 % text hole and a 5 % object blob at 2, 12 and 24 MP.

    python bench/window_costs.py [--sizes 2,12,24] [--photo FILE] [--output FILE]

For each size, a photo (scikit-image's astronaut unless `--photo`, resized to that many
megapixels) gets text stamps (`spl_model.stamps`, one line after another until the hole
reaches 1 %) and, separately, one opaque blob of 5 %. Each item is restored by the bundled model
on this machine's CPU (`Inpainter.inpaint_with_info`). Beside it, in the same run, the planner
of the previous release is replayed (one window per hole group, 3× its extent): its windows
per item, and its model time estimated at the measured seconds per window. Prints a table and
writes bench/results/window_costs.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage import data

from spl_model import Inpainter
from spl_model.crops import MODEL_SIZE, _groups, plan_windows
from spl_model.stamps import font_files, make_stamp

RESULTS = Path(__file__).parent / "results" / "window_costs.json"


def text_hole(shape: tuple[int, int], target: float, seed: int) -> np.ndarray:
    """Text stamps added one by one until the hole covers `target` of the image."""
    rng = np.random.default_rng(seed)
    fonts = font_files()
    hole = np.zeros(shape, bool)
    while hole.mean() < target:
        hole |= make_stamp(shape, "text", rng, fonts, opacity=0.7).hole(2)
    return hole


def blob_hole(shape: tuple[int, int], target: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    for _ in range(100):
        hole = make_stamp(shape, "blob", rng).hole(0)
        if abs(hole.mean() - target) < 0.01:
            return hole
    return hole


def previous_windows(hole: np.ndarray) -> tuple[int, float]:
    """Windows and the largest scale of the previous planner (one window per group, 3×)."""
    height, width = hole.shape
    count, scale = 0, 0.0
    for ys, xs, _thickness in _groups(hole, 32):
        extent = max(int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1)
        side = min(max(math.ceil(3 * extent), MODEL_SIZE), max(height, width))
        count, scale = count + 1, max(scale, side / MODEL_SIZE)
    return count, scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,12,24", help="megapixels, comma-separated")
    parser.add_argument("--photo", default=None)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = cv2.imread(args.photo)[..., ::-1] if args.photo else data.astronaut()
    inpainter = Inpainter("default", device="cpu")
    rows = []
    for mp in (float(v) for v in args.sizes.split(",")):
        scale = math.sqrt(mp * 1e6 / (base.shape[0] * base.shape[1]))
        size = (round(base.shape[1] * scale), round(base.shape[0] * scale))
        photo = np.ascontiguousarray(cv2.resize(base, size, interpolation=cv2.INTER_CUBIC))
        for kind, hole in (
            ("text 1 %", text_hole(photo.shape[:2], 0.01, 1)),
            ("blob 5 %", blob_hole(photo.shape[:2], 0.05, 2)),
        ):
            started = time.perf_counter()
            plan = plan_windows(hole, refine=inpainter.refines)
            plan_ms = (time.perf_counter() - started) * 1e3
            _, info = inpainter.inpaint_with_info([photo], [hole])[0]
            per_window = info["infer_ms"] / max(info["crops"], 1)
            old_windows, old_scale = previous_windows(hole)
            rows.append({
                "megapixels": round(photo.shape[0] * photo.shape[1] / 1e6, 1),
                "hole": kind,
                "hole_ratio": float(hole.mean()),
                "windows": info["crops"],
                "coarse_windows": len(plan.first),
                "crop_scale": info["crop_scale"],
                "model_ms": info["infer_ms"],
                "plan_ms": plan_ms,
                "previous_windows": old_windows,
                "previous_crop_scale": old_scale,
                "previous_model_ms_est": old_windows * per_window,
            })  # fmt: skip
            print(rows[-1], flush=True)
    header = ("| MP | hole | windows (previous) | crop_scale (previous) | model ms on this CPU "
              "(previous, est.) | planning ms |")  # fmt: skip
    print(header + "\n|" + " --- |" * 6)
    for r in rows:
        print(
            f"| {r['megapixels']} | {r['hole']} ({r['hole_ratio'] * 100:.2f} %) | "
            f"{r['windows']} ({r['previous_windows']}) | {r['crop_scale']:.2f} "
            f"({r['previous_crop_scale']:.2f}) | {r['model_ms']:.0f} "
            f"({r['previous_model_ms_est']:.0f}) | {r['plan_ms']:.0f} |"
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}  # fmt: skip
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
