"""Sources: list the work of a run on the driver, as small unit rows (no image bytes).

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
import posixpath
from dataclasses import dataclass, field
from typing import NamedTuple

import fsspec
import pyarrow as pa

from ..config import ConfigError, RestoreConfig
from ..storage import (
    UnsafeKeyError,
    filesystem,
    full_url,
    is_local,
    protocol_of,
    sanitize_key,
    strip_ext,
    unique_key,
)

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif")
MASK_PREFERENCE = ("png", "webp", "bmp", "tif", "tiff", "gif", "jpg", "jpeg")
UNIT_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # pair | tar | parquet | invalid
        ("key", pa.string()),  # item key (pair) or key prefix (shards)
        ("image", pa.string()),  # URL of the image, or of the shard
        ("mask", pa.string()),
        ("ref", pa.string()),
        ("error", pa.string()),  # for `invalid` units: why the item cannot run
        ("size", pa.int64()),  # bytes of a shard, as listed
        ("version", pa.string()),  # ETag or size:mtime of the image (and mask), or the shard
        # shard outputs of pair inputs: the output shard, place in it, and its item count
        ("shard", pa.string()),
        ("seq", pa.int64()),
        ("shard_items", pa.int64()),
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
    """Resolve the layout and list units; raises ConfigError for unusable inputs.

    `known_keys` (image URL -> key, from the ledger) keeps the key a file was given before,
    whatever has been added beside it since."""
    fs, root = filesystem(config.images, config.io_options, config.io_retries)
    if not fs.exists(root):
        raise ConfigError(f"`images` {config.images!r} does not exist (or is not readable)")
    single = fs.isfile(root)
    mask_details = None
    if config.manifest:
        details, mask_details = _from_manifest(config, root)
    elif single:
        info = fs.info(root)
        details = {root: Found(version(info), info.get("size"))}
    else:
        details = _find(fs, root, exclude=_excluded(config))
    files = list(details)
    layout = config.format if config.format != "auto" else _detect(files, config.images)
    template = config.mask_template
    if config.masks:
        mfs, mroot = filesystem(config.masks, config.io_options, config.io_retries)
        if not mfs.exists(mroot):
            raise ConfigError(f"`masks` {config.masks!r} does not exist (or is not readable)")
        if mfs.isfile(mroot):  # one mask file for every image: the template case
            template = config.masks
    base = posixpath.dirname(root) if single else root
    if layout == "pairs":
        listing = _pairs(config, fs, details, base, template, known_keys or {}, mask_details)
    elif layout == "webdataset":
        listing = _shards(fs, details, base, "tar", ".tar")
    else:
        listing = _shards(fs, details, base, "parquet", ".parquet")
        listing.items = _parquet_rows(fs, files)
    listing.template_url = template
    if listing.orphan_masks:
        log.warning("%d mask(s) have no image with the same key; ignored", listing.orphan_masks)
    return listing


def _excluded(config: RestoreConfig) -> list[str]:
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

    Only that is kept per file: a listing's full detail dicts cost about 1 KB per key. Local
    folders are walked one at a time; object stores are listed flat (one request per 1000 keys).
    """
    if is_local(fs):
        walked = fs.walk(root, detail=True)
        entries = (
            (info["name"], version(info), info.get("size"))
            for _, _, files in walked
            for info in files.values()
        )
    elif hasattr(fs, "_iterdir") and protocol_of(fs.unstrip_protocol(root)) in ("s3", "s3a"):
        entries = iter(_s3_objects(fs, root))
    else:
        entries = ((p, version(i), i.get("size")) for p, i in fs.find(root, detail=True).items())
    keep: dict[str, Found] = {}
    for path, ver, size in entries:
        rel = posixpath.relpath(path, root)
        if any(part.startswith(".") for part in rel.split("/")):
            continue  # hidden files and our own temp files
        if any((path + "/").startswith(prefix) for prefix in exclude):
            continue
        keep[path] = Found(ver, size)
    return dict(sorted(keep.items()))


def _s3_objects(fs: fsspec.AbstractFileSystem, root: str) -> list[tuple[str, str, int | None]]:
    """(path, ETag, size) of every object under `root`, page by page: s3fs's `find` would
    keep a full detail dict per object, and cache them all, until the listing ends."""
    from fsspec.asyn import sync

    bucket, _, prefix = root.partition("/")

    async def collect() -> list[tuple[str, str, int | None]]:
        found = []
        listing = fs._iterdir(bucket, delimiter="", prefix=f"{prefix}/" if prefix else "")
        async for info in listing:
            if info.get("type") == "file":
                found.append((info["name"], version(info), info.get("size")))
        return found

    return sync(fs.loop, collect)


def _from_manifest(config: RestoreConfig, root: str) -> tuple[dict[str, Found], dict[str, Found]]:
    """(images, masks) named by the manifest: its entries under `images` and under `masks`,
    with the same exclusions as a listing (hidden files, OUT, the template)."""
    from .manifest import manifest_entries

    roots = [root]
    if config.masks:
        roots.append(filesystem(config.masks, config.io_options)[1])
    found: list[dict[str, Found]] = [{} for _ in roots]
    exclude = _excluded(config)
    for entry in manifest_entries(config.manifest, config.io_options, config.io_retries):
        if entry["bucket"]:
            path = f"{entry['bucket']}/{entry['key']}"
        else:  # relative to `images`, or a full path of this file system
            path = posixpath.join(root, entry["key"])
        for index, prefix in enumerate(roots):
            rel = posixpath.relpath(path, prefix) if path.startswith(prefix + "/") else None
            if rel is None or any(part.startswith(".") for part in rel.split("/")):
                continue
            if index == 0 and any((path + "/").startswith(p) for p in exclude):
                continue
            info = {"ETag": entry["etag"], "size": entry["size"], "mtime": entry["mtime"]}
            found[index][path] = Found(version(info), entry["size"])
    images = dict(sorted(found[0].items()))
    masks = dict(sorted(found[1].items())) if len(found) > 1 else {}
    return images, masks


