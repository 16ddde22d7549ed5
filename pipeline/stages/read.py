"""Read stage: unit rows in, item rows with the encoded bytes out (no decoding here).

Runs as Ray tasks. Shards are streamed and cut into blocks of `batch_size` items, so a big
tar or Parquet file never sits in one block. Items the ledger already holds come out as
`already_done` rows without their bytes.
"""

from __future__ import annotations

import logging
import posixpath
import tarfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..ledger import shard_done
from ..schema import ALREADY_DONE, ERROR, WORK_SCHEMA, table
from ..storage import (
    UnsafeKeyError,
    filesystem,
    is_transient,
    read_bytes,
    sanitize_key,
    unique_key,
)
from .settings import ReadSettings
from .sources import IMAGE_EXTS

log = logging.getLogger(__name__)
TAR_IMAGE_EXTS = IMAGE_EXTS


def read_units(units: pa.Table, settings: ReadSettings) -> Iterator[pa.Table]:
    """Expand each unit into item rows; yields WORK_SCHEMA tables of <= batch_size rows.
    Items of a shard that the ledger holds done (its unit's `done_file`) become
    `already_done` rows without their bytes."""
    reader = _Reader(settings.storage_options, settings.io_retries, settings.has_template)
    batch_size = settings.batch_size
    pending: list[dict[str, Any]] = []
    for unit in units.to_pylist():
        for row in _count_items(unit, reader.items(unit)):
            row.setdefault("input_version", unit.get("version"))
            if row.get("status") == ERROR and row["key"] in reader.done:
                # a damaged shard or an unusable key found again: the ledger already holds
                # its error row (the key is done unless `retry_failed`)
                keep = ("key", "image_uri", "shard", "seq", "shard_items", "sample")
                row = {name: row.get(name) for name in keep} | {"status": ALREADY_DONE}
                row["input_version"] = unit.get("version")
            pending.append(row)
            if len(pending) >= batch_size:
                yield table(pending, WORK_SCHEMA)
                pending = []
    if pending:
        yield table(pending, WORK_SCHEMA)


def _count_items(unit: dict[str, Any], rows: Iterable[dict[str, Any]]) -> Iterator[dict]:
    """A shard's item rows, the last one carrying `shard_items` (how many items the shard
    holds), so the driver knows when every item of the shard has its result. A shard that
    fails part-way ends with a row without `seq`, and so gets no count."""
    if unit["kind"] not in ("tar", "parquet"):
        yield from rows  # pair units carry their own shard fields
        return
    last, count = None, 0
    for row in rows:
        if last is not None:
            yield last
        last, count = row, count + 1
    if last is not None:
        if last.get("seq") is not None:
            last["shard_items"] = count
        yield last


