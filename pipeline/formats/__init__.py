"""Data layouts, one module each: how a layout's inputs are listed and read, and how its
output shards are written.

- `pairs`: loose image files beside loose (or one template) mask files;
- `webdataset`: tar shards of `key.<image ext>` + `key.mask.png` (+ `key.gt.*`) samples;
- `parquet`: shards with `key`, `image`, `mask` (+ `reference`) columns.

Every module offers the same reading side: `read_unit(unit, context)` turns one unit row of the
plan into item rows (the encoded bytes, or an error row). The shard layouts also offer the
listing of their shards (`SUFFIX`, `units`) and the writing side: `samples(fs, path)` streams an
input or published shard, `is_item` / `sample_status` read a sample, `to_sample(sample,
input_layout, result)` turns any layout's sample plus its result into this layout's output
sample, and `Shard` builds the output file. `common.py` holds what the layouts share.

May import: `..storage` and `..schema` alone (`..config` only for a type hint); never the
stages, the ledger or the driver.
"""

from __future__ import annotations

from types import ModuleType

from . import pairs, parquet, webdataset

LAYOUTS: dict[str, ModuleType] = {"pairs": pairs, "webdataset": webdataset, "parquet": parquet}
SHARD_LAYOUTS = ("webdataset", "parquet")  # layouts whose files are shards of many items
SHARD_EXT = {name: LAYOUTS[name].SUFFIX for name in SHARD_LAYOUTS}


def layout(name: str) -> ModuleType:
    """The module of a layout by its name (`pairs`, `webdataset`, `parquet`)."""
    return LAYOUTS[name]
