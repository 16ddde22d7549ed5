"""Watermark detection time per 1k images: the estimate alone and the whole `spl watermark
detect` (listing, Ray read + decode tasks, estimate, outputs) on a stamped archive on disk.

    python bench/watermark_detect.py [--counts 150,600] [--output FILE]

Prints a table and writes bench/results/watermark_detect.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the stamped set lives in tests/

from pipeline.watermark import DetectConfig, detect_watermark
from spl_model.watermark import estimate
from tests.watermarks import SIZES, stamp

RESULTS = Path(__file__).parent / "results" / "watermark_detect.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="150,600")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    import ray

    ray.init(log_to_driver=False)  # started before the clock: a cluster is already up
    rows = []
    print(f"{'images':>7} {'estimate s':>11} {'detect s':>9} {'detect s / 1k':>14} {'found':>6}")
    for count in (int(c) for c in args.counts.split(",")):
        stamped = stamp(count)
        start = time.perf_counter()
        for size in SIZES:
            estimate([im for im in stamped.images if im.shape[:2] == size])
        estimate_s = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            for i, image in enumerate(stamped.images):
                Image.fromarray(image).save(f"{tmp}/{i:05d}.jpg", quality=92)
            start = time.perf_counter()
            found = detect_watermark(
                DetectConfig(images=tmp, output=f"{tmp}/out", sample=count)
            ).found
            detect_s = time.perf_counter() - start
        rows.append({"images": count, "sizes": len(SIZES), "estimate_s": estimate_s,
                     "detect_s": detect_s, "detect_s_per_1k": detect_s / count * 1000,
                     "found": found})  # fmt: skip
        print(f"{count:>7} {estimate_s:>11.2f} {detect_s:>9.2f} "
              f"{detect_s / count * 1000:>14.1f} {found!s:>6}")  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"rows": rows}, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
