"""Calibrate a residual model's edge gain on held-out photos (never the evaluation set).

    python bench/edge_gain.py --images DIR [--gains 1,0.75,0.5] [--thin none,6:12]
                              [--kinds text,blob] [--crops PAIRS] [--max-side 2560]
                              [--limit N] [--output FILE]

Each photo under DIR gets one stamp of each kind (`spl_model.stamps`, seeded by the photo's
index), is saved as JPEG q92, and is restored by the bundled model (`Inpainter`, the same
planner as the pipeline) once per variant (each gain, with each `edge_thin`: `none`, or
FULL:NONE), and by OpenCV Telea. With `--crops` (the `inputs/pairs.parquet` that `spl evaluate`
writes: 256² crops, masks and references), each variant also restores those crops and is
scored over the whole crop per hole-ratio decile, as the crop table is. Prints mean PSNR inside
the hole per kind and variant, the difference to Telea and the photos won, and writes
bench/results/edge_gain.json. The bundled model's `edge_gain` and `edge_thin` are the variant
that does best over all kinds here without costing the crops more than 0.1 dB
(spl_model/generator.py explains the gain).
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
    parser.add_argument("--thin", default="none", help="edge_thin values: none or FULL:NONE")
    parser.add_argument("--crops", help="spl evaluate's inputs/pairs.parquet (256² crops)")
    parser.add_argument("--kinds", default="text,blob")
    parser.add_argument("--max-side", type=int, default=2560)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    gains = [float(g) for g in args.gains.split(",")]
    thins = [None if t == "none" else tuple(map(int, t.split(":"))) for t in args.thin.split(",")]
    variants = {
        f"gain {g:g}" + (f" thin {t[0]}:{t[1]}" if t else ""): (g, t)
        for g in gains
        for t in (thins if g < 1 else [None])  # a gain of 1 changes nothing to keep thin
    }
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
            for name, (gain, thin) in variants.items():
                generator.config = dataclasses.replace(base, edge_gain=gain, edge_thin=thin)
                restored = inpainter.inpaint([stamped], [hole])[0]
                scores[kind].setdefault(name, []).append(metrics.psnr(restored[hole], clean[hole]))
        print(f"{index + 1}/{len(photos)} {path.name} ({time.perf_counter() - began:.0f} s)",
              flush=True)  # fmt: skip
    crops = crop_table(generator, inpainter, variants, args.crops) if args.crops else {}
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
    if crops:
        print("\nthe crop table's PSNR (dB, whole 256² crop) per hole ratio")
        print("| variant | " + " | ".join(crops[next(iter(crops))]) + " |")
        for name, row in crops.items():
            print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row.values()) + " |")
    result = {"photos": len(photos), "images": args.images, "max_side": args.max_side,
              "edge_px": list(base.edge_px), "host": platform.node(), "scores": table,
              "crops": crops}  # fmt: skip
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))


def crop_table(generator, inpainter, variants: dict, pairs: str) -> dict[str, dict[str, float]]:
    """Mean PSNR over each whole crop of `spl evaluate`'s pairs, per variant and hole ratio."""
    import pyarrow.parquet as pq

    def array(data: bytes, mode: str) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert(mode))

    rows = pq.read_table(pairs).to_pylist()
    items = [(array(r["image"], "RGB"), array(r["mask"], "L") > 127, array(r["reference"], "RGB"))
             for r in rows]  # fmt: skip
    base, out = generator.config, {}
    for name, (gain, thin) in variants.items():
        generator.config = dataclasses.replace(base, edge_gain=gain, edge_thin=thin)
        by_ratio: dict[int, list[float]] = {}
        for image, hole, reference in items:
            restored = inpainter.inpaint([image], [hole])[0]
            decile = min(int(hole.mean() * 10), 5)
            by_ratio.setdefault(decile, []).append(metrics.psnr(restored, reference))
        out[name] = {f"{10 * d}-{10 * d + 10}%": round(float(np.mean(v)), 2)
                     for d, v in sorted(by_ratio.items())}  # fmt: skip
        print(f"crops: {name} done", flush=True)
    generator.config = base
    return out


if __name__ == "__main__":
    main()