class _Reader:
    def __init__(self, options: dict[str, Any], retries: int, has_template: bool):
        self.options, self.retries = options, retries
        self.done: frozenset[str] = frozenset()  # done item keys of the current shard
        self.has_template = has_template
        self.seen: dict[str, int] = {}  # item keys handed out in the current shard

    def items(self, unit: dict[str, Any]) -> Iterable[dict[str, Any]]:
        kind = unit["kind"]
        self.seen = {}
        self.done = shard_done(unit.get("done_file"), unit["image"], unit.get("version"),
                               self.options)  # fmt: skip
        shard = {name: unit.get(name) for name in ("shard", "seq", "shard_items")}
        if kind == "invalid":
            row = _error(unit["key"], unit["image"], unit.get("mask"), unit["error"])
            return [row | shard]
        if kind == "pair":
            return [self._pair(unit) | shard]
        if kind == "tar":
            return self._tar(unit)
        return self._parquet(unit)

    # ---- pairs --------------------------------------------------------------------------
    def _pair(self, unit: dict[str, Any]) -> dict[str, Any]:
        start = time.time()
        row = {"key": unit["key"], "image_uri": unit["image"], "mask_uri": unit.get("mask")}
        row["t_start"] = start
        row["input_ext"] = posixpath.splitext(unit["image"])[1][1:].lower()
        for column, url in (
            ("image_bytes", unit["image"]),
            ("mask_bytes", unit.get("mask")),
            ("ref_bytes", unit.get("ref")),
        ):
            if not url:
                continue
            try:
                fs, path = filesystem(url, self.options, self.retries)
                row[column] = read_bytes(fs, path, self.retries)
            except FileNotFoundError:
                what = column.split("_")[0]
                return _error(
                    row["key"],
                    unit["image"],
                    unit.get("mask"),
                    f"{what} file disappeared after listing: {url}",
                    start,
                )
            except Exception as exc:
                return _error(
                    row["key"],
                    unit["image"],
                    unit.get("mask"),
                    f"cannot read {url}: {type(exc).__name__}: {exc}",
                    start,
                )
        return row

    # ---- webdataset -----------------------------------------------------------------------
    def _tar(self, unit: dict[str, Any]) -> Iterator[dict[str, Any]]:
        url, prefix = unit["image"], unit["key"]
        fs, path = filesystem(url, self.options, self.retries)
        emitted, attempt = 0, 0
        while True:
            attempt += 1
            seen = 0
            try:
                for key, parts in tar_samples(fs, path):
                    seen += 1
                    if seen <= emitted:
                        continue  # already emitted before a transient failure
                    emitted += 1
                    row = self._tar_row(url, prefix, key, parts)
                    if row is not None:
                        yield row | {"shard": prefix, "seq": seen - 1, "sample": key}
                return
            except Exception as exc:
                if attempt <= self.retries and is_transient(exc):
                    log.warning("reading %s failed (%s); retrying from item %d", url, exc, emitted)
                    time.sleep(min(10.0, 0.2 * 2**attempt))
                    continue
                yield _error(
                    prefix,
                    url,
                    None,
                    f"tar shard unreadable after {emitted} item(s): {type(exc).__name__}: {exc}; "
                    "items after that point were not read",
                ) | {"shard": prefix}
                return

    def _tar_row(
        self, url: str, prefix: str, key: str, parts: dict[str, tuple[str, bytes]]
    ) -> dict[str, Any] | None:
        if not parts:
            return None  # a sample of metadata only (.json, .txt): not an image item
        start = time.time()
        image = next((parts[e] for e in TAR_IMAGE_EXTS if e in parts), None)
        mask = next((parts[f"mask.{e}"] for e in IMAGE_EXTS if f"mask.{e}" in parts), None)
        ref = next((parts[f"gt.{e}"] for e in IMAGE_EXTS if f"gt.{e}" in parts), None)
        image_uri = f"{url}#{image[0]}" if image else f"{url}#{key}"
        mask_uri = f"{url}#{mask[0]}" if mask else None
        try:
            item_key = unique_key(sanitize_key(f"{prefix}/{key}"), self.seen)
        except UnsafeKeyError as exc:
            raw = unique_key(f"{prefix}/{key}", self.seen)
            return _error(raw, image_uri, mask_uri, str(exc), start)
        if item_key in self.done:
            return {"key": item_key, "image_uri": image_uri, "status": ALREADY_DONE}
        if image is None:
            return _error(
                item_key,
                image_uri,
                mask_uri,
                f"sample {key!r} has no image member (.{'/.'.join(TAR_IMAGE_EXTS)})",
                start,
            )
        if mask is None and not self.has_template:
            return _error(
                item_key,
                image_uri,
                None,
                f"sample {key!r} has no mask member (expected {key}.mask.png)",
                start,
            )
        row = {"key": item_key, "image_uri": image_uri, "mask_uri": mask_uri, "t_start": start}
        row["image_bytes"] = image[1]
        row["input_ext"] = posixpath.splitext(image[0])[1][1:].lower()
        if mask is not None and not self.has_template:
            row["mask_bytes"] = mask[1]
        if ref is not None:
            row["ref_bytes"] = ref[1]
        return row

    # ---- parquet --------------------------------------------------------------------------
    def _parquet(self, unit: dict[str, Any]) -> Iterator[dict[str, Any]]:
        url, prefix = unit["image"], unit["key"]
        fs, path = filesystem(url, self.options, self.retries)
        row_index = 0
        try:
            with fs.open(path, "rb") as handle:
                parquet = pq.ParquetFile(handle)
                names = set(parquet.schema_arrow.names)
                missing = {"key", "image"} - names
                if not self.has_template and "mask" not in names:
                    missing.add("mask")
                if missing:
                    yield _error(
                        prefix,
                        url,
                        None,
                        f"Parquet shard lacks column(s) {sorted(missing)}; expected "
                        "key, image (bytes), mask (bytes), optional reference",
                    ) | {"shard": prefix}
                    return
                columns = [c for c in ("key", "image", "mask", "reference") if c in names]
                for batch in parquet.iter_batches(batch_size=16, columns=columns):
                    for record in batch.to_pylist():
                        row = self._parquet_row(url, prefix, row_index, record)
                        raw = record.get("key")
                        sample = None if raw is None else str(raw)
                        yield row | {"shard": prefix, "seq": row_index, "sample": sample}
                        row_index += 1
        except Exception as exc:
            yield _error(
                prefix,
                url,
                None,
                f"Parquet shard unreadable after {row_index} row(s): {type(exc).__name__}: {exc}",
            ) | {"shard": prefix}

    def _parquet_row(self, url: str, prefix: str, index: int, record: dict[str, Any]):
        start = time.time()
        image_uri = f"{url}#row={index}"
        mask_uri = None if self.has_template else f"{url}#row={index}/mask"
        raw = record.get("key")
        try:
            key = sanitize_key(f"{prefix}/{raw if raw is not None else ''}")
            if raw is None or str(raw) == "":
                raise UnsafeKeyError(f"row {index} has an empty key")
            key = unique_key(key, self.seen)
        except UnsafeKeyError as exc:
            return _error(f"{prefix}/#row={index}", image_uri, mask_uri, str(exc), start)
        if key in self.done:
            return {"key": key, "image_uri": image_uri, "status": ALREADY_DONE}
        if not record.get("image"):
            return _error(key, image_uri, mask_uri, "the `image` value is empty", start)
        if not self.has_template and not record.get("mask"):
            return _error(key, image_uri, mask_uri, "the `mask` value is empty", start)
        row = {"key": key, "image_uri": image_uri, "mask_uri": mask_uri, "t_start": start}
        row["image_bytes"] = bytes(record["image"])
        if not self.has_template:
            row["mask_bytes"] = bytes(record["mask"])
        if record.get("reference"):
            row["ref_bytes"] = bytes(record["reference"])
        return row


