"""Part files: the durable results of a shard's items, written by the image sink stage.

With a shard output layout (`webdataset`, `parquet`) the sink cannot write a shard: its items
arrive in many blocks, from many tasks, over the whole run. Each sink call writes instead one
Parquet part per output shard it saw, `OUT/parts/<shard>/<settings_id>/<first seq>-<run>-<id>
.parquet`: per item its place in the shard (`seq`), its stats row, and the encoded image when
it was restored. The stats rows reach the ledger only after their part is written, so an `ok`
row always has its bytes in OUT. pipeline/shards.py publishes a shard from its parts (and from
its earlier published version) once every item has a result.
"""

from __future__ import annotations

import io
import logging
import posixpath
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import TRANSIENT
from ..formats import SHARD_EXT
from ..formats.common import safe_sample_key
from ..schema import ERROR, STATS_SCHEMA, table
from ..storage import (
    atomic_write,
    full_url,
    join_under,
    with_retries,
)

log = logging.getLogger(__name__)
PART_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("out_key", pa.string()),  # the sample's key in an output tar
        ("ext", pa.string()),  # extension of the restored image; null when not restored
        ("data", pa.large_binary()),  # the restored image file; null when not restored
        *STATS_SCHEMA,
    ]
)


def shard_path(root: str, layout: str, shard: str) -> str:
    """Where the published shard lives: OUT/shards/<input shard's relative path>, with the
    output layout's extension (a shard key that kept its extension, `a.tar` beside `a/b.tar`,
    is written as `a.tar` again)."""
    for suffix in SHARD_EXT.values():
        shard = shard.removesuffix(f".{suffix}")
    return join_under(f"{root}/shards", f"{shard}.{SHARD_EXT[layout]}")


def parts_dir(root: str, shard: str, settings_id: str) -> str:
    return join_under(f"{root}/parts", f"{shard}/{settings_id}")


def out_key(row: dict[str, Any], input_layout: str) -> str:
    """The sample key an item gets in an output tar: its item key without the shard prefix.
    That is the input's own key wherever that key is safe and unique in its shard (otherwise
    made safe and unique like every item key: `..` -> `__`, a second `dup` -> `dup~2`); dots in
    the file name become `_` (WebDataset splits member names at the first dot)."""
    key, shard = row["key"], row.get("shard") or ""
    if input_layout != "pairs" and key.startswith(shard + "/"):
        key = key[len(shard) + 1 :]
    return safe_sample_key(key, row.get("seq"))


def member_uri(
    fs: Any, root: str, layout: str, input_layout: str, row: dict[str, Any], ext: str
) -> str:
    """The stats `output_uri` of an item in a shard (readable once the shard is published):
    `shard.tar#<key>.<ext>`, `shard.parquet#row=<seq>` (rows follow the input shard), or
    `#key=<key>` (a shard of loose input files)."""
    url = full_url(fs, shard_path(root, layout, row["shard"]))
    if layout == "webdataset":
        return f"{url}#{out_key(row, input_layout)}.{ext}"
    if input_layout == "pairs":
        return f"{url}#key={row['key']}"
    return f"{url}#row={row['seq']}"


def write_parts(
    fs: Any,
    root: str,
    input_layout: str,
    settings_id: str,
    run_id: str,
    stats: list[dict[str, Any]],
    encoded: list[tuple[bytes | None, str | None, dict[str, Any]]],
    retries: int,
) -> None:
    """One part per output shard of the batch. Rows whose part cannot be written become
    transient errors (the next run redoes them). Rows without a shard or a `seq` (a shard that
    could not be read, items found already done) have nothing to store."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(stats):
        if row.get("shard") is not None and encoded[i][2].get("seq") is not None:
            if row["status"] in ("ok", "error", "skipped"):
                groups.setdefault(row["shard"], []).append(i)
    for shard, members in groups.items():
        rows = []
        for i in members:
            data, ext, work = encoded[i]
            rows.append(
                stats[i] | {"seq": work["seq"], "ext": ext, "data": data}
                | {"out_key": out_key(work, input_layout)}
            )
        first = min(row["seq"] for row in rows)
        name = f"{first:09d}-{run_id}-{uuid.uuid4().hex[:8]}.parquet"
        path = f"{parts_dir(root, shard, settings_id)}/{name}"
        buffer = io.BytesIO()
        pq.write_table(table(rows, PART_SCHEMA), buffer, compression="zstd")
        try:
            atomic_write(fs, path, buffer.getvalue(), attempts=max(1, retries))
        except Exception as exc:
            log.warning("cannot write part %s: %s", path, exc)
            for i in members:
                stats[i].update(
                    status=ERROR,
                    error_kind=TRANSIENT,
                    error=f"cannot write the shard part: {type(exc).__name__}: {exc}",
                )


def read_parts(fs: Any, root: str, shard: str, settings_id: str, retries: int) -> dict[int, dict]:
    """seq -> the item's latest result among the shard's parts (a retried item has several)."""
    folder = parts_dir(root, shard, settings_id)
    fs.invalidate_cache(folder)
    if not fs.exists(folder):
        return {}
    names = with_retries(lambda: fs.ls(folder, detail=False), f"list {folder}", retries)
    results: dict[int, dict] = {}
    for path in sorted(names):
        if not path.endswith(".parquet") or posixpath.basename(path).startswith("."):
            continue
        data = with_retries(lambda p=path: fs.cat_file(p), f"read {path}", retries)
        for row in pq.read_table(io.BytesIO(data), schema=PART_SCHEMA).to_pylist():
            known = results.get(row["seq"])
            if known is None or row["finished_at"] >= known["finished_at"]:
                results[row["seq"]] = row
    return results


def remove_parts(fs: Any, root: str, shard: str) -> None:
    """Delete a published shard's parts, under every settings id (only folders of parts:
    `parts/a/` also holds the parts of a shard named `a/b`)."""
    folder = join_under(f"{root}/parts", shard)
    fs.invalidate_cache(folder)
    if not fs.exists(folder):
        return
    for entry in fs.ls(folder, detail=True):
        name = posixpath.basename(entry["name"].rstrip("/"))
        if entry["type"] == "directory" and len(name) == 16 and _is_hex(name):
            try:
                fs.rm(entry["name"], recursive=True)
            except FileNotFoundError:
                pass


def list_part_shards(fs: Any, root: str, settings_id: str) -> set[str]:
    """Shards that have parts under `settings_id` (e.g. left by an interrupted run)."""
    folder = f"{root}/parts"
    fs.invalidate_cache(folder)
    if not fs.exists(folder):
        return set()
    shards = set()
    for path in fs.find(folder):
        rel = posixpath.relpath(path, folder)
        parent = posixpath.dirname(rel)
        if posixpath.basename(parent) == settings_id:
            shards.add(posixpath.dirname(parent))
    return shards


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
