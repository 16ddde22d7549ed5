"""CPU milliseconds per photo in each restore stage, on one core, with an identity model.

    python bench/stage_costs.py [--megapixels 1,4,12,24] [--formats jpeg,progressive,png]
                                [--holes text,blob] [--repeats 3] [--photo FILE]
                                [--output bench/results/stage_costs.json]

Each photo (one of the project's photos, resized to N MP) is saved as baseline 4:2:0 JPEG q90,
progressive JPEG q90 or PNG, with a text watermark hole (near 1 % of the image,
`spl_model.stamps`) or an opaque blob (near 5 %), and goes through the real stages of one
restore task (`pipeline.dataset.stage_settings` of a real job spec, `output_format: same`) on local
disk: read, decode, prepare, infer, finish, write. The model is the identity (each window's
prediction is the window itself, assembled as the actor's answer), so only our CPU work counts.
Each stage is timed as the thread's CPU time with OpenCV and torch on one thread; the median
of `--repeats` runs. Beside each JPEG it times the floor, in the same run: jpeglib's
`read_dct` + `load` + `write_dct` of the whole file (one entropy decode and encode) and a full
Pillow decode. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
from PIL import Image

STAGES = ("read", "decode", "prepare", "infer", "finish", "write")
RESULTS = Path(__file__).parent / "results" / "stage_costs.json"
DEFAULT_PHOTO = Path(__file__).parents[1] / "data" / "photos" / "train"


def source_photo(path: Path | None) -> np.ndarray:
    """A real photo: `--photo`, else the first of the project's training photos (`make data`),
    else scikit-image's astronaut."""
    if path is None and DEFAULT_PHOTO.is_dir():
        path = sorted(DEFAULT_PHOTO.glob("*.jpg"))[0]
    if path is not None:
        return np.asarray(Image.open(path).convert("RGB"))
    from skimage import data

    return data.astronaut()


