"""What the layouts share: image extensions, the read context and error rows, the generic
shard listing, and the naming rules of samples and members."""

from __future__ import annotations

import json
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import fsspec

from ..schema import ERROR, STATS_SCHEMA
from ..storage import UnsafeKeyError, full_url, sanitize_key, strip_ext

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif")
STATS_MEMBER = "spl.json"  # a tar sample's stats member
SPL_PREFIX = "spl_"  # a Parquet record's stats columns
MAGIC = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG", "png"),
    (b"GIF8", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
)

Members = list[tuple[str, bytes]]  # (tar member name, bytes), in order


class Found(NamedTuple):
    """What a listing keeps of one file."""

    version: str  # ETag, or size:mtime
    size: int | None


@dataclass
class ReadContext:
    """What reading a unit needs: storage, retries, whether a template replaces the masks, and
    per shard the keys already handed out and those the ledger holds done."""

    options: dict[str, Any]
    retries: int
    has_template: bool
    done: frozenset[str] = frozenset()
    seen: dict[str, int] = field(default_factory=dict)


def error_row(
    key: str, image_uri: str | None, mask_uri: str | None, message: str, start: float | None = None
) -> dict[str, Any]:
    """An item row that carries its error instead of bytes."""
    return {
        "key": key,
        "image_uri": image_uri,
        "mask_uri": mask_uri,
        "status": ERROR,
        "error": message,
        "t_start": start or time.time(),
    }


def shard_fields(unit: dict[str, Any]) -> dict[str, Any]:
    """A unit's own output-shard fields (a shard output of loose inputs), for its item row."""
    return {name: unit.get(name) for name in ("shard", "seq", "shard_items")}


def rel_key(path: str, base: str) -> str:
    """A file's key: its path under `base` without the extension."""
    rel = posixpath.relpath(path, base) if base else posixpath.basename(path)
    return strip_ext(rel)[0]


def shard_units(
    fs: fsspec.AbstractFileSystem, details: dict[str, Found], base: str, kind: str, suffix: str
) -> list[dict]:
    """One unit per shard file ending in `.suffix` (`details`: the listed files, sorted); the
    shard's key is its relative path without the extension."""
    shards = [p for p in details if p.lower().endswith(f".{suffix}")]
    keys = [rel_key(p, base) for p in shards]
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
    return units


def stats_json(result: dict[str, Any]) -> bytes:
    """An item's stats as the JSON a tar sample carries."""
    stats = {name: result.get(name) for name in STATS_SCHEMA.names}
    return json.dumps(stats, default=str, sort_keys=True).encode()


def sniff(data: bytes | None) -> str:
    """An extension for image bytes, from their magic number (`bin` when unknown)."""
    if not data:
        return "bin"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((ext for magic, ext in MAGIC if data.startswith(magic)), "bin")


def member_suffix(name: str) -> str:
    """A tar member's name after its key: `a/x.mask.PNG` -> `mask.PNG`."""
    return name.rsplit("/", 1)[-1].partition(".")[2]


def member_ext(name: str) -> str:
    return member_suffix(name).lower()


def image_member(members: Members) -> str | None:
    """The member a reader takes as the sample's image (the first image extension in order)."""
    by_ext = {member_ext(name): name for name, _ in members}
    return next((by_ext[e] for e in IMAGE_EXTS if e in by_ext), None)


def is_item_member(ext: str) -> bool:
    """Whether a tar member (by its extension after the key) belongs to an image item: the
    image, its mask or its reference. Samples with none of them are metadata only."""
    return ext in IMAGE_EXTS or ext.split(".", 1)[0] in ("mask", "gt")


def safe_sample_key(key: str | None, seq: int | None) -> str:
    """A key that is safe as a tar sample's: made safe like item keys, with no dot in its file
    name (WebDataset splits member names at the first dot)."""
    try:
        key = sanitize_key(key or "")
    except UnsafeKeyError:
        return f"_unsafe/{seq}"
    folder, name = posixpath.split(key)
    return posixpath.join(folder, name.replace(".", "_"))
