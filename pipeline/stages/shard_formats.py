"""Samples of the shard layouts: read an input shard whole, turn a sample plus its result
into an output sample, and write output shards (WebDataset tar, Parquet).

A result is a part row (pipeline/stages/shard_parts.py): the item's stats and, when it was restored,
the encoded image. An item that was not restored keeps its original image; its stats say why.
Stats travel as a `<key>.spl.json` member in a tar, and as `spl_<column>` columns in Parquet
(prefixed so that they never collide with the input's own columns).
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..schema import STATS_SCHEMA
from .read import TAR_IMAGE_EXTS, is_item_member, tar_samples
from .shard_parts import safe_sample_key

STATS_MEMBER = "spl.json"
SPL_PREFIX = "spl_"
SPL_FIELDS = [pa.field(SPL_PREFIX + f.name, f.type) for f in STATS_SCHEMA]
MAGIC = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG", "png"),
    (b"GIF8", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
)
# Parquet columns of the image item (as the parquet input layout names them) <-> tar members
ITEM_COLUMNS = {"image": "", "mask": "mask", "reference": "gt"}

Members = list[tuple[str, bytes]]  # (tar member name, bytes), in order


# ---- reading ---------------------------------------------------------------------------------
def input_samples(fs: Any, path: str, layout: str) -> Iterator[Any]:
    """The samples of an input (or published) shard, in order: for a tar, (key, members);
    for Parquet, one record (dict of every column) per row."""
    if layout == "webdataset":
        for key, parts in tar_samples(fs, path, everything=True):
            yield key, [(name, data) for name, data in parts.values()]
        return
    with fs.open(path, "rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=64):
            yield from batch.to_pylist()


def parquet_schema(fs: Any, path: str) -> pa.Schema:
    with fs.open(path, "rb") as handle:
        return pq.ParquetFile(handle).schema_arrow


def is_item(sample: Any, layout: str) -> bool:
    """Whether an input sample is an image item (it got a stats row) or metadata only."""
    if layout != "webdataset":
        return True
    return any(is_item_member(_ext(name)) for name, _ in sample[1])


def sample_status(sample: Any, layout: str) -> tuple[str | None, str | None]:
    """(status, error_kind) that a published sample records."""
    if layout == "parquet":
        return sample.get(SPL_PREFIX + "status"), sample.get(SPL_PREFIX + "error_kind")
    for name, data in sample[1]:
        if name.endswith("." + STATS_MEMBER):
            stats = json.loads(data)
            return stats.get("status"), stats.get("error_kind")
    return None, None


# ---- one sample out ----------------------------------------------------------------------------
def stats_json(result: dict[str, Any]) -> bytes:
    stats = {name: result.get(name) for name in STATS_SCHEMA.names}
    return json.dumps(stats, default=str, sort_keys=True).encode()


def to_tar(sample: Any, in_layout: str, result: dict[str, Any] | None) -> tuple[str, Members]:
    """(sample key, members) of the output tar: the input's members in order (renamed only
    where the input's key was unsafe), the image replaced by the restored one (the output's
    extension), and the stats member. A metadata-only sample (`result` None) has no stats."""
    if in_layout == "webdataset":
        key, members = sample
        if result is None:
            key = safe_sample_key(key, None)
        else:
            key = result["out_key"]
        image = _image_member(members)
        out: Members = []
        for name, data in members:
            if _ext(name) == STATS_MEMBER:
                continue  # an earlier restore's stats: replaced below
            if name == image and result is not None and result["data"] is not None:
                out.append((f"{key}.{result['ext']}", result["data"]))
            else:
                out.append((f"{key}.{_suffix(name)}", data))
        if result is None:
            return key, out
    else:
        key, out = result["out_key"], []
        record = sample or {}
        image = result["data"] if result["data"] is not None else record.get("image")
        ext = result["ext"] if result["data"] is not None else sniff(image)
        if image is not None:
            out.append((f"{key}.{ext}", image))
        for column, value in record.items():
            if column in ("key", "image") or column.startswith(SPL_PREFIX) or value is None:
                continue
            out.append((f"{key}.{_member_name(column, value)}", _member_bytes(value)))
    out.append((f"{key}.{STATS_MEMBER}", stats_json(result)))
    return key, out


def to_record(sample: Any, in_layout: str, result: dict[str, Any] | None) -> dict[str, Any]:
    """The output Parquet row: the input's columns (a tar's members as columns: image, mask,
    reference, then one binary column per other member), the image replaced by the restored
    one, and the `spl_*` stats columns."""
    if in_layout == "parquet":
        record = {k: v for k, v in sample.items() if not k.startswith(SPL_PREFIX)}
    elif in_layout == "webdataset":
        key, members = sample
        record = {"key": key}
        image = _image_member(members)
        for name, data in members:
            ext = _ext(name)
            if name == image:
                record["image"] = data
            elif ext == STATS_MEMBER:
                continue
            elif ext.split(".", 1)[0] in ("mask", "gt"):
                record["mask" if ext.startswith("mask") else "reference"] = data
            else:
                record[ext.replace(".", "_")] = data
    else:
        record = {"key": result["key"], "image": sample.get("image") if sample else None}
    if result is not None:
        if result["data"] is not None:
            record["image"] = result["data"]
        record.update({SPL_PREFIX + n: result.get(n) for n in STATS_SCHEMA.names})
    return record


# ---- writers -----------------------------------------------------------------------------------
class TarShard:
    """A WebDataset tar built in memory: members in the order given."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.PAX_FORMAT)
        self.mtime = int(time.time())
        self.samples = 0

    def add(self, sample: Any) -> None:
        for name, data in sample[1]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), self.mtime, 0o444
            self.tar.addfile(info, io.BytesIO(data))
        self.samples += 1

    def close(self) -> bytes:
        self.tar.close()
        return self.buffer.getvalue()


class ParquetShard:
    """A Parquet file of records: the input's schema (when it had one) plus the stats."""

    def __init__(self, input_schema: pa.Schema | None) -> None:
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


# ---- helpers -----------------------------------------------------------------------------------
def sniff(data: bytes | None) -> str:
    """An extension for image bytes, from their magic number (`bin` when unknown)."""
    if not data:
        return "bin"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((ext for magic, ext in MAGIC if data.startswith(magic)), "bin")


def _suffix(name: str) -> str:
    """A tar member's name after its key: `a/x.mask.PNG` -> `mask.PNG`."""
    return name.rsplit("/", 1)[-1].partition(".")[2]


def _ext(name: str) -> str:
    return _suffix(name).lower()


def _image_member(members: Members) -> str | None:
    """The member the reader took as the image (the first image extension in its order)."""
    by_ext = {_ext(name): name for name, _ in members}
    return next((by_ext[e] for e in TAR_IMAGE_EXTS if e in by_ext), None)


def _member_name(column: str, value: Any) -> str:
    if column in ITEM_COLUMNS and isinstance(value, bytes):
        prefix = ITEM_COLUMNS[column]
        return f"{prefix}.{sniff(value)}" if prefix else sniff(value)
    if isinstance(value, bytes | str) or column.endswith("json"):
        return column
    return f"{column}.json"


def _member_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, default=str).encode()
