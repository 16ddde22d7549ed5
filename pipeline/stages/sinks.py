"""Image sink stage: encode each restored row, write it (a file under OUT/images, or into a
shard's part file), emit its stats row.

Runs as Ray tasks after the actor pool. The image is written before its stats row exists,
so a stats row with status `ok` always points at bytes that are safely in OUT: a complete
file, or a part that its shard is published from (see docs/PIPELINE.md).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from spl_model.masks import hole_box

from ..errors import error_kind
from ..schema import ERROR, OK, RESULT_SCHEMA, rows, table, unpack_bits
from ..storage import UnsafeKeyError, atomic_write, filesystem, full_url, join_under
from . import jpeg_region, metadata, quality, shard_parts
from .decode import ItemError, open_image, to_rgb
from .encode import compose, encode, output_ext
from .encode_jpeg import NotApplicable, encode_keeping_blocks
from .encode_png import encode_keeping_rows
from .restored import Restored
from .settings import WriteSettings

log = logging.getLogger(__name__)


def write_images(batch: pa.Table, settings: WriteSettings) -> pa.Table:
    """WORK_SCHEMA rows in, RESULT_SCHEMA rows out (one per row, whatever its status).

    `output_layout` files: each image goes to OUT/images/<key>.<ext>. A shard layout: the
    batch's results go to one part file per output shard (pipeline/shards.py), which publishes
    the shard once all of its items have results.
    """
    s = settings
    output_layout, io_retries = s.output_layout, s.io_retries
    fs, root = filesystem(s.output, s.storage_options, io_retries)
    out, encoded = [], []
    for row in rows(batch):
        stats = _stats_base(row, s.run_id, s.settings_id, s.strategy)
        stats.update(engine=s.engine, model_id=s.model_id)
        data = ext = None
        stats["input_shard"] = row.get("shard")
        if output_layout == "files":
            stats["shard"] = None
        if not row.get("status"):
            try:
                restored = Restored.of(row)
                data, ext, result = _encode_one(row, restored, s.output_format, s.output_quality)
                if output_layout == "files":
                    path = join_under(f"{root}/images", f"{row['key']}.{ext}")
                    atomic_write(fs, path, data, attempts=max(1, io_retries))
                    result["output_uri"] = full_url(fs, path)
                else:
                    result["output_uri"] = shard_parts.member_uri(
                        fs, root, output_layout, s.input_layout, row, ext
                    )
                result.update(_scores(row, restored, s.max_image_pixels))
                stats.update(result, status=OK)
            except (ItemError, UnsafeKeyError) as exc:
                stats.update(status=ERROR, error=str(exc))
                data = None
            except Exception as exc:
                stats.update(
                    status=ERROR,
                    error=f"cannot write the output image: {type(exc).__name__}: {exc}",
                )
                data = None
        stats["error_kind"] = error_kind(stats["status"], stats.get("error"))
        stats["total_ms"] = (time.time() - row["t_start"]) * 1000 if row.get("t_start") else None
        stats["finished_at"] = datetime.now(UTC)
        out.append(stats)
        encoded.append((data, ext, row))
    if output_layout != "files":
        shard_parts.write_parts(
            fs, root, s.input_layout, s.settings_id, s.run_id, out, encoded, io_retries
        )
    return table(out, RESULT_SCHEMA)


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
        "shard",
        "shard_items",
        "input_bytes",
        "input_version",
        "infer_bytes",
    )
    stats = {name: row.get(name) for name in keep}
    stats.update(run_id=run_id, settings_id=settings_id, strategy=strategy)
    return stats


def _encode_one(
    row: dict[str, Any], restored: Restored, output_format: str, output_quality: int
) -> tuple[bytes, str, dict[str, Any]]:
    """(file bytes, extension, stats) of a restored row in its output format. A JPEG written
    from a JPEG keeps the source's coefficients outside the changed MCUs (encode_jpeg.py), a PNG
    from a PNG its compressed rows outside the restored ones (encode_png.py)."""
    ext, kind = output_ext(output_format, row.get("input_ext"))
    stats: dict[str, Any] = {}
    if kind == "jpg" and row.get("input_format") == "JPEG":
        try:
            if row["orig_mode"] not in ("RGB", "L"):
                raise NotApplicable(f"{row['input_mode']} JPEG")
            kept = encode_keeping_blocks(
                row["image_bytes"], restored, row["orientation"] or 1, row.get("exif"),
                jpeg_region.coefficients(row),
            )
            path = f"coefficients: {kept.mcus} of {kept.mcus_total} MCUs re-encoded"
            stats["jpeg_path"] = path + (f"; {kept.note}" if kept.note else "")
            stats.update(output_mode=row["orig_mode"], output_bytes=len(kept.data))
            return kept.data, ext, stats
        except NotApplicable as exc:
            stats["jpeg_path"] = f"reencode: {exc}"
    if kind == "png" and row.get("input_format") == "PNG" and row.get("image_bytes"):
        try:
            kept = encode_keeping_rows(
                row["image_bytes"], restored, row["orig_mode"], row.get("orig"),
                row["orientation"] or 1,
            )  # fmt: skip
            stats["png_path"] = f"deflate: {kept.rows} of {kept.rows_total} rows compressed again"
            stats.update(output_mode=row["orig_mode"], output_bytes=len(kept.data))
            return kept.data, ext, stats
        except NotApplicable as exc:
            stats["png_path"] = f"reencode: {exc}"
    if restored.decoded is not None:  # a JPEG decoded in part: the whole image, now
        restored = restored.with_pixels(jpeg_region.pixels(row, None)[0])
    img = compose(restored.region(), restored.changed(), row["orig_mode"] or "RGB", row.get("orig"))
    exif = metadata.clean_exif(row.get("exif"), drop_orientation=True)  # pixels are upright
    data, mode = encode(img, kind, output_quality, row.get("icc"), exif)
    return data, ext, stats | {"output_mode": mode, "output_bytes": len(data)}


def _scores(
    row: dict[str, Any], restored: Restored, max_image_pixels: int | None
) -> dict[str, Any]:
    """No-reference quality (in the hole's box), and reference scores when the item has a
    reference image."""
    hole = unpack_bits(row["hole"], row["height"], row["width"])
    scores: dict[str, Any] = {}
    box = hole_box(hole, quality.BAND + 1)
    if box is not None:
        x0, y0, x1, y1 = box
        scores = quality.no_reference(
            restored.region(box), hole[y0:y1, x0:x1], origin=(x0, y0), shape=restored.shape
        )
    if row.get("ref_bytes"):
        scores.update(_reference(row["ref_bytes"], restored.region(), max_image_pixels))
    return scores


def _reference(data: bytes, restored: np.ndarray, max_pixels: int | None) -> dict[str, Any]:
    try:
        ref_img, _ = open_image(data, "reference", max_pixels)
        reference = to_rgb(ref_img)[0]
    except ItemError as exc:
        log.warning("reference image unusable: %s", exc)
        return {}
    return quality.reference_scores(restored, reference)
