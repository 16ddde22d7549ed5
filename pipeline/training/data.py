"""Training samples: photos from any fsspec URL, random square crops, flips, free-form masks.

`PhotoCrops` is a torch IterableDataset meant for a DataLoader with worker processes, so decoding,
cropping, masking and the classical pre-fill all run beside the training step, never inside it.
Each worker decodes its rank's photos once (long side capped at `max_side`) and then draws crops
from memory forever: square crops of a log-uniform side between 256 px and the photo's short side,
resized to 256² (the generator's input) and 512² (the teacher's), flipped half of the time.
"""

from __future__ import annotations

import io
import logging
import math
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps
from torch.utils.data import IterableDataset, get_worker_info

from spl_model.masks import random_mask
from spl_model.prefill import prefill_holes
from spl_model.stamps import tile_mask

from ..storage import filesystem, read_bytes

log = logging.getLogger(__name__)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
SIZE = 256


def list_images(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Every image file under `url` (recursively), as sorted full paths of its filesystem."""
    fs, root = filesystem(url, storage_options)
    files = [f for f in fs.find(root) if f.lower().endswith(IMAGE_EXTS)]
    if not files:
        raise ValueError(f"no training images ({', '.join(IMAGE_EXTS)}) under {url}")
    return sorted(files)


def load_photo(data: bytes, max_side: int) -> np.ndarray:
    """Decode to uint8 RGB with EXIF orientation applied and the long side at most `max_side`."""
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale when possible
        img = ImageOps.exif_transpose(img).convert("RGB")
        if max(img.size) > max_side:
            scale = max_side / max(img.size)
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            img = img.resize(size, Image.Resampling.LANCZOS)
        return np.asarray(img)


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    shrink = crop.shape[0] >= size
    method = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=method)


def make_sample(
    photo: np.ndarray,
    rng: np.random.Generator,
    hole_ratio: tuple[float, float],
    prefill_method: str = "none",
    stamp_masks: float = 0.0,
) -> dict[str, np.ndarray]:
    """One training sample, all uint8: image 256²×3, image_512 512²×3, mask 256², prefilled.

    With probability `stamp_masks` the sample is what a native-scale tile of a watermarked
    archive photo looks like: a 256-px crop (no resize) with a text, logo or scratch mask
    (`spl_model.stamps.tile_mask`); otherwise a crop of any scale with a free-form mask."""
    height, width = photo.shape[:2]
    short = min(height, width)
    low = min(SIZE, short)
    stamped = rng.random() < stamp_masks
    side = low if stamped else round(math.exp(rng.uniform(math.log(low), math.log(short))))
    y0, x0 = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    crop = photo[y0 : y0 + side, x0 : x0 + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = np.ascontiguousarray(crop)
    image = _resize(crop, SIZE)
    mask = tile_mask(SIZE, rng) if stamped else random_mask(SIZE, SIZE, rng, hole_ratio)
    filled = prefill_holes(image[None], mask[None], prefill_method)[0]
    return {
        "image": image,
        "image_512": _resize(crop, 2 * SIZE),
        "mask": mask.astype(np.uint8),
        "prefilled": filled,
    }


class PhotoCrops(IterableDataset):
    """Endless training samples for one rank; each DataLoader worker draws its own stream."""

    def __init__(
        self,
        files: list[str],
        url: str,
        hole_ratio: tuple[float, float],
        prefill_method: str = "none",
        stamp_masks: float = 0.0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_side: int = 2560,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.files = files[rank::world_size] or files  # fewer files than ranks: all share
        self.url, self.storage_options = url, storage_options
        self.hole_ratio, self.prefill_method = hole_ratio, prefill_method
        self.stamp_masks = stamp_masks
        self.seed, self.rank, self.max_side = seed, rank, max_side

    def photos(self) -> list[np.ndarray]:
        fs, _ = filesystem(self.url, self.storage_options)
        photos = []
        for path in self.files:
            try:
                photo = load_photo(read_bytes(fs, path), self.max_side)
            except Exception as exc:  # one unreadable photo must not stop training
                log.warning("skipping training image %s: %s", path, exc)
                continue
            if min(photo.shape[:2]) >= 64:
                photos.append(photo)
        if not photos:
            raise ValueError(f"none of the {len(self.files)} training images is readable")
        return photos

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, self.rank, worker])
        photos = self.photos()
        while True:
            photo = photos[int(rng.integers(len(photos)))]
            yield make_sample(photo, rng, self.hole_ratio, self.prefill_method, self.stamp_masks)
