"""Validation during training: fixed pairs from held-out photos, PSNR against Telea, a PNG grid.

The pairs are fixed by the seed (centre crops at 256², two masks per photo in each of the 10-20 %
and 20-30 % buckets), so every validation of a run, and of a resumed run, scores the same inputs.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image

from spl_model.engines import classical_inpaint
from spl_model.inpainter import Inpainter
from spl_model.masks import random_mask
from spl_model.metrics import psnr, ssim

from ..storage import filesystem, read_bytes
from .data import SIZE, list_images, load_photo

BUCKETS = ((0.1, 0.2), (0.2, 0.3))


def validation_pairs(
    url: str, seed: int = 0, storage_options: dict[str, Any] | None = None
) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(image 256²×3 uint8, bool mask, bucket name) for every photo and bucket, twice."""
    fs, _ = filesystem(url, storage_options)
    pairs = []
    for index, path in enumerate(list_images(url, storage_options)):
        photo = load_photo(read_bytes(fs, path), 1024)
        h, w = photo.shape[:2]
        side = min(h, w)
        crop = photo[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
        image = np.asarray(Image.fromarray(crop).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
        for b, ratio in enumerate(BUCKETS):
            for draw in range(2):
                rng = np.random.default_rng([seed, index, b, draw])
                bucket = f"{round(ratio[0] * 100)}-{round(ratio[1] * 100)}%"
                pairs.append((image, random_mask(SIZE, SIZE, rng, ratio), bucket))
    return pairs


def validate(
    generator: torch.nn.Module, pairs: list[tuple[np.ndarray, np.ndarray, str]], grid_rows: int = 6
) -> tuple[dict[str, float], bytes]:
    """Mean PSNR / SSIM per bucket for the model and Telea, and a PNG grid.

    Grid columns: masked input | Telea | model | original.
    """
    was_training = generator.training
    device = next(generator.parameters()).device
    inpainter = Inpainter(generator.eval(), device=str(device), strategy="resize")
    restored = inpainter.inpaint([p[0] for p in pairs], [p[1] for p in pairs])
    generator.train(was_training)
    scores: dict[str, list[float]] = {}
    rows = []
    for (image, mask, bucket), ours in zip(pairs, restored):
        telea = classical_inpaint("opencv-telea", image, mask)
        for name, result in (("model", ours), ("telea", telea)):
            scores.setdefault(f"{name}_psnr_{bucket}", []).append(psnr(result, image))
            scores.setdefault(f"{name}_ssim_{bucket}", []).append(ssim(result, image))
        if len(rows) < grid_rows:
            masked = np.where(mask[..., None], 255, image).astype(np.uint8)
            rows.append(np.concatenate([masked, telea, ours, image], axis=1))
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate(rows, axis=0)).save(buffer, format="PNG")
    return {k: float(np.mean(v)) for k, v in sorted(scores.items())}, buffer.getvalue()
