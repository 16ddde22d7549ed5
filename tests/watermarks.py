"""A stamped collection where the truth is known: natural crops of several sizes with one
semi-transparent, anti-aliased logo (text and a shape) at a fixed corner offset, some jittered.
Shared by the watermark tests and bench/watermark_detect.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import data

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SIZES = ((240, 320), (256, 256), (300, 400))  # (height, width)
OFFSET = (14, 12)  # from the bottom-right corner, (x, y) inward


@dataclass
class Stamped:
    images: list[np.ndarray]  # stamped, uint8 H×W×3
    originals: list[np.ndarray]
    masks: list[np.ndarray]  # true hole maps (alpha > 0)
    shifts: list[tuple[int, int]]  # jitter applied to each image, (dx, dy)
    logo_alpha: np.ndarray  # the logo's own alpha (its pixel size), 0..1


def logo(opacity: float) -> np.ndarray:
    """The logo's alpha map: '© PHOTO ARCHIVE' beside a ring, drawn at 4× and reduced (AA)."""
    big = Image.new("L", (4 * 120, 4 * 30), 0)
    draw = ImageDraw.Draw(big)
    draw.ellipse((8, 8, 112, 112), outline=255, width=14)
    font = ImageFont.load_default(size=64)
    draw.text((130, 20), "ARCHIVE", fill=255, font=font)
    small = big.reduce(4)  # box-filtered: anti-aliased edges, no ringing
    return np.asarray(small, np.float32) / 255 * opacity


def natural_crops(count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` varied crops of scikit-image's photos, at the sizes in SIZES (in turn)."""
    rng = np.random.default_rng(seed)
    photos = [getattr(data, n)() for n in PHOTOS] + list(data.stereo_motorcycle()[:2])
    photos = [np.asarray(Image.fromarray(p).convert("RGB")) for p in photos]
    crops = []
    for i in range(count):
        h, w = SIZES[i % len(SIZES)]
        photo = photos[int(rng.integers(len(photos)))]
        scale = rng.uniform(max(h / photo.shape[0], w / photo.shape[1]), 1.0)
        ph, pw = int(photo.shape[0] * scale), int(photo.shape[1] * scale)
        resized = np.asarray(Image.fromarray(photo).resize((max(pw, w), max(ph, h))))
        y = int(rng.integers(0, resized.shape[0] - h + 1))
        x = int(rng.integers(0, resized.shape[1] - w + 1))
        crop = resized[y : y + h, x : x + w]
        crops.append(np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop))
    return crops


def stamp(
    count: int = 150, opacity: float = 0.45, jitter: int = 8, jittered_share: float = 0.3,
    seed: int = 0,
) -> Stamped:  # fmt: skip
    rng = np.random.default_rng(seed + 1)
    alpha = logo(opacity)
    th, tw = alpha.shape
    out = Stamped([], [], [], [], alpha)
    for image in natural_crops(count, seed):
        h, w = image.shape[:2]
        dx, dy = 0, 0
        if rng.random() < jittered_share:
            dx, dy = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2))
        x, y = w - tw - OFFSET[0] + dx, h - th - OFFSET[1] + dy
        a = np.zeros((h, w), np.float32)
        a[y : y + th, x : x + tw] = alpha
        stamped = a[..., None] * 255 + (1 - a[..., None]) * image.astype(np.float32)
        out.images.append(np.clip(np.rint(stamped), 0, 255).astype(np.uint8))
        out.originals.append(image)
        out.masks.append(a > 0)
        out.shifts.append((dx, dy))
    return out