def is_item_member(ext: str) -> bool:
    """Whether a tar member (by its extension after the key) belongs to an image item: the
    image, its mask or its reference. Samples with none of them are metadata only."""
    return ext in TAR_IMAGE_EXTS or ext.split(".", 1)[0] in ("mask", "gt")


def tar_samples(
    fs: Any, path: str, everything: bool = False
) -> Iterator[tuple[str, dict[str, tuple[str, bytes]]]]:
    """(key, {ext: (member name, bytes)}) per WebDataset sample, streaming the tar once.

    The key is the member path up to the first dot of its file name (WebDataset's rule);
    members of one sample are adjacent. Members that are not images are skipped unread unless
    `everything` (shard outputs pass them through); sample boundaries are the same either way.
    """
    with fs.open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r|*") as tar:
        current, parts, exts = None, {}, set()
        for member in tar:
            if not member.isfile():
                continue
            folder, base = posixpath.split(member.name)
            if base.startswith("."):
                continue
            stem, _, ext = base.partition(".")
            key, ext = posixpath.join(folder, stem), ext.lower()
            if key != current or ext in exts:  # a repeated member starts a new sample
                if current is not None:
                    yield current, parts
                current, parts, exts = key, {}, set()
            exts.add(ext)
            if everything or is_item_member(ext):
                data = tar.extractfile(member)
                parts[ext] = (member.name, data.read() if data else b"")
        if current is not None:
            yield current, parts


def _error(
    key: str, image_uri: str | None, mask_uri: str | None, message: str, start: float | None = None
) -> dict[str, Any]:
    return {
        "key": key,
        "image_uri": image_uri,
        "mask_uri": mask_uri,
        "status": ERROR,
        "error": message,
        "t_start": start or time.time(),
    }
