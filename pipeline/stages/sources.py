"""Sources: the inputs of a run as small unit rows (no image bytes): how files are listed,
paired and keyed. Runs call these pieces from the plan's map and reduce tasks
(pipeline/planner.py); `list_units` chains them in one process for small listings.

Layouts:
- `pairs`: images under one prefix, masks under another, matched by relative key (the path
  without extension: `a/b/photo.jpg` <-> `a/b/photo.png`); or one `mask_template` for all.
- `webdataset`: tar shards of `key.jpg|png|webp|tif` + `key.mask.png` (+ optional `key.gt.*`).
- `parquet`: shards with `key`, `image` (bytes), `mask` (bytes) and optional `reference`.

Item keys: pairs use the relative path without extension; shard items use
`<shard relative path without extension>/<key inside the shard>`, so keys stay unique.
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
from ..formats.pairs import pair_units
from ..storage import filesystem, is_local, protocol_of, strip_ext

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


def list_units(config: RestoreConfig, known_keys: dict[str, str] | None = None) -> Listing:
    """Resolve the layout and list units in this process; raises ConfigError for unusable
    inputs. For small listings (a probe of a few files, tests): runs are planned by
    pipeline/planner.py, which never holds the whole listing in one process.

    `known_keys` (image URL -> key, from the ledger) keeps the key a file was given before,
    whatever has been added beside it since."""
    template = check_inputs(config)
    fs, root = filesystem(config.images, config.io_options, config.io_retries)
    single = fs.isfile(root)
    mask_details = None
    if config.manifest:
        details, mask_details = _from_manifest(config, root)
    elif single:
        info = fs.info(root)
        details = {root: Found(version(info), info.get("size"))}
    else:
        details = _find(fs, root, exclude=excluded(config))
    exts = {strip_ext(p)[1] for p in details}
    layout = config.format if config.format != "auto" else detect_layout(exts, config.images)
    base = posixpath.dirname(root) if single else root
    if layout == "pairs":
        listing = _pairs(config, fs, details, base, template, known_keys or {}, mask_details)
    else:
        listing = shard_listing(fs, details, base, layout)
    listing.template_url = template
    if listing.orphan_masks:
        log.warning("%d mask(s) have no image with the same key; ignored", listing.orphan_masks)
    return listing


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


def _find(fs: fsspec.AbstractFileSystem, root: str, exclude: list[str]) -> dict[str, Found]:
    """Input files under `root` (sorted) with what the listing says of them (version, size).

    Only that is kept per file: a listing's full detail dicts cost about 1 KB per key."""
    found = {path: Found(ver, size) for path, ver, size in iter_files(fs, root, root, exclude)}
    return dict(sorted(found.items()))


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


def _from_manifest(config: RestoreConfig, root: str) -> tuple[dict[str, Found], dict[str, Found]]:
    """(images, masks) named by the manifest: its entries under `images` and under `masks`,
    with the same exclusions as a listing (hidden files, OUT, the template)."""
    from .manifest import manifest_entries

    roots = [root]
    if config.masks:
        roots.append(filesystem(config.masks, config.io_options)[1])
    found: list[dict[str, Found]] = [{} for _ in roots]
    entries = manifest_entries(config.manifest, config.io_options, config.io_retries)
    for index, path, _, details in place_entries(entries, roots, excluded(config)):
        found[index][path] = details
    images = dict(sorted(found[0].items()))
    masks = dict(sorted(found[1].items())) if len(found) > 1 else {}
    return images, masks


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


def _pairs(
    config: RestoreConfig,
    fs: fsspec.AbstractFileSystem,
    details: dict[str, Found],
    base: str,
    template: str | None,
    known: dict[str, str],
    listed_masks: dict[str, Found] | None = None,
) -> Listing:
    mfs = mroot = None
    mask_details: dict[str, Found] = {}
    if config.masks and not template:
        mfs, mroot = filesystem(config.masks, config.io_options, config.io_retries)
        mask_details = listed_masks if listed_masks else _find(mfs, mroot, exclude=[])
    units, orphans = pair_units(config, fs, details, base, mfs, mroot, mask_details, known)
    return Listing(layout="pairs", units=units, items=len(units), orphan_masks=len(orphans))
