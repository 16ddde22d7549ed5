"""Calibrate a residual model's edge gain on held-out photos (never the evaluation set).

    python bench/edge_gain.py --images DIR [--gains 1,0.75,0.5] [--kinds text,blob]
                              [--max-side 2560] [--limit N] [--output FILE]

Each photo under DIR gets one stamp of each kind (`spl_model.stamps`, seeded by the photo's
index), is saved as JPEG q92, and is restored by the bundled model (`Inpainter`, the same
planner as the pipeline) once per gain, and by OpenCV Telea. Prints mean PSNR inside the hole
per kind and gain, the gain against Telea and the photos won, and writes
bench/results/edge_gain.json. The bundled model's `edge_gain` is the gain that does best over
all kinds here (spl_model/generator.py explains the gain).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from spl_model import Inpainter, default_checkpoint, load_generator, metrics
from spl_model.stamps import font_files, make_stamp

RESULTS = Path(__file__).parent / "results" / "edge_gain.json"


def stamped_jpeg(clean: np.ndarray, kind: str, seed: list[int], fonts) -> tuple:
    stamp = make_stamp(clean.shape[:2], kind, np.random.default_rng(seed), fonts)
    buffer = io.BytesIO()
    Image.fromarray(stamp.apply(clean)).save(buffer, "JPEG", quality=92)
    return np.asarray(Image.open(buffer).convert("RGB")), stamp.hole(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True)
    parser.add_argument("--gains", default="1,0.75,0.5")
    parser.add_argument("--kinds", default="text,blob")
    parser.add_argument("--max-side", type=int, default=2560)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    gains = [float(g) for g in args.gains.split(",")]
    kinds = args.kinds.split(",")
    generator = load_generator(str(default_checkpoint()), device="cpu")
    base = generator.config
    inpainter = Inpainter(generator, device="cpu")
    fonts = font_files()
    photos = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in {".jpg", ".png"})
    photos = photos[: args.limit]
    scores: dict[str, dict[str, list[float]]] = {k: {} for k in kinds}
    began = time.perf_counter()
    for index, path in enumerate(photos):
        image = Image.open(path).convert("RGB")
        image.thumbnail((args.max_side, args.max_side))
        clean = np.asarray(image).copy()
        for kind in kinds:
            stamped, hole = stamped_jpeg(clean, kind, [7, index, kinds.index(kind)], fonts)
            telea = cv2.inpaint(stamped, hole.astype(np.uint8), 3, cv2.INPAINT_TELEA)
            scores[kind].setdefault("telea", []).append(metrics.psnr(telea[hole], clean[hole]))
            for gain in gains:
                generator.config = dataclasses.replace(base, edge_gain=gain)
                restored = inpainter.inpaint([stamped], [hole])[0]
                scores[kind].setdefault(f"gain {gain:g}", []).append(
                    metrics.psnr(restored[hole], clean[hole])
                )
        print(f"{index + 1}/{len(photos)} {path.name} ({time.perf_counter() - began:.0f} s)",
              flush=True)  # fmt: skip
    generator.config = base
    table: dict[str, dict] = {}
    print(f"\nmean PSNR in the hole (dB), {len(photos)} photos, edge_px {list(base.edge_px)}")
    print("| kind | engine | PSNR | − Telea | photos won over Telea |")
    print("| --- | --- | --- | --- | --- |")
    for kind in kinds:
        telea = np.array(scores[kind]["telea"])
        table[kind] = {}
        for name, values in scores[kind].items():
            values = np.array(values)
            row = {"psnr": round(float(values.mean()), 2),
                   "over_telea": round(float((values - telea).mean()), 2),
                   "won": int((values > telea).sum())}  # fmt: skip
            table[kind][name] = row
            print(f"| {kind} | {name} | {row['psnr']:.2f} | {row['over_telea']:+.2f} | "
                  f"{row['won']} / {len(values)} |")  # fmt: skip
    result = {"photos": len(photos), "images": args.images, "max_side": args.max_side,
              "edge_px": list(base.edge_px), "host": platform.node(), "scores": table}  # fmt: skip
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
