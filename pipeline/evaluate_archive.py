"""The archive-resolution protocol: watermarks and objects stamped on full-size photos, restored
through the real restore path, scored inside the hole.

1. Every photo under IMAGES is decoded at full size (long side capped at `max_side` when set).
   For each stamp kind (`spl_model.stamps`: rendered text, logos, thin strokes, opaque object
   blobs) one stamp is drawn from a generator seeded by (seed, photo index, kind), blended onto
   the photo, and saved as a JPEG (q92, like the archives users bring) with the stamp's mask
   (where it shows, grown by 2 px) as a PNG: OUTPUT/inputs/archive/{images,masks}/<kind>/.
2. Each engine runs as an ordinary restore job over those pairs (output format `auto`: a JPEG
   keeps its blocks outside the hole) into OUTPUT/engines/<name>/.
3. Each restored image is scored against the clean photo: PSNR and L1 over the hole's pixels,
   SSIM over the hole's bounding box (grown by 8 px).
4. Before / engines / clean strips around each hole go to OUTPUT/crops/<kind>/<photo>.png, for
   a person to look at.
"""

from __future__ import annotations

import io
import posixpath
import re
from pathlib import PurePosixPath
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from spl_model import metrics
from spl_model.masks import hole_box
from spl_model.stamps import KINDS, font_files, make_stamp

from .ledger import latest_rows
from .progress import track
from .storage import atomic_write, filesystem, read_bytes
from .training.data import list_images, load_photo

JPEG_QUALITY = 92
GROW = 2  # px the mask is grown beyond where the stamp shows
SSIM_MARGIN = 8  # px around the hole's box that SSIM also covers
CROP_MARGIN = 48  # px of context around a hole in the comparison strips
CROP_MAX = (1400, 420)  # the largest (width, height) of one strip panel


def build_archive_pairs(
    images: str,
    output: str,
    seed: int,
    kinds: list[str],
    limit: int | None = None,
    max_side: int | None = None,
    storage_options: dict[str, Any] | None = None,
    show: bool = False,
) -> list[dict[str, Any]]:
    """Write the stamped photos and masks; returns one entry per item (key, kind, photo path).
    `show`: progress on stderr."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown stamp kinds {unknown}; choose from {list(KINDS)}")
    files = list_images(images, storage_options)[:limit]
    fs, _ = filesystem(images, storage_options)
    out_fs, root = filesystem(output, storage_options)
    fonts = font_files()
    items = []
    for index, path in enumerate(track(files, "evaluate: stamping", show=show, unit="photos")):
        clean = _photo(read_bytes(fs, path), max_side)
        stem = f"{index:04d}_{_safe(PurePosixPath(path).stem)}"
        for kind in kinds:
            rng = np.random.default_rng([seed, index, KINDS.index(kind)])
            stamp = make_stamp(clean.shape[:2], kind, rng, fonts)
            key = f"{kind}/{stem}"
            base = posixpath.join(root, "inputs", "archive")
            image = Image.fromarray(stamp.apply(clean))
            mask = Image.fromarray(stamp.hole(GROW).astype(np.uint8) * 255)
            atomic_write(out_fs, f"{base}/images/{key}.jpg", _encode(image, "JPEG"))
            atomic_write(out_fs, f"{base}/masks/{key}.png", _encode(mask, "PNG"))
            items.append({"key": key, "kind": kind, "photo": path, "opacity": stamp.opacity})
    return items


def restore_spec(output: str) -> dict[str, Any]:
    """The restore-job keys that point an engine's run at the stamped pairs."""
    base = f"{output.rstrip('/')}/inputs/archive"
    return {"images": f"{base}/images", "masks": f"{base}/masks", "format": "pairs"}


