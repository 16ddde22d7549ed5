"""What a run will do, found before anything is read: list the inputs, consult the ledger and
the published shards, and count the items by what will happen to them.

`find_work` is the first step of every run; `dry_run` stops there (`spl restore --dry-run`),
writing nothing. Counts (pairs know every item; shard inputs count shards, since their items are
only known inside them):
- `new`: never restored with these settings; `changed`: restored, but the image or mask was
  replaced since (another ETag, or size and mtime); `retry`: the last row is an error the run
  retries (transient, or any with `retry_failed`);
- `already_done_<status>`: done, by the status of the row that made them done;
- shards: `shards_to_read`, `shards_published` (not read again).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import planner, shards
from .config import ConfigError, RestoreConfig, redact_url
from .model import ModelChoice, choose_model
from .planner import Scratch, Tasks
from .stages.sources import UNIT_SCHEMA, Listing, check_inputs, detect_layout, shard_listing
from .storage import filesystem

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Work:
    model: ModelChoice
    listing: Listing  # layout, item count, template; `units` only for shard inputs
    output_layout: str  # files | webdataset | parquet (the input layout is `listing.layout`)
    settings_id: str
    units: list[dict[str, Any]]  # shard units to run (shard inputs)
    already: int  # items found done before reading anything
    markers: dict[str, Any] = field(default_factory=dict)  # published shards
    counts: dict[str, int] = field(default_factory=dict)
    unit_files: list[str] = field(default_factory=list)  # pairs: Parquet files of units to run
    scratch: Scratch | None = None  # where `unit_files` are
    to_run: int = 0  # items (pairs) or shards the run will read
    pixels_to_run: int = 0  # pairs: the items' expected pixels (pipeline/cost.py); 0: unknown

    def units_table(self) -> pa.Table:
        """Every unit to run in one table (for in-process use on small runs)."""
        tables = [pa.Table.from_pylist(self.units, schema=UNIT_SCHEMA)]
        tables += [_read_units(self.scratch, name) for name in self.unit_files]
        return pa.concat_tables(tables)


def find_work(
    config: RestoreConfig,
    run_id: str,
    model: ModelChoice | None = None,
    scratch: Scratch | None = None,
) -> Work:
    """List the inputs and consult the ledger (pipeline/planner.py: map and reduce tasks,
    on Ray when it is up); `scratch` holds their files (a local temporary folder by default;
    the caller removes it)."""
    model = model or choose_model(config)
    template = check_inputs(config)
    scratch = scratch or Scratch.local()
    tasks = Tasks()
    inputs = planner.map_inputs(config, scratch, tasks, template)
    input_layout = config.format
    if input_layout == "auto":
        input_layout = detect_layout(set(inputs.exts), config.images)
    layout = config.layout_for(input_layout)
    settings_id = config.settings_id(model.model_id, model.engine, template, layout)
    markers: dict[str, Any] = {}
    if layout != "files" or input_layout != "pairs":
        markers = shards.load_markers(config.output, config.io_options, config.io_retries)
    if input_layout == "pairs":
        history = planner.map_history(config, scratch, tasks, by="family")
        reduced = planner.reduce_inputs(
            config,
            inputs,
            history,
            scratch,
            tasks,
            run_id=run_id,
            settings_id=settings_id,
            shard_size=config.shard_size if layout != "files" else None,
        )
        listed = sum(r.listed for r in reduced)
        orphans = sum(r.orphan_masks for r in reduced)
        if config.masks and not template and listed and not any(r.matched for r in reduced):
            raise ConfigError(_no_match(config, reduced))
        if orphans:
            log.warning("%d mask(s) have no image with the same key; ignored", orphans)
        counts: Counter[str] = Counter()
        for r in reduced:
            counts.update(r.counts)
        to_run = sum(r.to_run for r in reduced)
        pixels = sum(r.pixels_to_run for r in reduced)
        if layout != "files":
            counts["already_done_in_published_shards"] = 0
        listing = Listing("pairs", [], listed, orphans, template)
        files = [r.file for r in reduced if r.file]
        return Work(
            model=model, listing=listing, output_layout=layout, settings_id=settings_id, units=[],
            already=listed - to_run, markers=markers, counts=dict(counts), unit_files=files,
            scratch=scratch, to_run=to_run, pixels_to_run=pixels,
        )  # fmt: skip
    fs = filesystem(config.images, config.io_options, config.io_retries)[0]
    details = dict(sorted(planner.listed_files(scratch, inputs)))
    listing = shard_listing(fs, details, inputs.base, input_layout)
    listing.template_url = template
    history = planner.map_history(config, scratch, tasks, by="shard")
    done_file = planner.shard_done_files(config, history, scratch, tasks, settings_id)
    for unit in listing.units:  # each shard's read task loads its own done items
        unit["done_file"] = done_file(unit["image"])
    units, published = _plan_shards(config, listing.units, input_layout, settings_id, markers)
    counts = Counter(already_done_in_published_shards=published)
    counts.update(shards_to_read=len(units), shards_published=len(listing.units) - len(units))
    return Work(
        model=model, listing=listing, output_layout=layout, settings_id=settings_id, units=units,
        already=published, markers=markers, counts=dict(counts), scratch=scratch,
        to_run=len(units),
    )  # fmt: skip


def list_units(config: RestoreConfig) -> Listing:
    """Every unit of the inputs, as a run's plan lists and keys them but without the ledger,
    in this process (or as Ray tasks when Ray is up); for small listings: a probe of a few
    files, tests. Raises ConfigError for unusable inputs."""
    template = check_inputs(config)
    scratch, tasks = Scratch.local(), Tasks()
    try:
        inputs = planner.map_inputs(config, scratch, tasks, template)
        layout = config.format
        if layout == "auto":
            layout = detect_layout(set(inputs.exts), config.images)
        if layout != "pairs":
            fs = filesystem(config.images, config.io_options, config.io_retries)[0]
            details = dict(sorted(planner.listed_files(scratch, inputs)))
            listing = shard_listing(fs, details, inputs.base, layout)
            listing.template_url = template
            return listing
        reduced = planner.reduce_inputs(
            config, inputs, [], scratch, tasks, run_id="list", settings_id="", shard_size=None
        )
        names = [r.file for r in reduced if r.file]
        units = [u for name in names for u in _read_units(scratch, name).to_pylist()]
        units.sort(key=lambda unit: unit["image"])
        orphans = sum(r.orphan_masks for r in reduced)
        return Listing("pairs", units, len(units), orphans, template)
    finally:
        scratch.remove()


def dry_run(config: RestoreConfig) -> dict[str, Any]:
    """What a run would do now (nothing is written to OUT: the plan's files go to a local
    temporary folder, removed at the end)."""
    work = find_work(config, run_id="dry-run")
    work.scratch.remove()
    return {
        "layout": work.listing.layout,
        "output_layout": work.output_layout,
        "items_listed": work.listing.items,
        "settings_id": work.settings_id,
        "engine": work.model.engine,
        "model_id": work.model.model_id,
        **work.counts,
    }


def _read_units(scratch: Scratch, name: str) -> pa.Table:
    fs, path = scratch.path(name)
    with fs.open(path, "rb") as handle:
        return pq.read_table(handle, schema=UNIT_SCHEMA)


def _plan_shards(
    config: RestoreConfig,
    units: list[dict[str, Any]],
    input_layout: str,
    settings_id: str,
    markers: dict[str, Any],
) -> tuple[list[dict[str, Any]], int]:
    """(shard units to run, items found already published): input shards published with
    these settings are not read again."""
    layout = config.layout_for(input_layout)
    todo, already = [], 0
    for unit in units:
        marker = markers.get(unit["key"])
        if shards.is_complete(
            marker, unit, settings_id, layout, config.retry_failed, config.overwrite
        ):
            already += marker["items"]
        else:
            todo.append(unit)
    return todo, already


def _no_match(config: RestoreConfig, reduced: list[planner.Reduced]) -> str:
    """The refusal of a run whose masks match none of its images, with examples of each."""
    images = [key for r in reduced for key in r.examples[0]][:3]
    masks = [key for r in reduced for key in r.examples[1]][:3]
    return (
        f"no mask under `masks` {redact_url(config.masks or '')!r} matches an image under "
        f"`images` (masks match images by relative path without extension): images such as "
        f"{', '.join(images) or '-'}; masks such as {', '.join(masks) or 'none found'}"
    )
