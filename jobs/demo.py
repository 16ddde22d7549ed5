"""The built-in default run: a small defaced sample archive with its masks, restored.

The photos are the openly licensed samples that scikit-image ships. Each is defaced here with a
corner text watermark, a scratch and a sticker blob, and gets the matching mask (the defacement,
grown by 2 px to cover anti-aliased edges). The run is a real restore job through the pipeline,
written to OUTPUT with stats and a run summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from spl_model.masks import dilate

SAMPLES = ("astronaut", "chelsea", "coffee", "rocket")


def make_sample_archive(root: Path) -> tuple[Path, Path]:
    """Write photos to ROOT/images/photos/<name>.jpg and masks to ROOT/masks/photos/<name>.png."""
    from skimage import data  # sample photos shipped inside the scikit-image wheel

    images, masks = root / "images" / "photos", root / "masks" / "photos"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in SAMPLES:
        photo = Image.fromarray(getattr(data, name)()).convert("RGB")
        defacement = watermark_mask(photo.size, rng)
        white = Image.new("RGB", photo.size, (250, 250, 245))
        Image.composite(white, photo, defacement).save(images / f"{name}.jpg", quality=92)
        hole = dilate(np.asarray(defacement) > 0, 2)
        Image.fromarray(hole.astype(np.uint8) * 255).save(masks / f"{name}.png")
    return root / "images", root / "masks"


def watermark_mask(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A corner text watermark, a thin scratch and a small object blob (white = hole)."""
    width, height = size
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    font = ImageFont.load_default(size=max(12, height // 18))
    text = "© ARCHIVE 1987"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    margin = max(6, width // 40)
    draw.text(
        (width - (right - left) - margin, height - (bottom - top) - margin - top),
        text,
        fill=255,
        font=font,
        stroke_width=1,
        stroke_fill=255,
    )
    x0, y0 = int(rng.uniform(0.1, 0.4) * width), int(rng.uniform(0.1, 0.3) * height)
    draw.line((x0, y0, x0 + width // 3, y0 + height // 5), fill=255, width=max(2, width // 150))
    cx, cy, r = int(0.3 * width), int(0.6 * height), max(8, min(width, height) // 14)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    return mask


def comparison(images: Path, masks: Path, restored: Path, width: int = 384) -> Image.Image:
    """One row per sample: defaced input | OpenCV Telea | the run's restoration, with labels."""
    from spl_model.engines import classical_inpaint

    rows = []
    for name in SAMPLES:
        before = np.asarray(Image.open(images / "photos" / f"{name}.jpg").convert("RGB"))
        hole = np.asarray(Image.open(masks / "photos" / f"{name}.png")) > 127
        telea = classical_inpaint("opencv-telea", before, hole)
        after = np.asarray(Image.open(restored / "photos" / f"{name}.jpg").convert("RGB"))
        scale = width / before.shape[1]
        size = (width, round(before.shape[0] * scale))
        tiles = [Image.fromarray(a).resize(size, Image.Resampling.LANCZOS) for a in
                 (before, telea, after)]  # fmt: skip
        row = Image.new("RGB", (3 * width, size[1]), "white")
        for i, tile in enumerate(tiles):
            row.paste(tile, (i * width, 0))
        rows.append(row)
    header = 28
    sheet = Image.new("RGB", (3 * width, header + sum(r.height for r in rows)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=18)
    for i, label in enumerate(("before (defaced)", "OpenCV Telea", "spl-restore (default SPL)")):
        draw.text((i * width + 8, 4), label, fill="black", font=font)
    y = header
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    return sheet


def main(output: str = "out/demo") -> dict:
    """Build the sample archive beside OUTPUT (OUTPUT-archive), restore it into OUTPUT, and
    write OUTPUT/report.html and OUTPUT/comparison.png (before | Telea | restored).

    The archive stays outside OUTPUT: a run never reads inputs from its own output location.
    """
    from pipeline import RestoreConfig, run_restore
    from pipeline.report import write_report

    out = Path(output)
    images, masks = make_sample_archive(out.with_name(out.name + "-archive"))
    config = RestoreConfig.from_dict(
        {"images": str(images), "masks": str(masks), "output": str(out), "batch_size": 4}
    )
    summary = run_restore(config)
    write_report(str(out))
    comparison(images, masks, out / "images").save(out / "comparison.png")
    return summary
