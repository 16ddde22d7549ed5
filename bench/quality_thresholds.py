"""Where the report's thresholds come from: the no-reference scores of good and bad fills.

    python bench/quality_thresholds.py --images DIR [--max-side 2048] [--output FILE]

Each photo under DIR (never the evaluation set) gets one stamp of each kind (`spl_model.stamps`:
text, logo, strokes, object blob; the mask is the stamp grown by 2 px, as in the archive
protocol). Each hole is then "filled" five ways and scored by the stats row's no-reference
columns (`pipeline.stages.quality.no_reference`):
- good fills: `clean` (the photo itself: a perfect fill) and `telea` (OpenCV, radius 3);
- bad fills: `unrestored` (the mark left in place), `flat` (the ring's mean colour) and
  `shifted` (the true pixels 25 gray levels brighter: a colour-cast fill).
Prints each score's percentiles per fill, the good fills' 95th percentile with the share of bad
fills beyond it, and the share of each fill that the report's thresholds
(`pipeline.report.THRESHOLDS`) flag. Writes bench/results/quality_thresholds.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.report import THRESHOLDS, crosses
from pipeline.stages.quality import BAND, no_reference
from spl_model.masks import dilate
from spl_model.stamps import KINDS, font_files, make_stamp

RESULTS = Path(__file__).parent / "results" / "quality_thresholds.json"
SCORES = ("seam_ratio", "fill_delta", "fill_texture")
GOOD, BAD = ("clean", "telea"), ("unrestored", "flat", "shifted")


def fills(clean: np.ndarray, stamped: np.ndarray, hole: np.ndarray) -> dict[str, np.ndarray]:
    telea = cv2.inpaint(stamped, hole.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    ring = dilate(hole, BAND) & ~hole
    flat = clean.copy()
    flat[hole] = clean[ring].mean(axis=0).round().astype(np.uint8)
    shifted = clean.copy()
    shifted[hole] = np.clip(clean[hole].astype(np.int16) + 25, 0, 255).astype(np.uint8)
    return {"clean": clean, "telea": telea, "unrestored": stamped, "flat": flat, "shifted": shifted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True)
    parser.add_argument("--max-side", type=int, default=2048)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    fonts = font_files()
    photos = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in {".jpg", ".png"})
    scores: dict[str, dict[str, list[float]]] = {f: {s: [] for s in SCORES} for f in GOOD + BAD}
    for index, path in enumerate(photos):
        image = Image.open(path).convert("RGB")
        image.thumbnail((args.max_side, args.max_side))
        clean = np.asarray(image).copy()
        for kind in KINDS:
            rng = np.random.default_rng([index, KINDS.index(kind)])
            stamp = make_stamp(clean.shape[:2], kind, rng, fonts)
            hole = stamp.hole(2)
            for name, filled in fills(clean, stamp.apply(clean), hole).items():
                row = no_reference(filled, hole)
                for score in SCORES:
                    if row.get(score) is not None:
                        scores[name][score].append(float(row[score]))
        print(f"{index + 1}/{len(photos)} {path.name}", flush=True)
    table: dict[str, dict] = {}
    print(f"\n{len(photos)} photos x {len(KINDS)} stamps; percentiles p50 / p90 / p95 / p99")
    print("| score | fill | p50 | p90 | p95 | p99 |\n| --- | --- | --- | --- | --- | --- |")
    for score in SCORES:
        table[score] = {}
        for name in GOOD + BAD:
            values = np.array(scores[name][score])
            q = np.percentile(values, [50, 90, 95, 99]).round(2).tolist()
            table[score][name] = dict(zip(("p50", "p90", "p95", "p99"), q, strict=True))
            print(f"| {score} | {name} | " + " | ".join(f"{v:.2f}" for v in q) + " |")
        good = np.concatenate([scores[n][score] for n in GOOD])
        threshold = float(np.percentile(good, 95))
        caught = {n: float(np.mean(np.array(scores[n][score]) > threshold)) for n in BAD}
        table[score]["threshold_at_good_p95"] = round(threshold, 2)
        table[score]["bad_above_threshold"] = {n: round(v, 3) for n, v in caught.items()}
        print(
            f"  {score}: good fills' p95 {threshold:.2f}; bad fills above it: "
            + ", ".join(f"{n} {100 * v:.0f}%" for n, v in caught.items())
        )
    flagged: dict[str, float] = {}
    print("\nflagged by pipeline.report.THRESHOLDS (any score):")
    for name in GOOD + BAD:
        hits = np.zeros(len(scores[name]["seam_ratio"]), bool)
        for score, rules in THRESHOLDS.items():
            values = np.array(scores[name][score])
            if values.size != hits.size:
                continue  # a score that was None for some holes: not comparable row by row
            for op, line, _ in rules:
                hits |= crosses(values, op, line)
        flagged[name] = round(float(hits.mean()), 3)
        print(f"  {name}: {100 * flagged[name]:.0f}%")
    table["flagged"] = flagged
    result = {"photos": len(photos), "kinds": list(KINDS), "max_side": args.max_side,
              "images": str(args.images), "host": platform.node(), "scores": table}  # fmt: skip
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
