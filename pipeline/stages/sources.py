"""Sources: the inputs of a run as small unit rows (no image bytes): how files are found (local
folders, S3 pages, a manifest's entries), which layout they are, and the shard layouts' unit
rows. What each layout pairs and keys lives in pipeline/formats/. The plan's map and reduce
tasks (pipeline/planner.py) call these pieces; so does `pipeline.work.list_units`, the same plan
run in one process for small listings.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import fsspec
import pyarrow as pa

from .. import formats
from ..config import ConfigError, RestoreConfig
from ..formats import parquet
from ..formats.common import IMAGE_EXTS, Found
from ..storage import filesystem, is_local, protocol_of

log = logging.getLogger(__name__)

UNIT_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # pair | tar | parquet | invalid
        ("key", pa.string()),  # item key (pair) or key prefix (shards)
        ("image", pa.string()),  # URL of the image, or of the shard
        ("mask", pa.string()),
        ("ref", pa.string()),
        ("error", pa.string()),  # for `invalid` units: why the item cannot run
        ("size", pa.int64()),  # bytes of the image or the shard, as listed
        ("version", pa.string()),  # ETag or size:mtime of the image (and mask), or the shard
        # shard outputs of pair inputs: the output shard, place in it, and its item count
        ("shard", pa.string()),
        ("seq", pa.int64()),
        ("shard_items", pa.int64()),
        # shard inputs: the plan's file of the ledger's done items of this shard (or null)
        ("done_file", pa.string()),
    ]
)


@dataclass
class Listing:
    """What a run will work on: unit rows, the layout, and the known item count."""

    layout: str
    units: list[dict] = field(default_factory=list)
    items: int | None = None  # None when only reading the shards tells (tar)
    orphan_masks: int = 0
    template_url: str | None = None


def check_inputs(config: RestoreConfig) -> str | None:
    """Raise ConfigError when `images` or `masks` is missing; the mask template's URL, if any
    (`mask_template`, or `masks` naming one file)."""
    fs, root = filesystem(config.images, config.io_options, config.io_retries)
    if not fs.exists(root):
        raise ConfigError(f"`images` {config.images!r} does not exist (or is not readable)")
    template = config.mask_template
    if config.masks:
        mfs, mroot = filesystem(config.masks, config.io_options, config.io_retries)
        if not mfs.exists(mroot):
            raise ConfigError(f"`masks` {config.masks!r} does not exist (or is not readable)")
        if mfs.isfile(mroot):  # one mask file for every image: the template case
            template = config.masks
    return template


def shard_listing(
    fs: fsspec.AbstractFileSystem, details: dict[str, Found], base: str, layout: str
) -> Listing:
    """The shard units of a `webdataset` or `parquet` input (`details`: its files, sorted)."""
    units = formats.layout(layout).units(fs, details, base)
    if not units:
        raise ConfigError(f"no .{formats.SHARD_EXT[layout]} shards found for format {layout!r}")
    items = parquet.row_count(fs, list(details)) if layout == "parquet" else None
    return Listing(layout=layout, units=units, items=items)


def excluded(config: RestoreConfig) -> list[str]:
    """Prefixes inside `images` that are not inputs: the output, the masks, the template."""
    out = []
    template = config.mask_template if config.mask_template != "auto" else None
    for url in (config.output, config.masks, template):
        if url and protocol_of(url) == protocol_of(config.images):
            path = filesystem(url, config.io_options)[1]
            out.append(path.rstrip("/") + "/")
    return out


def iter_files(
    fs: fsspec.AbstractFileSystem,
    folder: str,
    root: str,
    exclude: list[str],
    recursive: bool = True,
    folders: list[str] | None = None,
) -> Iterator[tuple[str, str, int | None]]:
    """(path, version, size) of the input files in `folder` (and below it when `recursive`),
    streamed: hidden paths (relative to `root`) and the `exclude` prefixes are left out. When
    not recursive, the sub-folders found are appended to `folders`.

    Local folders are read with `os.scandir`, S3 page by page (one request per 1000 keys):
    neither keeps more than a page of entries (s3fs's `find` would keep and cache a detail dict
    per object)."""
    if is_local(fs):
        entries = _local_entries(folder, recursive)
    elif hasattr(fs, "_iterdir") and protocol_of(fs.unstrip_protocol(folder)) in ("s3", "s3a"):
        entries = _s3_entries(fs, folder, recursive)
    elif recursive:
        entries = ((p, i) for p, i in fs.find(folder, detail=True, withdirs=False).items())
    else:
        entries = ((i["name"], i) for i in fs.ls(folder, detail=True))
    for path, info in entries:
        rel = posixpath.relpath(path, root)
        if any(part.startswith(".") for part in rel.split("/")):
            continue  # hidden files and our own temp files
        if any((path + "/").startswith(prefix) for prefix in exclude):
            continue
        if info.get("type") == "directory":
            if folders is not None:
                folders.append(path)
            continue
        yield path, version(info), info.get("size")


def _local_entries(folder: str, recursive: bool) -> Iterator[tuple[str, dict]]:
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir():
                    if recursive:
                        stack.append(entry.path)
                    else:
                        yield entry.path, {"type": "directory"}
                    continue
                stat = entry.stat()
                yield entry.path, {"type": "file", "size": stat.st_size, "mtime": stat.st_mtime}


def _s3_entries(
    fs: fsspec.AbstractFileSystem, folder: str, recursive: bool
) -> Iterator[tuple[str, dict]]:
    """s3fs's async page iterator, driven one page at a time from this thread."""
    from fsspec.asyn import sync

    bucket, _, prefix = folder.partition("/")
    pages = fs._iterdir(
        bucket, delimiter="" if recursive else "/", prefix=f"{prefix}/" if prefix else ""
    )

    async def page() -> list[dict]:
        out = []
        async for info in pages:
            out.append(info)
            if len(out) >= 1000:
                break
        return out

    while batch := sync(fs.loop, page):
        for info in batch:
            yield info["name"], info


