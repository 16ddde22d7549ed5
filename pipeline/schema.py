"""Arrow schemas of the rows flowing between stages, and of the stats Parquet files.

Every stage takes and returns a `pyarrow.Table` with a fixed schema, so blocks from
different tasks always concatenate. A row that already has a `status` (error, skipped,
already_done) passes through later stages untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

OK, ERROR, SKIPPED, ALREADY_DONE = "ok", "error", "skipped", "already_done"
STATUSES = (OK, ERROR, SKIPPED)

# Rows between read -> decode -> inpaint -> encode. Payload columns are large_binary (a block
# of a few big images can pass 2 GiB) and are nulled by the stage that consumes them.
WORK_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("image_uri", pa.string()),
        ("mask_uri", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("t_start", pa.float64()),
        ("image_bytes", pa.large_binary()),  # encoded, as read
        ("mask_bytes", pa.large_binary()),
        ("ref_bytes", pa.large_binary()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("input_mode", pa.string()),
        ("input_format", pa.string()),
        ("input_ext", pa.string()),
        ("icc", pa.large_binary()),
        ("exif", pa.large_binary()),  # as in the file (thumbnail and orientation included)
        ("orientation", pa.int32()),  # EXIF orientation of the stored pixels (1-8)
        ("input_bytes", pa.int64()),
        ("pixels", pa.large_binary()),  # RGB uint8 H*W*3, for the model
        ("hole", pa.large_binary()),  # np.packbits of the H*W bool hole map
        ("orig", pa.large_binary()),  # raw pixels in orig_mode, when RGB cannot round-trip
        ("orig_mode", pa.string()),
        # a JPEG written back as a JPEG is decoded only where the stages read it
        # (pipeline/stages/jpeg_region.py): the box of `pixels` decoded so far (null: all of
        # it), and the scan's decoded coefficients (int16 blocks, int64 MCU bit offsets, the
        # unstuffed entropy-coded bytes)
        ("pixels_box", pa.list_(pa.int32())),
        ("jpeg_blocks", pa.large_binary()),
        ("jpeg_bits", pa.large_binary()),
        ("jpeg_raw", pa.large_binary()),
        # prepare -> infer -> finish (pipeline/stages/prepare.py): the model-size windows sent
        # next, N*256*256*3 uint8 (pre-filled as the model reads them) and N packed 256² hole
        # maps; the item's whole window plan (ints per window, and the packed box-sized maps of
        # the hole pixels each window fills)
        ("windows", pa.large_binary()),
        ("window_holes", pa.large_binary()),
        # `refine`: the windows sent are coarse looks, the final pass is still to come
        ("window_boxes", pa.list_(pa.int32())),
        ("window_paste", pa.large_binary()),
        ("refine", pa.bool_()),
        ("predictions", pa.large_binary()),  # N*256*256*3 uint8 from the infer stage
        ("infer_bytes", pa.int64()),  # bytes to and from the inference actor for this item
        # finish -> write: the restored pixels in `restored_box` (x0, y0, x1, y1) only, RGB
        # uint8; everything outside it is `pixels` unchanged
        ("restored", pa.large_binary()),
        ("restored_box", pa.list_(pa.int32())),
        ("changed", pa.large_binary()),  # np.packbits of the box's pixels the restore changed
        ("hole_pixels", pa.int64()),
        ("hole_ratio", pa.float64()),
        ("regions", pa.int32()),
        ("largest_region", pa.int64()),
        ("infer_ms", pa.float64()),
        ("crops", pa.int32()),
        ("crop_scale", pa.float64()),
        ("engine", pa.string()),
        ("model_id", pa.string()),
        ("node", pa.string()),
        ("mask_score", pa.float64()),  # watermark match score (mask_search)
        ("mask_shift", pa.string()),  # "dx,dy" px from the template's expected place
        # the template's opacity inside the hole (uint8, in the box x0, y0, x1, y1): its light
        # pixels are de-blended by the finish stage (`mask_alpha`)
        ("alpha", pa.large_binary()),
        ("alpha_box", pa.list_(pa.int32())),
        # shard outputs (pipeline/shards.py): the output shard, the item's place in it, and on
        # the shard's last item the number of items it holds
        ("shard", pa.string()),
        ("seq", pa.int64()),
        ("shard_items", pa.int64()),
        ("sample", pa.string()),  # the sample's key inside its input shard
        ("input_version", pa.string()),  # ETag or size:mtime of the inputs (sources.py)
    ]
)

# One row per input item per run; DESIGN.md's columns first (extend, don't rename).
STATS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("key", pa.string()),
        ("image_uri", pa.string()),
        ("mask_uri", pa.string()),
        ("output_uri", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("hole_pixels", pa.int64()),
        ("hole_ratio", pa.float64()),
        ("regions", pa.int32()),
        ("strategy", pa.string()),
        ("engine", pa.string()),
        ("model_id", pa.string()),
        ("infer_ms", pa.float64()),
        ("total_ms", pa.float64()),
        # no-reference quality, always present for ok rows
        ("largest_region", pa.int64()),
        ("seam_l1", pa.float64()),
        ("seam_ratio", pa.float64()),
        ("fill_delta", pa.float64()),
        ("fill_brightness", pa.float64()),
        ("fill_texture", pa.float64()),
        ("border_distance", pa.int32()),
        ("crops", pa.int32()),
        ("crop_scale", pa.float64()),
        # reference quality, when a reference image is known
        ("psnr", pa.float64()),
        ("ssim", pa.float64()),
        ("l1", pa.float64()),
        ("node", pa.string()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        # extensions
        ("settings_id", pa.string()),
        ("input_mode", pa.string()),
        ("input_format", pa.string()),
        ("output_mode", pa.string()),
        ("output_bytes", pa.int64()),
        ("mask_score", pa.float64()),
        ("mask_shift", pa.string()),
        ("error_kind", pa.string()),  # transient | permanent (pipeline/errors.py)
        ("shard", pa.string()),  # the output shard holding the item (shard output layouts)
        ("input_bytes", pa.int64()),
        ("jpeg_path", pa.string()),  # JPEG out of JPEG in: coefficients | reencode: <why>
        ("png_path", pa.string()),  # PNG out of PNG in: deflate | reencode: <why>
        ("input_version", pa.string()),  # a changed input is redone by the next run
        ("infer_bytes", pa.int64()),  # bytes to and from the inference actor (windows only)
    ]
)

# What the finish stage hands the driver: stats rows plus what it needs to track shards (the
# input shard an item came from, and on a shard's last item how many items it holds).
RESULT_SCHEMA = STATS_SCHEMA.append(pa.field("shard_items", pa.int64())).append(
    pa.field("input_shard", pa.string())
)


def pack_bits(mask: np.ndarray) -> bytes:
    """A bool map as the bytes of a packed column (row-major)."""
    return np.packbits(mask.ravel()).tobytes()


def unpack_bits(data: bytes, *shape: int) -> np.ndarray:
    """The bool map of `shape` that `pack_bits` packed."""
    count = int(np.prod(shape))
    return np.unpackbits(np.frombuffer(data, np.uint8), count=count).reshape(shape).astype(bool)


def table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (missing keys are null) as a table of exactly `schema`."""
    names = schema.names
    columns = {name: [row.get(name) for row in rows] for name in names}
    return pa.table(columns, schema=schema)


