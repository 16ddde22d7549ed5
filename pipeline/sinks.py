"""Image sink stage: encode each restored row, write it under OUT/images, emit its stats row.

Runs as Ray tasks after the actor pool. The image is written before its stats row exists,
so a stats row with status `ok` always points at a complete file (see docs/PIPELINE.md).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from . import quality
from .decode import ItemError, open_image, to_rgb
from .encode import compose, encode, output_ext
from .errors import error_kind
from .inference import unpack_bits
from .schema import ERROR, OK, STATS_SCHEMA, table
from .storage import UnsafeKeyError, atomic_write, filesystem, full_url, join_under

log = logging.getLogger(__name__)


def write_images(
    batch: pa.Table,
    *,
    output: str,
    storage_options: dict[str, Any],
    io_retries: int,
    output_format: str,
    output_quality: int,
    run_id: str,
    settings_id: str,
    strategy: str,
    max_image_pixels: int | None = None,
) -> pa.Table:
    """WORK_SCHEMA rows in, STATS_SCHEMA rows out (one per row, whatever its status)."""
    fs, root = filesystem(output, storage_options, io_retries)
    images_root = f"{root}/images"
    out = []
    for row in batch.to_pylist():
        stats = _stats_base(row, run_id, settings_id, strategy)
        if not row.get("status"):
            try:
                stats.update(
                    _write_one(
                        row,
                        fs,
                        images_root,
                        output_format,
                        output_quality,
                        io_retries,
                        max_image_pixels,
                    )
                )
                stats["status"] = OK
            except (ItemError, UnsafeKeyError) as exc:
                stats.update(status=ERROR, error=str(exc))
            except Exception as exc:
                stats.update(
                    status=ERROR,
                    error=f"cannot write the output image: {type(exc).__name__}: {exc}",
                )
        stats["error_kind"] = error_kind(stats["status"], stats.get("error"))
        stats["total_ms"] = (time.time() - row["t_start"]) * 1000 if row.get("t_start") else None
        stats["finished_at"] = datetime.now(UTC)
        out.append(stats)
    return table(out, STATS_SCHEMA)


def _stats_base(row: dict[str, Any], run_id: str, settings_id: str, strategy: str) -> dict:
    keep = (
        "key",
        "image_uri",
        "mask_uri",
        "status",
        "error",
        "width",
        "height",
        "hole_pixels",
        "hole_ratio",
        "regions",
        "largest_region",
        "engine",
        "model_id",
        "infer_ms",
        "crops",
        "crop_scale",
        "node",
        "input_mode",
        "input_format",
        "mask_score",
        "mask_shift",
    )
    stats = {name: row.get(name) for name in keep}
    stats.update(run_id=run_id, settings_id=settings_id, strategy=strategy)
    return stats


def _write_one(
    row: dict[str, Any],
    fs: Any,
    images_root: str,
    output_format: str,
    output_quality: int,
    io_retries: int,
    max_image_pixels: int | None,
) -> dict[str, Any]:
    height, width = row["height"], row["width"]
    restored = np.frombuffer(row["restored"], np.uint8).reshape(height, width, 3)
    changed = unpack_bits(row["changed"], height, width)
    img = compose(restored, changed, row["orig_mode"] or "RGB", row.get("orig"))
    ext, kind = output_ext(output_format, row.get("input_ext"))
    data, mode = encode(img, kind, output_quality, row.get("icc"), row.get("exif"))
    path = join_under(images_root, f"{row['key']}.{ext}")
    atomic_write(fs, path, data, attempts=max(1, io_retries))
    result: dict[str, Any] = {
        "output_uri": full_url(fs, path),
        "output_mode": mode,
        "output_bytes": len(data),
    }
    hole = unpack_bits(row["hole"], height, width)
    result.update(quality.no_reference(restored, hole))
    if row.get("ref_bytes"):
        result.update(_reference(row["ref_bytes"], restored, max_image_pixels))
    return result


def _reference(data: bytes, restored: np.ndarray, max_pixels: int | None) -> dict[str, Any]:
    try:
        ref_img, _ = open_image(data, "reference", max_pixels)
        reference = to_rgb(ref_img)[0]
    except ItemError as exc:
        log.warning("reference image unusable: %s", exc)
        return {}
    return quality.reference_scores(restored, reference)
