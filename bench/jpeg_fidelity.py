"""JPEG out of JPEG: the coefficient path (copy every DCT block outside the hole) against a full
re-encode (Pillow, `output_quality` 95, what the sink did before), on real photos at 1-12 MP.

    python bench/jpeg_fidelity.py [--sizes 1,4,12] [--quality 90] [--repeats 3]

Per size: a scikit-image photo scaled to N megapixels and saved as a camera-like JPEG (4:2:0 at
`--quality`), a 5 % hole filled (OpenCV Telea, as a stand-in for the model: the fill is the same
for both paths), then both encoders on the same restored pixels. Reports encode time per MP
(best of `--repeats`), output/input size, the share of 8x8 luma blocks that changed, and PSNR
outside the hole against the source's own decode (inf: bit-identical). Prints a table and
writes bench/results/jpeg_fidelity.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "jpeg_fidelity.json"


def photo(megapixels: float, quality: int) -> bytes:
    from PIL import Image
    from skimage import data

    base = Image.fromarray(data.astronaut())
    side = int((megapixels * 1e6 / (4 / 3)) ** 0.5)
    img = base.resize((int(side * 4 / 3), side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def restored_pixels(source: bytes) -> tuple[np.ndarray, np.ndarray]:
    import cv2
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(source)).convert("RGB"))
    height, width = rgb.shape[:2]
    hole = np.zeros((height, width), bool)
    h, w = int(height * 0.2), int(width * 0.25)  # 5 % of the image
    hole[height // 3 : height // 3 + h, width // 2 : width // 2 + w] = True
    filled = cv2.inpaint(rgb, hole.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return np.where(hole[..., None], filled, rgb), hole


def psnr_outside(a: bytes, b: bytes, hole: np.ndarray) -> float:
    from PIL import Image

    x = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"), float)[~hole]
    y = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), float)[~hole]
    mse = ((x - y) ** 2).mean()
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def changed_blocks(a: bytes, b: bytes) -> float:
    import jpeglib

    with tempfile.TemporaryDirectory() as folder:
        pa, pb = f"{folder}/a.jpg", f"{folder}/b.jpg"
        Path(pa).write_bytes(a)
        Path(pb).write_bytes(b)
        x, y = jpeglib.read_dct(pa), jpeglib.read_dct(pb)
        if x.Y.shape != y.Y.shape:
            return 1.0
        return float((x.Y != y.Y).any(axis=(2, 3)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,4,12")
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from PIL import Image

    from pipeline.stages.encode import encode
    from pipeline.stages.encode_jpeg import encode_keeping_blocks
    from pipeline.stages.restored import Restored

    rows = []
    for megapixels in (float(s) for s in args.sizes.split(",")):
        source = photo(megapixels, args.quality)
        restored, hole = restored_pixels(source)
        mp = restored.shape[0] * restored.shape[1] / 1e6
        for name in ("coefficients", "re-encode q95"):
            best, out = float("inf"), b""
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                if name == "coefficients":
                    whole = (0, 0, restored.shape[1], restored.shape[0])
                    item = Restored(restored, whole, restored, hole)
                    out = encode_keeping_blocks(source, item, 1, None).data
                else:
                    out = encode(Image.fromarray(restored), "jpg", 95)[0]
                best = min(best, time.perf_counter() - t0)
            rows.append(
                {
                    "megapixels": round(mp, 2),
                    "path": name,
                    "ms_per_mp": round(best * 1000 / mp, 1),
                    "size_ratio": round(len(out) / len(source), 4),
                    "blocks_changed": round(changed_blocks(source, out), 4),
                    "psnr_outside_hole": round(psnr_outside(source, out, hole), 2),
                }
            )
            print(rows[-1], flush=True)
    print()
    print(
        "| MP | path | encode ms/MP | output/input size | luma blocks changed "
        "| PSNR outside hole |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['megapixels']} | {r['path']} | {r['ms_per_mp']} | {r['size_ratio']} | "
            f"{100 * r['blocks_changed']:.1f} % | {r['psnr_outside_hole']} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"rows": rows, "quality": args.quality, "host": platform.node()}, indent=2)
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