# Whole-image payloads: handed from stage to stage as views of their Arrow buffers, and set
# from NumPy arrays without a copy (a 12 MP RGB image is 36 MB; each copy costs ~10 ms).
ARRAY_COLUMNS = ("pixels", "orig", "restored", "jpeg_blocks", "jpeg_bits", "jpeg_raw")


def rows(batch: pa.Table, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The rows of `batch` (the `names` columns, default all) as dicts; the ARRAY_COLUMNS are
    read-only memoryviews of the table's buffers (what `np.frombuffer` takes), not copies."""
    names = list(batch.schema.names if names is None else names)
    plain = [name for name in names if name not in ARRAY_COLUMNS]
    out = batch.select(plain).to_pylist()
    for name in names:
        if name in ARRAY_COLUMNS:
            for row, view in zip(out, _views(batch[name]), strict=True):
                row[name] = view
    return out


def _views(column: pa.ChunkedArray) -> Iterator[memoryview | None]:
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        _, offsets, data = chunk.buffers()
        ends = np.frombuffer(offsets, np.int64, len(chunk) + 1, chunk.offset * 8)
        whole = memoryview(data) if data is not None else memoryview(b"")
        for i, valid in enumerate(chunk.is_valid().to_pylist()):
            yield whole[ends[i] : ends[i + 1]] if valid else None


def array_column(values: Sequence[Any], type_: pa.DataType) -> pa.ChunkedArray:
    """A large-binary column of bytes-like values (NumPy arrays, memoryviews, bytes; None is
    null), one chunk per value, each wrapping the value's memory without a copy."""
    chunks = []
    for value in values:
        if value is None:
            chunks.append(pa.nulls(1, type_))
            continue
        data = pa.py_buffer(np.ascontiguousarray(value) if isinstance(value, np.ndarray) else value)
        offsets = pa.py_buffer(np.array([0, data.size], np.int64))
        chunks.append(pa.Array.from_buffers(type_, 1, [None, offsets, data]))
    return pa.chunked_array(chunks, type_)


def work_row(**values: Any) -> dict[str, Any]:
    """A work row with only the given fields set; unknown names are a bug, so they raise."""
    unknown = set(values) - set(WORK_SCHEMA.names)
    if unknown:
        raise KeyError(f"not work-row columns: {sorted(unknown)}")
    return values


def each_row(
    batch: pa.Table,
    step: Callable[[dict[str, Any]], dict[str, Any]],
    fail: Callable[[dict[str, Any], Exception], dict[str, Any]],
    reads: Sequence[str] | None = None,
) -> pa.Table:
    """The rule every CPU stage follows, written once: a row that already has a `status`
    passes through untouched; `step(row)` returns the columns it sets on any other row, and an
    exception becomes that row's error (`fail(row, exc)` returns the columns to set). One item
    never takes its neighbours down.

    Rows are dicts of the `reads` columns only (default: all), and only the columns some step
    set are rebuilt: the others (whole images among them) keep their Arrow buffers, uncopied.
    """
    names = list(batch.schema.names if reads is None else dict.fromkeys([*reads, "status"]))
    updates: dict[str, list[Any]] = {}
    for i, row in enumerate(rows(batch, names)):
        if row.get("status"):
            continue
        try:
            changed = step(row)
        except Exception as exc:  # one item never takes its neighbours down
            changed = fail(row, exc)
        for name, value in changed.items():
            if name not in updates:
                updates[name] = [r[name] for r in rows(batch, [name])]
            updates[name][i] = value
    for name, values in updates.items():
        index, type_ = batch.schema.get_field_index(name), batch.schema.field(name).type
        column = array_column(values, type_) if name in ARRAY_COLUMNS else pa.array(values, type_)
        batch = batch.set_column(index, name, column)
    return batch
