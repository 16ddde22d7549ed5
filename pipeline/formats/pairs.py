"""The `pairs` layout: loose image files under one prefix, masks under another, matched by
relative key (the path without extension: `a/b/photo.jpg` <-> `a/b/photo.png`), or one
`mask_template` for all. An item's key is its relative path without extension."""

from __future__ import annotations

import posixpath
import time
from typing import TYPE_CHECKING, Any

import fsspec

from ..storage import (
    UnsafeKeyError,
    filesystem,
    full_url,
    read_bytes,
    sanitize_key,
    strip_ext,
    unique_key,
)
from .common import IMAGE_EXTS, Found, ReadContext, error_row, rel_key, shard_fields

if TYPE_CHECKING:
    from ..config import RestoreConfig

MASK_PREFERENCE = ("png", "webp", "bmp", "tif", "tiff", "gif", "jpg", "jpeg")


# ---- listing ---------------------------------------------------------------------------------
def pair_units(
    config: RestoreConfig,
    fs: fsspec.AbstractFileSystem,
    details: dict[str, Found],
    base: str,
    mfs: fsspec.AbstractFileSystem | None,
    mroot: str | None,
    mask_details: dict[str, Found],
    known: dict[str, str],
) -> tuple[list[dict], list[str]]:
    """(pair units, keys of the masks without an image) of `details` (images, sorted by
    path), matched with `mask_details` by relative key. `known` (image URL -> key, from the
    ledger) keeps the key a file was given before, whatever has been added beside it since.

    Every rule here looks only at files whose keys could collide (see `key_family`), so the
    partitioned planner (pipeline/planner.py) gives each partition's files the keys the
    whole listing would give them."""
    images = [p for p in details if strip_ext(p)[1] in IMAGE_EXTS]
    stems = [rel_key(p, base) for p in images]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    masks: dict[str, str] = {}
    for path in mask_details if mfs is not None else ():
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
        unit["size"] = details[path].size
        units.append(unit)
    used = set(stems)
    return units, [stem for stem in masks if stem not in used]


def key_family(stem: str) -> str:
    """What every key a file of this stem can get reduces to: the stem made safe, without
    trailing `~N` suffixes or image extensions (`a/b`, `a\\b`, `a/b.png`, `a/b~2` are one
    family). Keys of different families never collide, so each family can be keyed alone."""
    try:
        family = sanitize_key(stem)
    except UnsafeKeyError:
        return stem
    while True:
        base, ext = strip_ext(family)
        if ext in IMAGE_EXTS and base and not base.endswith("/"):
            family = base
            continue
        head, sep, tail = family.rpartition("~")
        if sep and head and tail.isdigit():
            family = head
            continue
        return family


def _rank(ext: str) -> int:
    return MASK_PREFERENCE.index(ext) if ext in MASK_PREFERENCE else len(MASK_PREFERENCE)


# ---- reading ---------------------------------------------------------------------------------
def read_unit(unit: dict[str, Any], context: ReadContext) -> list[dict[str, Any]]:
    """The pair's item row: the image's, mask's and reference's bytes, or an error row; with
    the unit's own output-shard fields (a shard output of loose inputs)."""
    return [_read(unit, context) | shard_fields(unit)]


def _read(unit: dict[str, Any], context: ReadContext) -> dict[str, Any]:
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
            fs, path = filesystem(url, context.options, context.retries)
            row[column] = read_bytes(fs, path, context.retries)
        except FileNotFoundError:
            what = column.split("_")[0]
            message = f"{what} file disappeared after listing: {url}"
            return error_row(row["key"], unit["image"], unit.get("mask"), message, start)
        except Exception as exc:
            message = f"cannot read {url}: {type(exc).__name__}: {exc}"
            return error_row(row["key"], unit["image"], unit.get("mask"), message, start)
    return row
