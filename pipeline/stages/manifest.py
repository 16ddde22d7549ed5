"""Manifests: the input objects of a run read from an inventory instead of listed.

Archives of millions of objects are enumerated by inventories, not by LIST requests: S3
Inventory writes a `manifest.json` that names CSV or Parquet data files, and many teams keep a
Parquet table of their objects. `manifest` (job key) may be:
- an S3 Inventory `manifest.json`: its `files` are read with its `fileSchema` (CSV) or their
  own columns (Parquet); keys are URL-decoded as S3 Inventory writes them in CSV;
- a CSV file of S3 Inventory rows (no header: bucket, key, size, last modified, ETag by
  default; `manifest_columns` names them otherwise);
- a Parquet file (or a folder of them) with a `key` column and optional `bucket`, `size`,
  `e_tag`/`etag`, `last_modified_date` columns. Without `bucket`, keys are relative to
  `images`, or full paths (`/data/masks/a.png`) of its file system.

Entries are read in batches and only each object's path, version and size are kept, as for a
listing; the files themselves are never listed.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pyarrow.parquet as pq

from ..config import ConfigError
from ..storage import filesystem, read_bytes

INVENTORY_COLUMNS = ("bucket", "key", "size", "last_modified_date", "e_tag")


def manifest_entries(
    url: str, storage_options: dict[str, Any], retries: int
) -> Iterator[dict[str, Any]]:
    """Dicts with `key` and optional `bucket`, `size`, `etag`, `mtime`, one per object."""
    for file in manifest_files(url, storage_options, retries):
        yield from entries_of(file, storage_options, retries)


def manifest_files(url: str, storage_options: dict[str, Any], retries: int) -> list[dict]:
    """The manifest's data files, each as {url, format, columns}: one read task each."""
    fs, path = filesystem(url, storage_options, retries)
    if not fs.exists(path):
        raise ConfigError(f"`manifest` {url!r} does not exist (or is not readable)")
    if path.endswith(".json"):
        return _inventory(fs, path, url, storage_options, retries)
    names = [path] if fs.isfile(path) else sorted(fs.find(path))
    files = []
    for name in names:
        if posixpath.basename(name).startswith("."):
            continue
        kind = "csv" if name.endswith((".csv", ".csv.gz")) else "parquet"
        if kind == "csv" or name.endswith(".parquet"):
            files.append({"url": fs.unstrip_protocol(name), "format": kind,
                          "columns": INVENTORY_COLUMNS})  # fmt: skip
    return files


def entries_of(
    file: dict[str, Any], storage_options: dict[str, Any], retries: int
) -> Iterator[dict[str, Any]]:
    """The entries of one data file of a manifest (see `manifest_files`)."""
    fs, path = filesystem(file["url"], storage_options, retries)
    if file["format"] == "parquet":
        yield from _parquet(fs, path)
    else:
        yield from _csv(read_bytes(fs, path, retries), path, tuple(file["columns"]))


def _inventory(fs: Any, path: str, url: str, options: dict[str, Any], retries: int) -> list[dict]:
    try:
        manifest = json.loads(read_bytes(fs, path, retries))
        schema = [c.strip() for c in manifest.get("fileSchema", "").split(",") if c.strip()]
        kind = manifest.get("fileFormat", "CSV").upper()
        bucket = manifest["destinationBucket"].split(":::")[-1]
        files = [entry["key"] for entry in manifest["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"`manifest` {url!r} is not an S3 Inventory manifest.json: {exc}"
        ) from None
    names = tuple(_snake(c) for c in schema) or INVENTORY_COLUMNS
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    out = []
    for key in files:
        data_url = f"{protocol}://{bucket}/{key}" if protocol != "file" else key
        out.append({"url": data_url, "format": kind.lower(), "columns": names})
    return out


def _csv(data: bytes, name: str, columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    if name.endswith(".gz"):
        import gzip

        data = gzip.decompress(data)
    for values in csv.reader(io.StringIO(data.decode("utf-8"))):
        if not values:
            continue
        row = dict(zip(columns, values, strict=False))
        yield _entry(row, encoded=True)


def _parquet(fs: Any, path: str) -> Iterator[dict[str, Any]]:
    with fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        names = set(parquet.schema_arrow.names)
        if "key" not in names:
            raise ConfigError(f"manifest file {path!r} has no `key` column")
        wanted = [c for c in ("bucket", "key", "size", "e_tag", "etag",
                              "last_modified_date", "mtime") if c in names]  # fmt: skip
        for batch in parquet.iter_batches(batch_size=65_536, columns=wanted):
            for row in batch.to_pylist():
                yield _entry(row, encoded=False)


def _entry(row: dict[str, Any], encoded: bool) -> dict[str, Any]:
    key = str(row["key"])
    size = row.get("size")
    return {
        "bucket": row.get("bucket") or None,
        "key": unquote(key) if encoded else key,
        "size": int(size) if size not in (None, "") else None,
        "etag": (row.get("e_tag") or row.get("etag") or None),
        "mtime": row.get("last_modified_date") or row.get("mtime"),
    }


def _snake(name: str) -> str:
    """`LastModifiedDate` -> `last_modified_date`; `ETag` -> `e_tag`."""
    out = []
    for i, char in enumerate(name):
        starts_word = name[i - 1].islower() or (i + 1 < len(name) and name[i + 1].islower())
        if char.isupper() and i and starts_word:
            out.append("_")
        out.append(char.lower())
    return "".join(out)
