"""De-blending a semi-transparent mark against inpainting it, at 30, 50 and 70 % opacity.

    python bench/deblend.py --photos DIR [--crops 48] [--opacities 0.3,0.5,0.7] [--output FILE]

An archive stamped by one agency: `--crops` crops of 1280×960 from the photos under DIR (several
per photo, at fixed places) all get the same white text mark at the same place, at each
opacity, and are saved as JPEG q92. The mark is then detected from those images as
`spl watermark detect` does (`spl_model.watermark.estimate`: mask and opacity map). Every image
is restored inside the detected mask by the bundled model, and its light pixels de-blended with
the detected opacity (`spl_model.deblend`); beside it, the same with the true opacity, and
OpenCV Telea. Scores: PSNR over the detected hole against the clean crop. Prints a table and
writes bench/results/deblend.json.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from spl_model import Inpainter
from spl_model.deblend import deblend
from spl_model.engines import classical_inpaint
from spl_model.metrics import psnr
from spl_model.stamps import Stamp, font_files, make_stamp
from spl_model.watermark import estimate

RESULTS = Path(__file__).parent / "results" / "deblend.json"
SIZE = (960, 1280)  # height, width of every crop


def crops(folder: Path, count: int) -> list[np.ndarray]:
    """`count` crops of SIZE from the photos, spread over each photo at fixed places."""
    photos = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            img = Image.open(path).convert("RGB")
            img.thumbnail((2560, 2560))
            photos.append(np.asarray(img))
    out, h, w = [], *SIZE
    per = -(-count // len(photos))
    for photo in photos:
        ph, pw = photo.shape[:2]
        if ph < h or pw < w:
            continue
        for i in range(per):
            y = (ph - h) * (i % 3) // 2
            x = (pw - w) * ((i // 3) % 3) // 2
            out.append(photo[y : y + h, x : x + w])
    return out[:count]


def jpeg(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=92)
    return np.asarray(Image.open(buffer).convert("RGB"))


def psnr_in(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    return psnr(a[where], b[where])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True)
    parser.add_argument("--crops", type=int, default=48)
    parser.add_argument("--opacities", default="0.3,0.5,0.7")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    clean = crops(Path(args.photos), args.crops)
    mark = make_stamp(SIZE, "text", np.random.default_rng(4), font_files(), opacity=1.0)
    inpainter = Inpainter("default", device="cpu")
    rows = []
    for opacity in (float(v) for v in args.opacities.split(",")):
        stamp = Stamp("text", mark.alpha, (255, 255, 255), opacity)
        stamped = [jpeg(stamp.apply(c)) for c in clean]
        found = estimate(stamped, grow=2)
        if not found.found:
            rows.append({"opacity": opacity, "detected": False, "reason": found.reason})
            print(rows[-1], flush=True)
            continue
        x0, y0, x1, y1 = found.box
        hole = np.zeros(SIZE, bool)
        hole[y0:y1, x0:x1] = found.mask
        detected = np.zeros(SIZE, np.float32)
        detected[y0:y1, x0:x1] = found.alpha
        true_alpha = stamp.alpha * opacity * hole
        scores = {"fill": [], "fill + de-blend (detected α)": [], "fill + de-blend (true α)": [],
                  "opencv-telea": []}  # fmt: skip
        for image, truth in zip(stamped, clean, strict=True):
            fill = inpainter.inpaint([image], [hole])[0]
            scores["fill"].append(psnr_in(fill, truth, hole))
            out = deblend(image, fill, detected, (255, 255, 255))
            scores["fill + de-blend (detected α)"].append(psnr_in(out, truth, hole))
            out = deblend(image, fill, true_alpha, (255, 255, 255))
            scores["fill + de-blend (true α)"].append(psnr_in(out, truth, hole))
            telea = classical_inpaint("opencv-telea", image, hole)
            scores["opencv-telea"].append(psnr_in(telea, truth, hole))
        gain = np.array(scores["fill + de-blend (detected α)"]) - np.array(scores["fill"])
        rows.append({"opacity": opacity, "detected": True, "images": len(clean),
                     "hole_px": int(hole.sum()),
                     "alpha_error": float(np.abs(detected - true_alpha)[hole].mean()),
                     **{k: float(np.mean(v)) for k, v in scores.items()},
                     "deblend_wins": int((gain > 0).sum())})  # fmt: skip
        print(rows[-1], flush=True)
    names = ["fill", "fill + de-blend (detected α)", "fill + de-blend (true α)", "opencv-telea"]
    print("| opacity | " + " | ".join(names) + " | de-blend wins | mean α error |")
    print("|" + " --- |" * (len(names) + 3))
    for r in rows:
        if r["detected"]:
            cells = " | ".join(f"{r[n]:.2f}" for n in names)
            print(f"| {r['opacity']:.0%} | {cells} | {r['deblend_wins']} / {r['images']} "
                  f"| {r['alpha_error']:.3f} |")  # fmt: skip
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
