"""Stats sink: the driver buffers stats rows and writes them as Parquet files under OUT/stats.

One writer (the driver) means a retried task can never add a second row for an item. Files
are named `<run_id>-<seq>-<random>.parquet` and written atomically; a killed driver loses at
most the rows of its buffer, whose items the next run simply redoes (their images are
rewritten with the same bytes, under the same names).
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .schema import OK, STATS_SCHEMA
from .storage import atomic_write, filesystem, full_url

log = logging.getLogger(__name__)


class StatsSink:
    def __init__(
        self,
        output: str,
        run_id: str,
        storage_options: dict[str, Any],
        retries: int = 5,
        flush_rows: int = 1000,
        flush_s: float = 30.0,
    ):
        self.fs, root = filesystem(output, storage_options, retries)
        self.folder = f"{root}/stats"
        self.run_id, self.retries = run_id, retries
        self.flush_rows, self.flush_s = flush_rows, flush_s
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.last_flush = time.monotonic()
        self.files: list[str] = []
        self.rows_written = 0
        self.bytes_in = self.bytes_out = 0  # of the restored (ok) items

    def add(self, rows: pa.Table) -> None:
        if rows.num_rows:
            self.buffer.append(rows)
            self.buffered += rows.num_rows
            ok = rows.filter(pc.equal(rows["status"], OK))
            self.bytes_in += pc.sum(ok["input_bytes"]).as_py() or 0
            self.bytes_out += pc.sum(ok["output_bytes"]).as_py() or 0
        if self.buffered >= self.flush_rows or (
            self.buffered and time.monotonic() - self.last_flush >= self.flush_s
        ):
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.buffered:
            return
        rows = pa.concat_tables(self.buffer).cast(STATS_SCHEMA)
        sink = io.BytesIO()
        pq.write_table(rows, sink, compression="zstd")
        name = f"{self.run_id}-{len(self.files):06d}-{uuid.uuid4().hex[:8]}.parquet"
        path = f"{self.folder}/{name}"
        atomic_write(self.fs, path, sink.getvalue(), attempts=max(1, self.retries))
        self.files.append(full_url(self.fs, path))
        self.rows_written += rows.num_rows
        self.buffer, self.buffered = [], 0
        log.debug("wrote %d stats rows to %s", rows.num_rows, path)