def score_engines(
    items: list[dict[str, Any]],
    engines: list[str],
    images: str,
    output: str,
    max_side: int | None = None,
    storage_options: dict[str, Any] | None = None,
    show: bool = False,
) -> list[dict[str, Any]]:
    """Score every engine's restored items against the clean photos; writes the comparison
    strips. Rows: engine, key, bucket (the stamp kind), hole_ratio, psnr, ssim, l1."""
    fs, _ = filesystem(images, storage_options)
    out_fs, root = filesystem(output, storage_options)
    outputs = {name: _outputs(f"{output.rstrip('/')}/engines/{name}", storage_options)
               for name in engines}  # fmt: skip
    base = posixpath.join(root, "inputs", "archive")
    rows: list[dict[str, Any]] = []
    clean_of, clean = None, None  # items come photo by photo: one clean photo at a time
    for item in track(items, "evaluate: scoring", show=show):
        if item["photo"] != clean_of:
            clean_of, clean = item["photo"], _photo(read_bytes(fs, item["photo"]), max_side)
        key = item["key"]
        hole = np.asarray(Image.open(io.BytesIO(read_bytes(out_fs, f"{base}/masks/{key}.png"))))
        hole = hole > 127
        stamped = _decode(read_bytes(out_fs, f"{base}/images/{key}.jpg"))
        restored = {}
        for name in engines:
            uri = outputs[name].get(key)
            if uri is None:
                continue  # the engine failed on this item: its stats row says why
            restored[name] = _decode(read_bytes(*filesystem(uri, storage_options)))
            rows.append({"engine": name, "key": key, "bucket": item["kind"],
                         "hole_ratio": float(hole.mean()),
                         **hole_scores(restored[name], clean, hole)})  # fmt: skip
        strip = comparison_strip(stamped, restored, clean, hole)
        atomic_write(out_fs, posixpath.join(root, "crops", f"{key}.png"), _encode(strip, "PNG"))
    return rows


def hole_scores(restored: np.ndarray, clean: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    """PSNR and L1 over the hole's pixels, SSIM over its bounding box (grown by SSIM_MARGIN)."""
    inside, truth = restored[hole][None], clean[hole][None]  # 1×N×3: the hole's pixels
    x0, y0, x1, y1 = hole_box(hole, SSIM_MARGIN)
    return {
        "psnr": metrics.psnr(inside, truth),
        "ssim": metrics.ssim(restored[y0:y1, x0:x1], clean[y0:y1, x0:x1]),
        "l1": metrics.l1(inside, truth),
    }


def comparison_strip(
    stamped: np.ndarray, restored: dict[str, np.ndarray], clean: np.ndarray, hole: np.ndarray
) -> Image.Image:
    """Panels stacked top to bottom: the stamped input with the hole outlined, each engine's
    output, the clean photo; all the same crop around the hole, labelled."""
    x0, y0, x1, y1 = hole_box(hole, CROP_MARGIN)
    width, height = min(x1 - x0, CROP_MAX[0]), min(y1 - y0, CROP_MAX[1])
    x0 = min(x0, clean.shape[1] - width)
    y0 = min(y0, clean.shape[0] - height)
    crop = (slice(y0, y0 + height), slice(x0, x0 + width))
    outline = stamped[crop].copy()
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    edge = hole[crop] & ~cv2.erode(hole[crop].astype(np.uint8), cross).astype(bool)
    outline[edge] = (255, 0, 255)
    panels = [("input (mask outlined)", outline)]
    panels += [(name, image[crop]) for name, image in restored.items()]
    panels.append(("clean", clean[crop]))
    label_h = 22
    strip = Image.new("RGB", (width, len(panels) * (height + label_h)), (24, 24, 24))
    draw = ImageDraw.Draw(strip)
    fonts = font_files()
    font = ImageFont.truetype(str(fonts[0]), 15) if fonts else ImageFont.load_default()
    for i, (label, pixels) in enumerate(panels):
        top = i * (height + label_h)
        draw.text((6, top + 3), label, fill=(235, 235, 235), font=font)
        strip.paste(Image.fromarray(np.ascontiguousarray(pixels)), (0, top + label_h))
    return strip


def _outputs(engine_out: str, storage_options: dict[str, Any] | None) -> dict[str, str]:
    """key -> output URI of every item the engine restored."""
    rows = latest_rows(engine_out, storage_options).to_pylist()
    return {r["key"]: r["output_uri"] for r in rows if r["status"] == "ok" and r["output_uri"]}


def _photo(data: bytes, max_side: int | None) -> np.ndarray:
    return load_photo(data, max_side or 1 << 30)


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format=fmt, quality=JPEG_QUALITY)
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


def _safe(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)