def place_entries(
    entries: Iterable[dict], roots: list[str], exclude: list[str]
) -> Iterator[tuple[int, str, str, Found]]:
    """(index of the root it is under, path, path relative to that root, found) of each
    manifest entry under one of `roots` (`roots[0]`: `images`; a `key` without `bucket` is
    relative to it, or a full path of its file system), with the exclusions of a listing:
    hidden files, and `exclude` prefixes under `images`."""
    for entry in entries:
        if entry["bucket"]:
            path = f"{entry['bucket']}/{entry['key']}"
        else:
            path = posixpath.join(roots[0], entry["key"])
        for index, prefix in enumerate(roots):
            if not path.startswith(prefix + "/"):
                continue
            rel = posixpath.relpath(path, prefix)
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            if index == 0 and any((path + "/").startswith(p) for p in exclude):
                continue
            info = {"ETag": entry["etag"], "size": entry["size"], "mtime": entry["mtime"]}
            yield index, path, rel, Found(version(info), entry["size"])


def version(info: dict | None) -> str:
    """What changes when a file is replaced: its ETag (object stores), else size and mtime."""
    if not info:
        return ""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return str(etag).strip('"')
    when = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or ""
    return f"{info.get('size')}:{when}"


def detect_layout(exts: set[str], url: str) -> str:
    """The input layout from the file extensions listed under `images`."""
    kinds = [
        name
        for name, present in (
            ("webdataset", "tar" in exts),
            ("parquet", "parquet" in exts),
            ("pairs", bool(exts & set(IMAGE_EXTS))),
        )
        if present
    ]
    if len(kinds) == 1:
        return kinds[0]
    if not kinds:
        raise ConfigError(
            f"found no images, tar shards or Parquet files under `images` {url!r} "
            f"(image extensions: {', '.join(IMAGE_EXTS)})"
        )
    raise ConfigError(
        f"`images` {url!r} mixes {' and '.join(kinds)} files; set `format` to one of them"
    )
