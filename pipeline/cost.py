"""What an item is expected to cost before anyone reads it: its pixels, guessed from the bytes
and the format the listing gives. A restore task's CPU time and memory both follow an item's
pixels (bench/stage_costs.py: about 45 ms of CPU per megapixel plus a constant, with the hole's
share on top), so `pipeline/dataset.py` sizes its tasks and their memory requests by them.
"""

from __future__ import annotations

import posixpath

# Encoded bytes per pixel, near the low end of what each format stores for a photograph (a
# camera's JPEG holds 0.25-0.4, a smooth wallpaper at q90 about 0.1; WebP about two thirds of
# JPEG; a lossless PNG or TIFF of a photo 1.5-2.5, BMP 3): the guess errs towards more pixels,
# and so more memory, rather than fewer.
BYTES_PER_PIXEL = {
    "jpg": 0.15,
    "jpeg": 0.15,
    "webp": 0.1,
    "png": 1.5,
    "tif": 1.5,
    "tiff": 1.5,
    "bmp": 3.0,
}
FALLBACK_BYTES_PER_PIXEL = 0.15  # an unknown extension: priced like a JPEG


def expected_pixels(url: str | None, size: int | None) -> int:
    """The pixels an image of `size` encoded bytes at `url` most likely holds (0: unknown)."""
    if not size or not url:
        return 0
    ext = posixpath.splitext(url.split("?", 1)[0])[1].lstrip(".").lower()
    return round(size / BYTES_PER_PIXEL.get(ext, FALLBACK_BYTES_PER_PIXEL))