class Found(NamedTuple):
    version: str  # ETag, or size:mtime
    size: int | None


def version(info: dict | None) -> str:
    """What changes when a file is replaced: its ETag (object stores), else size and mtime."""
    if not info:
        return ""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return str(etag).strip('"')
    when = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or ""
    return f"{info.get('size')}:{when}"


def _detect(files: list[str], url: str) -> str:
    exts = {strip_ext(p)[1] for p in files}
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


def _rel_key(path: str, base: str) -> str:
    rel = posixpath.relpath(path, base) if base else posixpath.basename(path)
    return strip_ext(rel)[0]


def _pairs(
    config: RestoreConfig,
    fs: fsspec.AbstractFileSystem,
    details: dict[str, Found],
    base: str,
    template: str | None,
    known: dict[str, str],
    listed_masks: dict[str, Found] | None = None,
) -> Listing:
    images = [p for p in details if strip_ext(p)[1] in IMAGE_EXTS]
    stems = [_rel_key(p, base) for p in images]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    masks: dict[str, str] = {}
    mask_details: dict[str, Found] = {}
    mfs = None
    if config.masks and not template:
        mfs, mroot = filesystem(config.masks, config.io_options, config.io_retries)
        mask_details = listed_masks if listed_masks else _find(mfs, mroot, exclude=[])
        for path in mask_details:
            stem, ext = strip_ext(posixpath.relpath(path, mroot))
            if ext not in IMAGE_EXTS:
                continue
            known_mask = masks.get(stem)
            if known_mask is None or _rank(ext) < _rank(strip_ext(known_mask)[1]):
                masks[stem] = path
    units = []
    urls = [full_url(fs, path) for path in images]
    current = set(urls)
    # keys given before stay taken, by their file or by a file since removed
    seen: dict[str, int] = {key: 1 for url, key in known.items() if url not in current}
    for url in urls:
        if url in known:
            seen[known[url]] = 1
    for path, stem, url in zip(images, stems, urls, strict=True):
        unit = {"kind": "pair", "image": url}
        if url in known:  # the key this file was given by an earlier run, whatever is new
            unit["key"] = known[url]
        else:
            # Two images with one stem (photo.jpg, photo.png), or a stem an earlier file took:
            # the new file keeps its extension in the key.
            clash = counts[stem] > 1 or stem in seen
            raw_key = posixpath.relpath(path, base) if clash else stem
            unit["key"] = raw_key
            try:  # `a\\b.png` and `a/b.png` both sanitise to a/b: the second becomes a/b~2
                unit["key"] = unique_key(sanitize_key(raw_key), seen)
            except UnsafeKeyError as exc:
                unit.update(kind="invalid", error=str(exc))
        mask_version = ""
        if mfs is not None:
            mask = masks.get(stem)
            unit["mask"] = full_url(mfs, mask) if mask else None
            mask_version = mask_details[mask].version if mask else ""
            if mask is None:
                unit.update(
                    kind="invalid",
                    error=(
                        f"no mask for this image: expected {config.masks.rstrip('/')}/{stem}"
                        f".png (or .{'/.'.join(IMAGE_EXTS[:3])}); masks match images by "
                        "relative path without extension"
                    ),
                )
        unit["version"] = f"{details[path].version}|{mask_version}"
        units.append(unit)
    used = set(stems)
    orphans = sum(1 for stem in masks if stem not in used)
    return Listing(layout="pairs", units=units, items=len(units), orphan_masks=orphans)


def _rank(ext: str) -> int:
    return MASK_PREFERENCE.index(ext) if ext in MASK_PREFERENCE else len(MASK_PREFERENCE)


def _shards(
    fs: fsspec.AbstractFileSystem,
    details: dict[str, Found],
    base: str,
    kind: str,
    suffix: str,
) -> Listing:
    shards = [p for p in details if p.lower().endswith(suffix)]
    if not shards:
        raise ConfigError(f"no {suffix} shards found for format {kind!r}")
    keys = [_rel_key(p, base) for p in shards]
    folders: set[str] = set()  # every folder that holds a shard, at any depth
    for key in keys:
        folder = posixpath.dirname(key)
        while folder and folder not in folders:
            folders.add(folder)
            folder = posixpath.dirname(folder)
    units = []
    for path, key in zip(shards, keys, strict=True):
        if key in folders:  # a.tar next to a/b.tar: a.tar's `b/x` and a/b.tar's `x` would
            key = posixpath.relpath(path, base)  # both be a/b/x; a.tar keeps its extension
        unit = {"kind": kind, "image": full_url(fs, path), "key": key}
        unit.update(size=details[path].size, version=details[path].version)
        try:
            unit["key"] = sanitize_key(unit["key"])
        except UnsafeKeyError as exc:
            unit.update(kind="invalid", error=str(exc))
        units.append(unit)
    layout = "webdataset" if kind == "tar" else "parquet"
    return Listing(layout=layout, units=units, items=None)


def _parquet_rows(fs: fsspec.AbstractFileSystem, files: list[str]) -> int | None:
    """Row count from Parquet footers (cheap); None if a footer cannot be read here."""
    import pyarrow.parquet as pq

    total = 0
    for path in files:
        if not path.lower().endswith(".parquet"):
            continue
        try:
            with fs.open(path, "rb") as handle:
                total += pq.ParquetFile(handle).metadata.num_rows
        except Exception:
            return None
    return total
