"""An item's restored image as the finish stage hands it to the writer: the decoded pixels, and
the restored pixels and changed-pixel map of one box. Whole images are assembled only where a
writer needs one (a full re-encode, a rotated JPEG, a reference score)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..schema import unpack_bits

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends)


@dataclass(frozen=True)
class Restored:
    pixels: np.ndarray  # H×W×3 uint8, as decoded (display orientation)
    box: Box
    part: np.ndarray  # the restored pixels of `box`
    changed_part: np.ndarray  # bool, `box`-sized: the pixels the restore changed
    decoded: Box | None = None  # where `pixels` holds the image (a JPEG decoded in part); None: all

    @classmethod
    def of(cls, row: dict[str, Any]) -> Restored:
        height, width = row["height"], row["width"]
        x0, y0, x1, y1 = row["restored_box"]
        decoded = row.get("pixels_box")
        return cls(
            np.frombuffer(row["pixels"], np.uint8).reshape(height, width, 3),
            (x0, y0, x1, y1),
            np.frombuffer(row["restored"], np.uint8).reshape(y1 - y0, x1 - x0, 3),
            unpack_bits(row["changed"], y1 - y0, x1 - x0),
            None if decoded is None else tuple(decoded),
        )

    def with_pixels(self, pixels: np.ndarray) -> Restored:
        """The same restore over the whole decoded image `pixels`."""
        return replace(self, pixels=pixels, decoded=None)

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[:2]

    @property
    def whole(self) -> Box:
        return 0, 0, self.shape[1], self.shape[0]

    def region(self, box: Box | None = None) -> np.ndarray:
        """The restored image's pixels in `box` (default: the whole image), a copy. Pixels that
        were never decoded are never returned: asking for them is an error."""
        x0, y0, x1, y1 = box or self.whole
        if self.decoded is not None:
            dx0, dy0, dx1, dy1 = self.decoded
            if not (dx0 <= x0 and dy0 <= y0 and x1 <= dx1 and y1 <= dy1):
                raise ValueError(f"pixels {(x0, y0, x1, y1)} asked for, {self.decoded} decoded")
        out = self.pixels[y0:y1, x0:x1].copy()
        target, source = self._overlap((x0, y0, x1, y1))
        if target is not None:
            out[target] = self.part[source]
        return out

    def changed(self, box: Box | None = None) -> np.ndarray:
        """The changed-pixel map in `box` (default: the whole image)."""
        x0, y0, x1, y1 = box or self.whole
        out = np.zeros((y1 - y0, x1 - x0), bool)
        target, source = self._overlap((x0, y0, x1, y1))
        if target is not None:
            out[target] = self.changed_part[source]
        return out

    def _overlap(self, box: Box) -> tuple[Any, Any]:
        """(slices into `box`, slices into `part`) of where they overlap, or (None, None)."""
        x0, y0, x1, y1 = box
        px0, py0, px1, py1 = self.box
        ox0, oy0, ox1, oy1 = max(x0, px0), max(y0, py0), min(x1, px1), min(y1, py1)
        if ox0 >= ox1 or oy0 >= oy1:
            return None, None
        return (
            (slice(oy0 - y0, oy1 - y0), slice(ox0 - x0, ox1 - x0)),
            (slice(oy0 - py0, oy1 - py0), slice(ox0 - px0, ox1 - px0)),
        )
