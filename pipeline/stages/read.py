"""Read stage: unit rows in, item rows with the encoded bytes out (no decoding here).

Runs as Ray tasks. Shards are streamed and cut into blocks of `batch_size` items, so a big
tar or Parquet file never sits in one block. Items the ledger already holds come out as
`already_done` rows without their bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from .. import formats
from ..formats.common import ReadContext, error_row, shard_fields
from ..ledger import shard_done
from ..schema import ALREADY_DONE, ERROR, WORK_SCHEMA, table
from .settings import ReadSettings

UNIT_LAYOUT = {"pair": "pairs", "tar": "webdataset", "parquet": "parquet"}  # unit kind -> layout


def read_units(units: pa.Table, settings: ReadSettings) -> Iterator[pa.Table]:
    """Expand each unit into item rows; yields WORK_SCHEMA tables of <= batch_size rows.
    Items of a shard that the ledger holds done (its unit's `done_file`) become
    `already_done` rows without their bytes."""
    context = ReadContext(settings.storage_options, settings.io_retries, settings.has_template)
    batch_size = settings.batch_size
    pending: list[dict[str, Any]] = []
    for unit in units.to_pylist():
        for row in _count_items(unit, _items(unit, context)):
            row.setdefault("input_version", unit.get("version"))
            if row.get("status") == ERROR and row["key"] in context.done:
                # a damaged shard or an unusable key found again: the ledger already holds
                # its error row (the key is done unless `retry_failed`)
                keep = ("key", "image_uri", "shard", "seq", "shard_items", "sample")
                row = {name: row.get(name) for name in keep} | {"status": ALREADY_DONE}
                row["input_version"] = unit.get("version")
            pending.append(row)
            if len(pending) >= batch_size:
                yield table(pending, WORK_SCHEMA)
                pending = []
    if pending:
        yield table(pending, WORK_SCHEMA)


def _count_items(unit: dict[str, Any], rows: Iterable[dict[str, Any]]) -> Iterator[dict]:
    """A shard's item rows, the last one carrying `shard_items` (how many items the shard
    holds), so the driver knows when every item of the shard has its result. A shard that
    fails part-way ends with a row without `seq`, and so gets no count."""
    if unit["kind"] not in ("tar", "parquet"):
        yield from rows  # pair units carry their own shard fields
        return
    last, count = None, 0
    for row in rows:
        if last is not None:
            yield last
        last, count = row, count + 1
    if last is not None:
        if last.get("seq") is not None:
            last["shard_items"] = count
        yield last


def _items(unit: dict[str, Any], context: ReadContext) -> Iterable[dict[str, Any]]:
    """A unit's item rows, read by its layout's module (pipeline/formats/)."""
    context.seen = {}
    context.done = shard_done(
        unit.get("done_file"), unit["image"], unit.get("version"), context.options
    )
    if unit["kind"] == "invalid":
        row = error_row(unit["key"], unit["image"], unit.get("mask"), unit["error"])
        return [row | shard_fields(unit)]
    return formats.layout(UNIT_LAYOUT[unit["kind"]]).read_unit(unit, context)
