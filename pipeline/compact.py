"""Stats compaction: many small stats files of OUT merged into one, atomically, losing nothing
if interrupted.

Each run writes a stats file every `stats_flush_rows` rows or `stats_flush_s` seconds, so a
recurring batch leaves many small files that every later run lists and reads. Compaction writes
their rows into one `compacted-<time>-<id>.parquet` whose Parquet metadata names the files it
replaces, then deletes those. A reader (`ledger.stats_files`) skips every file that a compacted
file replaces, so a compaction killed between its write and its deletes leaves no duplicate
rows, only files the next compaction deletes. Runs compact their own small files at the end
once there are `min_files` of them (so the cost follows the new rows, not the history);
`spl compact OUT` merges everything into one file. Both hold OUT's lease.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import secrets
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .ledger import PREFIX, REPLACES, stats_listing
from .progress import track
from .schema import STATS_SCHEMA
from .storage import atomic_write, filesystem, with_retries

log = logging.getLogger(__name__)
def compact(
    output: str,
    storage_options: dict[str, Any],
    retries: int = 5,
    full: bool = True,
    min_files: int = 1,
    show: bool = False,
) -> dict[str, Any]:
    """Merge the stats files of OUT (all of them, or with `full=False` the ones not yet
    compacted) into one; returns what was done. `show`: progress on stderr."""
    fs, root = filesystem(output, storage_options, retries)
    # leftovers: files a compacted file replaces, not yet deleted (an interrupted compaction)
    files, leftovers = stats_listing(output, storage_options, retries)
    pending = [p for p in files if full or not posixpath.basename(p).startswith(PREFIX)]
    result = {"files_before": len(files), "compacted": 0, "rows": 0, "file": None}
    if len(pending) < max(2, min_files):
        _delete(fs, root, leftovers, retries)
        return result
    tables = []
    for path in track(pending, "compact: reading", show=show, unit="files"):
        data = with_retries(lambda p=path: fs.cat_file(p), f"read {path}", retries)
        tables.append(_as_stats(pq.read_table(io.BytesIO(data))))
    rows = pa.concat_tables(tables).sort_by([("key", "ascending"), ("finished_at", "ascending")])
    names = sorted(posixpath.basename(p) for p in pending) + sorted(leftovers)
    rows = rows.replace_schema_metadata({REPLACES: json.dumps(names).encode()})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = f"{root}/stats/{PREFIX}{stamp}-{secrets.token_hex(4)}.parquet"
    buffer = io.BytesIO()
    pq.write_table(rows, buffer, compression="zstd", row_group_size=256_000)
    atomic_write(fs, target, buffer.getvalue(), attempts=max(1, retries))
    _delete(fs, root, set(names), retries)
    log.info("compacted %d stats files (%d rows) into %s", len(pending), rows.num_rows, target)
    result.update(compacted=len(pending), rows=rows.num_rows, file=target)
    return result


def _as_stats(rows: pa.Table) -> pa.Table:
    """A stats file of any version as STATS_SCHEMA (columns it lacks are null)."""
    columns = {
        name: rows[name].cast(STATS_SCHEMA.field(name).type)
        if name in rows.column_names
        else pa.nulls(rows.num_rows, STATS_SCHEMA.field(name).type)
        for name in STATS_SCHEMA.names
    }
    return pa.table(columns, schema=STATS_SCHEMA)


def _delete(fs: Any, root: str, names: set[str], retries: int) -> None:
    for name in names:
        path = f"{root}/stats/{name}"
        try:
            with_retries(lambda p=path: fs.rm_file(p), f"delete {path}", retries)
        except FileNotFoundError:
            pass