def at_megapixels(photo: np.ndarray, megapixels: float) -> np.ndarray:
    h, w = photo.shape[:2]
    scale = (megapixels * 1e6 / (h * w)) ** 0.5
    size = (round(w * scale) // 16 * 16, round(h * scale) // 16 * 16)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4
    return cv2.resize(photo, size, interpolation=interp)


def hole_for(shape: tuple[int, int], kind: str) -> np.ndarray:
    """A text watermark's hole (grown 2 px, as the archive protocol grows it) near 1 % of the
    image, or a blob near 5 %: of the first 16 seeded stamps, the one closest to that area."""
    from spl_model.stamps import make_stamp

    kind, target = ("text", 0.01) if kind == "text" else ("blob", 0.05)
    holes = [make_stamp(shape, kind, np.random.default_rng(s)).hole(grow=2) for s in range(16)]
    return min(holes, key=lambda hole: abs(hole.mean() - target))


def save(image: np.ndarray, hole: np.ndarray, folder: Path, fmt: str) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    pil = Image.fromarray(image)
    if fmt == "png":
        pil.save(folder / "images" / "photo.png", compress_level=6)
    else:
        pil.save(folder / "images" / "photo.jpg", quality=90, subsampling=2,
                 progressive=fmt == "progressive")  # fmt: skip
    Image.fromarray(hole.astype(np.uint8) * 255).save(folder / "masks" / "photo.png")


def cpu_ms(fn, *args, **kwargs):
    start = time.thread_time()
    out = fn(*args, **kwargs)
    return out, (time.thread_time() - start) * 1e3


def identity_answer(block: pa.Table, rows: list[int]) -> pa.Table:
    """What an actor returns for `rows` when every prediction is its window."""
    from pipeline.stages.infer import PREDICTION_SCHEMA

    sent = block.take(rows)
    return pa.table(
        {
            "predictions": pa.array(sent["windows"].to_pylist(), pa.large_binary()),
            "infer_ms": pa.array([0.0] * len(rows), pa.float64()),
            "error": pa.nulls(len(rows), pa.string()),
            "node": pa.nulls(len(rows), pa.string()),
        },
        PREDICTION_SCHEMA,
    )


def run_once(folder: Path, out: Path) -> dict[str, float]:
    """CPU ms per stage for the one photo in `folder`, through the stages of a real job."""
    from pipeline.config import RestoreConfig
    from pipeline.dataset import stage_settings
    from pipeline.stages.decode import decode_batch
    from pipeline.stages.finish import finish_batch
    from pipeline.stages.infer import merge_results, rows_to_infer
    from pipeline.stages.prepare import needs_refine, prepare_batch, refine_batch
    from pipeline.stages.read import read_units
    from pipeline.stages.sinks import write_images
    from pipeline.work import find_work

    config = RestoreConfig.from_dict(
        {
            "images": str(folder / "images"),
            "masks": str(folder / "masks"),
            "output": str(out),
            "output_format": "same",
            "overwrite": True,
            "run_id": "bench",
        }
    )
    work = find_work(config, run_id="bench")
    stages = stage_settings(config, work, run_id="bench")
    units = work.units_table()
    work.scratch.remove()
    ms = dict.fromkeys(STAGES, 0.0)
    blocks, ms["read"] = cpu_ms(lambda: list(read_units(units, stages.read)))
    (block,) = blocks
    block, ms["decode"] = cpu_ms(decode_batch, block, stages.decode)
    block, ms["prepare"] = cpu_ms(prepare_batch, block, stages.prepare)
    while True:
        rows = rows_to_infer(block)
        block, spent = cpu_ms(merge_results, block, rows, identity_answer(block, rows))
        ms["infer"] += spent
        if not needs_refine(block):
            break
        block, spent = cpu_ms(refine_batch, block, stages.prepare)
        ms["prepare"] += spent
    block, ms["finish"] = cpu_ms(finish_batch, block, stages.finish)
    result, ms["write"] = cpu_ms(write_images, block, stages.write)
    row = result.to_pylist()[0]
    if row["status"] != "ok":
        raise SystemExit(f"the photo was not restored: {row['error']}")
    ms["windows"] = row["crops"]
    return ms


def floor_ms(path: Path) -> dict[str, float]:
    """One entropy decode + encode of the whole JPEG (jpeglib), and a full Pillow decode."""
    import jpeglib

    def coefficients() -> None:
        jpeg = jpeglib.read_dct(str(path))
        jpeg.load()
        jpeg.write_dct(str(path.with_suffix(".copy.jpg")))

    def pillow() -> None:
        with Image.open(path) as im:
            im.convert("RGB").load()

    return {"coefficients": cpu_ms(coefficients)[1], "pillow_decode": cpu_ms(pillow)[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", default="1,4,12,24")
    parser.add_argument("--formats", default="jpeg,progressive,png")
    parser.add_argument("--holes", default="text,blob")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--photo", type=Path)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    import torch

    torch.set_num_threads(1)
    photo = source_photo(args.photo)
    print(
        f"{'MP':>4} {'format':<11} {'hole':<5} {'area%':>5} {'win':>4} "
        + " ".join(f"{s:>8}" for s in STAGES)
        + f" {'total':>8} {'floor':>7} {'pillow':>7}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="spl-stage-costs-") as tmp:
        for mp in (float(m) for m in args.megapixels.split(",")):
            image = at_megapixels(photo, mp)
            for kind in args.holes.split(","):
                hole = hole_for(image.shape[:2], kind)
                for fmt in args.formats.split(","):
                    folder = Path(tmp) / f"{mp}-{kind}-{fmt}"
                    save(image, hole, folder, fmt)
                    runs = [run_once(folder, Path(tmp) / "out") for _ in range(args.repeats)]
                    median = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
                    row = {
                        "megapixels": mp,
                        "size": list(image.shape[:2]),
                        "format": fmt,
                        "hole": kind,
                        "hole_area": float(hole.mean()),
                        "input_bytes": sum(
                            f.stat().st_size for f in (folder / "images").iterdir()
                        ),
                        "cpu_ms": {s: median[s] for s in STAGES},
                        "total_ms": sum(median[s] for s in STAGES),
                        "windows": int(median["windows"]),
                    }
                    if fmt != "png":
                        floors = [floor_ms(folder / "images" / "photo.jpg") for _ in range(3)]
                        row["floor_ms"] = float(np.median([f["coefficients"] for f in floors]))
                        row["pillow_decode_ms"] = float(
                            np.median([f["pillow_decode"] for f in floors])
                        )
                    rows.append(row)
                    print(
                        f"{mp:>4g} {fmt:<11} {kind:<5} {100 * row['hole_area']:>5.1f} "
                        f"{row['windows']:>4} "
                        + " ".join(f"{row['cpu_ms'][s]:>8.0f}" for s in STAGES)
                        + f" {row['total_ms']:>8.0f} {row.get('floor_ms', float('nan')):>7.0f}"
                        f" {row.get('pillow_decode_ms', float('nan')):>7.0f}",
                        flush=True,
                    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"machine": f"{os.uname().machine} ({os.cpu_count()} CPUs)", "peak_rss_mb": peak,
              "rows": rows}  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(f"peak RSS {peak:.0f} MB; wrote {args.output}")


if __name__ == "__main__":
    main()
