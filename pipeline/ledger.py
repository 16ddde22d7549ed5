"""The run ledger: which items are already done, read from the stats Parquet files of OUT.

The stats rows are the ledger; there is no second bookkeeping store that could disagree
with them. A stats row is written (atomically, by the driver) only after its image is in
place, so "has a row" implies "its output exists". An item is done for this run when a row
with the same `settings_id` (model id + every setting that changes the output) says:
- `ok` or `skipped`;
- `error` of the `permanent` kind (bad input), unless `retry_failed`. `transient` errors
  (storage, timeouts, worker or device faults, a missing mask) are never done: the next run
  retries them on its own. Rows from versions before `error_kind` count as permanent.
`overwrite` ignores the ledger. Why not `ray.data.checkpoint`: see docs/PIPELINE.md.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pyarrow.fs import FSSpecHandler, PyFileSystem

from .errors import TRANSIENT
from .schema import ERROR, OK, SKIPPED, STATS_SCHEMA
from .storage import filesystem, with_retries

log = logging.getLogger(__name__)
LEDGER_COLUMNS = [
    "run_id",
    "key",
    "status",
    "settings_id",
    "finished_at",
    "error_kind",
    "image_uri",
    "input_version",
]

PREFIX = "compacted-"  # a compacted stats file (pipeline/compact.py)
REPLACES = b"spl_replaces"


def replaced_by(fs: Any, paths: list[str], retries: int = 5) -> set[str]:
    """Basenames of stats files that the compacted files among `paths` replace."""
    out: set[str] = set()
    for path in paths:
        if posixpath.basename(path).startswith(PREFIX):
            with fs.open(path, "rb") as handle:
                meta = pq.ParquetFile(handle).schema_arrow.metadata or {}
            out.update(json.loads(meta.get(REPLACES, b"[]")))
    return out


def stats_files(output: str, storage_options: dict[str, Any], retries: int = 5) -> list[str]:
    return stats_listing(output, storage_options, retries)[0]


def stats_listing(
    output: str, storage_options: dict[str, Any], retries: int = 5
) -> tuple[list[str], set[str]]:
    """(stats files to read, basenames of files a compacted file replaces: an interrupted
    compaction's leftovers, skipped by readers)."""
    fs, root = filesystem(output, storage_options, retries)
    folder = f"{root}/stats"
    if not fs.exists(folder):
        return [], set()
    found = with_retries(lambda: fs.find(folder), f"list {folder}", retries)
    files = sorted(
        p for p in found if p.endswith(".parquet") and not posixpath.basename(p).startswith(".")
    )
    replaced = replaced_by(fs, files, retries)
    return [p for p in files if posixpath.basename(p) not in replaced], replaced


def load_history(
    output: str,
    storage_options: dict[str, Any],
    retries: int = 5,
    columns: list[str] | None = None,
) -> pa.Table:
    """All stats rows of OUT (the given columns); files written by older versions may lack
    newer columns, which read as null."""
    columns = columns or LEDGER_COLUMNS
    files = stats_files(output, storage_options, retries)
    if not files:
        return empty_history(columns)
    dataset = _stats_dataset(files, output, storage_options, retries)
    return with_retries(lambda: dataset.to_table(columns=columns), "read stats", retries)


def iter_history(
    files: list[str], output: str, storage_options: dict[str, Any], columns: list[str]
) -> Iterator[pa.RecordBatch]:
    """The given columns of some stats files, a record batch at a time (a compacted file may
    hold every row of OUT)."""
    if files:
        dataset = _stats_dataset(files, output, storage_options)
        yield from dataset.to_batches(columns=columns, batch_size=65_536)


def _stats_dataset(
    files: list[str], output: str, storage_options: dict[str, Any], retries: int = 5
) -> pads.Dataset:
    fs, _ = filesystem(output, storage_options, retries)
    return pads.dataset(
        files, schema=STATS_SCHEMA, format="parquet", filesystem=PyFileSystem(FSSpecHandler(fs))
    )


def shard_done(
    done_file: str | None, shard_url: str, shard_version: str | None, options: dict[str, Any]
) -> frozenset[str]:
    """The done item keys of one shard, from the plan's done file (pipeline/planner.py):
    rows of this shard done for its current version (the shard was not replaced since)."""
    if not done_file:
        return frozenset()
    fs, path = filesystem(done_file, options)
    with fs.open(path, "rb") as handle:
        rows = pq.read_table(handle, filters=[("shard", "=", shard_url)])
    done = dict(zip(rows["key"].to_pylist(), rows["input_version"].to_pylist(), strict=True))
    return frozenset(key for key in done if is_done(done, key, shard_version))


def empty_history(columns: list[str]) -> pa.Table:
    return pa.schema([STATS_SCHEMA.field(c) for c in columns]).empty_table()


def done_keys(
    history: pa.Table, settings_id: str, retry_failed: bool = False, overwrite: bool = False
) -> frozenset[str]:
    """Keys this run must not redo (see the module docstring)."""
    return frozenset(done_versions(history, settings_id, retry_failed, overwrite))


def done_versions(
    history: pa.Table, settings_id: str, retry_failed: bool = False, overwrite: bool = False
) -> dict[str, str | None]:
    """Done keys -> the `input_version` their row recorded (None for rows from before it was
    recorded). An item is redone when its input's version differs (a replaced file)."""
    if overwrite or history.num_rows == 0:
        return {}
    same = history.filter(pc.equal(history["settings_id"], settings_id))
    finished = pc.is_in(same["status"], pa.array([OK, SKIPPED]))
    if not retry_failed:
        permanent = pc.and_(
            pc.equal(same["status"], ERROR),
            pc.fill_null(pc.not_equal(same["error_kind"], TRANSIENT), True),
        )
        finished = pc.or_(finished, permanent)
    done = same.filter(finished)
    if "finished_at" in done.column_names:
        done = done.sort_by([("finished_at", "ascending")])  # the latest row of a key wins
    keys = done["key"].to_pylist()
    if "input_version" not in done.column_names:
        return dict.fromkeys(keys)
    return dict(zip(keys, done["input_version"].to_pylist(), strict=True))


def is_done(done: dict[str, str | None], key: str, version: str | None) -> bool:
    if key not in done:
        return False
    recorded = done[key]
    return recorded is None or not version or recorded == version


def known_keys(history: pa.Table) -> dict[str, str]:
    """Image URL -> the key an earlier run gave it (any settings), so that keys stay stable
    when files are added beside it."""
    if history.num_rows == 0:
        return {}
    uris, keys = history["image_uri"].to_pylist(), history["key"].to_pylist()
    return {uri: key for uri, key in zip(uris, keys, strict=True) if uri and "#" not in uri}


def latest_rows(output: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """The current state of every key: its most recent stats row (all columns)."""
    history = load_history(output, storage_options or {}, columns=list(STATS_SCHEMA.names))
    if history.num_rows == 0:
        return history
    order = history.sort_by([("key", "ascending"), ("finished_at", "descending")])
    keys = order["key"].to_pylist()
    keep = [i for i, key in enumerate(keys) if i == 0 or keys[i - 1] != key]
    return order.take(pa.array(keep, pa.int64()))


def pair_counts(
    history: pa.Table,
    settings_id: str,
    listed: list[dict[str, Any]],
    todo: list[dict[str, Any]],
    done_at: dict[str, str | None],
) -> Counter[str]:
    """What a run does with each listed pair: `already_done_<status>` (by the status of the row
    that made it done), `changed`, `retry` (its last row is an error) or `new`."""
    counts: Counter[str] = Counter()
    status_of: dict[str, str] = {}
    if history.num_rows:
        same = history.filter(pc.equal(history["settings_id"], settings_id))
        same = same.sort_by([("finished_at", "ascending")])
        status_of = dict(zip(same["key"].to_pylist(), same["status"].to_pylist(), strict=True))
    running = {u["key"] for u in todo}
    for unit in listed:
        key = unit["key"]
        if key not in running:
            counts[f"already_done_{status_of.get(key, 'ok')}"] += 1
        elif key in done_at:
            counts["changed"] += 1
        elif key in status_of:
            counts["retry"] += 1
        else:
            counts["new"] += 1
    return counts
