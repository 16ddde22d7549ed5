"""The `parquet` layout: shards with a `key` column, `image` and `mask` as bytes, and an
optional `reference`; other columns pass through. An item's key is
`<shard path without extension>/<key>`. An output shard carries each item's stats as `spl_*`
columns (prefixed so that they never collide with the input's own)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..schema import ALREADY_DONE, STATS_SCHEMA
from ..storage import UnsafeKeyError, filesystem, sanitize_key, unique_key
from .common import (
    SPL_PREFIX,
    STATS_MEMBER,
    ReadContext,
    error_row,
    image_member,
    member_ext,
    shard_units,
)

SUFFIX = "parquet"
SPL_FIELDS = [pa.field(SPL_PREFIX + f.name, f.type) for f in STATS_SCHEMA]
INPUT_COLUMNS = ("key", "image", "mask", "reference")


def units(fs: Any, details: dict, base: str) -> list[dict]:
    """One `parquet` unit per shard."""
    return shard_units(fs, details, base, "parquet", SUFFIX)


def row_count(fs: Any, files: list[str]) -> int | None:
    """The item count from the shards' footers (cheap); None if a footer cannot be read here."""
    total = 0
    for path in files:
        if not path.lower().endswith(f".{SUFFIX}"):
            continue
        try:
            with fs.open(path, "rb") as handle:
                total += pq.ParquetFile(handle).metadata.num_rows
        except Exception:
            return None
    return total


# ---- reading ---------------------------------------------------------------------------------
def read_unit(unit: dict[str, Any], context: ReadContext) -> Iterator[dict[str, Any]]:
    """The shard's item rows in order, 16 records at a time; a shard that cannot be read (any
    more) ends with one error row (no `seq`)."""
    url, prefix = unit["image"], unit["key"]
    fs, path = filesystem(url, context.options, context.retries)
    row_index = 0
    try:
        with fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            names = set(parquet.schema_arrow.names)
            missing = {"key", "image"} - names
            if not context.has_template and "mask" not in names:
                missing.add("mask")
            if missing:
                message = (
                    f"Parquet shard lacks column(s) {sorted(missing)}; expected "
                    "key, image (bytes), mask (bytes), optional reference"
                )
                yield error_row(prefix, url, None, message) | {"shard": prefix}
                return
            columns = [c for c in INPUT_COLUMNS if c in names]
            for batch in parquet.iter_batches(batch_size=16, columns=columns):
                for record in batch.to_pylist():
                    row = _item_row(url, prefix, row_index, record, context)
                    raw = record.get("key")
                    sample = None if raw is None else str(raw)
                    yield row | {"shard": prefix, "seq": row_index, "sample": sample}
                    row_index += 1
    except Exception as exc:
        message = f"Parquet shard unreadable after {row_index} row(s): {type(exc).__name__}: {exc}"
        yield error_row(prefix, url, None, message) | {"shard": prefix}


def _item_row(
    url: str, prefix: str, index: int, record: dict[str, Any], context: ReadContext
) -> dict[str, Any]:
    start = time.time()
    image_uri = f"{url}#row={index}"
    mask_uri = None if context.has_template else f"{url}#row={index}/mask"
    raw = record.get("key")
    try:
        key = sanitize_key(f"{prefix}/{raw if raw is not None else ''}")
        if raw is None or str(raw) == "":
            raise UnsafeKeyError(f"row {index} has an empty key")
        key = unique_key(key, context.seen)
    except UnsafeKeyError as exc:
        return error_row(f"{prefix}/#row={index}", image_uri, mask_uri, str(exc), start)
    if key in context.done:
        return {"key": key, "image_uri": image_uri, "status": ALREADY_DONE}
    if not record.get("image"):
        return error_row(key, image_uri, mask_uri, "the `image` value is empty", start)
    if not context.has_template and not record.get("mask"):
        return error_row(key, image_uri, mask_uri, "the `mask` value is empty", start)
    row = {"key": key, "image_uri": image_uri, "mask_uri": mask_uri, "t_start": start}
    row["image_bytes"] = bytes(record["image"])
    if not context.has_template:
        row["mask_bytes"] = bytes(record["mask"])
    if record.get("reference"):
        row["ref_bytes"] = bytes(record["reference"])
    return row


# ---- an input or published shard, record by record -------------------------------------------
def samples(fs: Any, path: str) -> Iterator[dict[str, Any]]:
    """One record (every column) per row, in order."""
    with fs.open(path, "rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=64):
            yield from batch.to_pylist()


def input_schema(fs: Any, path: str) -> pa.Schema:
    with fs.open(path, "rb") as handle:
        return pq.ParquetFile(handle).schema_arrow


def is_item(sample: dict[str, Any]) -> bool:
    """Every row is an image item."""
    return True


def sample_status(sample: dict[str, Any]) -> tuple[str | None, str | None]:
    """(status, error_kind) that a published record holds."""
    return sample.get(SPL_PREFIX + "status"), sample.get(SPL_PREFIX + "error_kind")


# ---- writing ---------------------------------------------------------------------------------
def to_sample(sample: Any, in_layout: str, result: dict[str, Any] | None) -> dict[str, Any]:
    """The output record: the input's columns (a tar's members as columns: image, mask,
    reference, then one binary column per other member), the image replaced by the restored
    one, and the `spl_*` stats columns."""
    if in_layout == "parquet":
        record = {k: v for k, v in sample.items() if not k.startswith(SPL_PREFIX)}
    elif in_layout == "webdataset":
        key, members = sample
        record = {"key": key}
        image = image_member(members)
        for name, data in members:
            ext = member_ext(name)
            if name == image:
                record["image"] = data
            elif ext == STATS_MEMBER:
                continue
            elif ext.split(".", 1)[0] in ("mask", "gt"):
                record["mask" if ext.startswith("mask") else "reference"] = data
            else:
                record[ext.replace(".", "_")] = data
    else:  # a loose file's {"image": original bytes}
        record = {"key": result["key"], "image": sample.get("image") if sample else None}
    if result is not None:
        if result["data"] is not None:
            record["image"] = result["data"]
        record.update({SPL_PREFIX + n: result.get(n) for n in STATS_SCHEMA.names})
    return record


class Shard:
    """A Parquet file of records: the input's schema (when it had one) plus the stats."""

    def __init__(self, input_schema: pa.Schema | None = None) -> None:
        self.input_schema = input_schema
        self.records: list[dict[str, Any]] = []
        self.samples = 0

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.samples += 1

    def close(self) -> bytes:
        if self.input_schema is not None:
            fields = [f for f in self.input_schema if not f.name.startswith(SPL_PREFIX)]
        else:  # key, image, then each other column in the order first seen
            names = ["key", "image"]
            for record in self.records:
                names += [n for n in record if n not in names and not n.startswith(SPL_PREFIX)]
            fields = [pa.field(n, pa.string() if n == "key" else pa.binary()) for n in names]
        metadata = self.input_schema.metadata if self.input_schema is not None else None
        schema = pa.schema([*fields, *SPL_FIELDS], metadata=metadata)
        rows = pa.Table.from_pylist(self.records, schema=schema)
        buffer = io.BytesIO()
        pq.write_table(rows, buffer, compression="zstd")
        return buffer.getvalue()
