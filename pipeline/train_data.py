"""Training samples: photos from any fsspec URL, random square crops, flips, free-form masks.

Each Ray Train worker reads its own slice of the file list (rank::world_size), reshuffled every
epoch from the seed, so workers never see the same photo in the same epoch.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from spl_model.masks import random_mask

from .storage import filesystem, read_bytes

log = logging.getLogger(__name__)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


def list_images(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Every image file under `url` (recursively), as sorted full paths of its filesystem."""
    fs, root = filesystem(url, storage_options)
    files = [f for f in fs.find(root) if f.lower().endswith(IMAGE_EXTS)]
    if not files:
        raise ValueError(f"no training images ({', '.join(IMAGE_EXTS)}) under {url}")
    return sorted(files)


def sample(
    image: Image.Image, rng: np.random.Generator, hole_ratio: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image 256²×3, image 512²×3, mask 256²) as float32 in [0, 1] from one photo."""
    image = ImageOps.exif_transpose(image).convert("RGB")
    width, height = image.size
    side = int(min(width, height) * rng.uniform(0.6, 1.0))
    x0, y0 = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
    crop = image.crop((x0, y0, x0 + side, y0 + side))
    if rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    big = np.asarray(crop.resize((512, 512), Image.Resampling.BICUBIC), np.float32) / 255
    small = np.asarray(crop.resize((256, 256), Image.Resampling.BICUBIC), np.float32) / 255
    mask = random_mask(256, 256, rng, hole_ratio).astype(np.float32)
    return small, big, mask


def batches(
    files: list[str],
    url: str,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    hole_ratio: tuple[float, float] = (0.1, 0.6),
    storage_options: dict[str, Any] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Endless (N×256²×3, N×512²×3, N×256²) batches for one worker."""
    fs, _ = filesystem(url, storage_options)
    mine = files[rank::world_size] or files  # fewer files than workers: everyone shares
    epoch = 0
    buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # carried across epochs
    while True:
        rng = np.random.default_rng([seed, rank, epoch])
        readable = 0
        for index in rng.permutation(len(mine)):
            try:
                with Image.open(io.BytesIO(read_bytes(fs, mine[index]))) as img:
                    buffer.append(sample(img, rng, hole_ratio))
            except Exception as exc:  # one unreadable photo must not stop training
                log.warning("skipping training image %s: %s", mine[index], exc)
                continue
            readable += 1
            if len(buffer) == batch_size:
                yield tuple(np.stack(parts) for parts in zip(*buffer))  # type: ignore[misc]
                buffer = []
        if not readable:
            raise ValueError(f"none of the {len(mine)} training images of this worker is readable")
        epoch += 1
