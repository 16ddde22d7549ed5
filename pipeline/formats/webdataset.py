"""The `webdataset` layout: tar shards of samples `key.<image ext>` + `key.mask.png`
(+ optional `key.gt.*`), other members passed through. A sample's key is the member path up to
the first dot of its file name (WebDataset's rule); an item's key is
`<shard path without extension>/<sample key>`. An output tar carries each item's stats as a
`<key>.spl.json` member."""

from __future__ import annotations

import io
import json
import logging
import posixpath
import tarfile
import time
from collections.abc import Iterator
from typing import Any

from ..schema import ALREADY_DONE
from ..storage import UnsafeKeyError, filesystem, is_transient, sanitize_key, unique_key
from .common import (
    IMAGE_EXTS,
    SPL_PREFIX,
    STATS_MEMBER,
    Members,
    ReadContext,
    error_row,
    image_member,
    is_item_member,
    member_ext,
    member_suffix,
    safe_sample_key,
    shard_units,
    sniff,
    stats_json,
)

log = logging.getLogger(__name__)
SUFFIX = "tar"
ITEM_COLUMNS = {"image": "", "mask": "mask", "reference": "gt"}  # Parquet column -> member


def units(fs: Any, details: dict, base: str) -> list[dict]:
    """One `tar` unit per shard (the item count is known only once the shards are read)."""
    return shard_units(fs, details, base, "tar", SUFFIX)


# ---- reading ---------------------------------------------------------------------------------
def tar_samples(
    fs: Any, path: str, everything: bool = False
) -> Iterator[tuple[str, dict[str, tuple[str, bytes]]]]:
    """(key, {ext: (member name, bytes)}) per sample, streaming the tar once. Members of one
    sample are adjacent. Members that are not images are skipped unread unless `everything`
    (shard outputs pass them through); sample boundaries are the same either way."""
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


def read_unit(unit: dict[str, Any], context: ReadContext) -> Iterator[dict[str, Any]]:
    """The shard's item rows in order. A transient failure re-reads the tar and skips what was
    already emitted; a shard that stays unreadable ends with one error row (no `seq`)."""
    url, prefix = unit["image"], unit["key"]
    fs, path = filesystem(url, context.options, context.retries)
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
                row = _item_row(url, prefix, key, parts, context)
                if row is not None:
                    yield row | {"shard": prefix, "seq": seen - 1, "sample": key}
            return
        except Exception as exc:
            if attempt <= context.retries and is_transient(exc):
                log.warning("reading %s failed (%s); retrying from item %d", url, exc, emitted)
                time.sleep(min(10.0, 0.2 * 2**attempt))
                continue
            message = (
                f"tar shard unreadable after {emitted} item(s): {type(exc).__name__}: {exc}; "
                "items after that point were not read"
            )
            yield error_row(prefix, url, None, message) | {"shard": prefix}
            return


def _item_row(
    url: str, prefix: str, key: str, parts: dict[str, tuple[str, bytes]], context: ReadContext
) -> dict[str, Any] | None:
    if not parts:
        return None  # a sample of metadata only (.json, .txt): not an image item
    start = time.time()
    image = next((parts[e] for e in IMAGE_EXTS if e in parts), None)
    mask = next((parts[f"mask.{e}"] for e in IMAGE_EXTS if f"mask.{e}" in parts), None)
    ref = next((parts[f"gt.{e}"] for e in IMAGE_EXTS if f"gt.{e}" in parts), None)
    image_uri = f"{url}#{image[0]}" if image else f"{url}#{key}"
    mask_uri = f"{url}#{mask[0]}" if mask else None
    try:
        item_key = unique_key(sanitize_key(f"{prefix}/{key}"), context.seen)
    except UnsafeKeyError as exc:
        raw = unique_key(f"{prefix}/{key}", context.seen)
        return error_row(raw, image_uri, mask_uri, str(exc), start)
    if item_key in context.done:
        return {"key": item_key, "image_uri": image_uri, "status": ALREADY_DONE}
    if image is None:
        exts = "/.".join(IMAGE_EXTS)
        message = f"sample {key!r} has no image member (.{exts})"
        return error_row(item_key, image_uri, mask_uri, message, start)
    if mask is None and not context.has_template:
        message = f"sample {key!r} has no mask member (expected {key}.mask.png)"
        return error_row(item_key, image_uri, None, message, start)
    row = {"key": item_key, "image_uri": image_uri, "mask_uri": mask_uri, "t_start": start}
    row["image_bytes"] = image[1]
    row["input_ext"] = posixpath.splitext(image[0])[1][1:].lower()
    if mask is not None and not context.has_template:
        row["mask_bytes"] = mask[1]
    if ref is not None:
        row["ref_bytes"] = ref[1]
    return row


# ---- an input or published shard, sample by sample -------------------------------------------
def samples(fs: Any, path: str) -> Iterator[tuple[str, Members]]:
    """(key, members) per sample of a tar, every member included, in order."""
    for key, parts in tar_samples(fs, path, everything=True):
        yield key, [(name, data) for name, data in parts.values()]


def is_item(sample: tuple[str, Members]) -> bool:
    """Whether a sample is an image item (it got a stats row) or metadata only."""
    return any(is_item_member(member_ext(name)) for name, _ in sample[1])


def sample_status(sample: tuple[str, Members]) -> tuple[str | None, str | None]:
    """(status, error_kind) that a published sample records."""
    for name, data in sample[1]:
        if name.endswith("." + STATS_MEMBER):
            stats = json.loads(data)
            return stats.get("status"), stats.get("error_kind")
    return None, None


# ---- writing ---------------------------------------------------------------------------------
def to_sample(sample: Any, in_layout: str, result: dict[str, Any] | None) -> tuple[str, Members]:
    """(sample key, members) of the output tar: the input's members in order (renamed only
    where the input's key was unsafe), the image replaced by the restored one (the output's
    extension), and the stats member. A metadata-only sample (`result` None) has no stats."""
    if in_layout == "webdataset":
        key, members = sample
        key = safe_sample_key(key, None) if result is None else result["out_key"]
        image = image_member(members)
        out: Members = []
        for name, data in members:
            if member_ext(name) == STATS_MEMBER:
                continue  # an earlier restore's stats: replaced below
            if name == image and result is not None and result["data"] is not None:
                out.append((f"{key}.{result['ext']}", result["data"]))
            else:
                out.append((f"{key}.{member_suffix(name)}", data))
        if result is None:
            return key, out
    else:  # a Parquet record, or a loose file's {"image": original bytes}
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


class Shard:
    """A tar built in memory: members in the order given."""

    def __init__(self, input_schema: Any = None) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.PAX_FORMAT)
        self.mtime = int(time.time())
        self.samples = 0

    def add(self, sample: tuple[str, Members]) -> None:
        for name, data in sample[1]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), self.mtime, 0o444
            self.tar.addfile(info, io.BytesIO(data))
        self.samples += 1

    def close(self) -> bytes:
        self.tar.close()
        return self.buffer.getvalue()


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
