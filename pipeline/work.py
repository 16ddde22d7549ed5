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

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute as pc

from . import ledger, shards
from .config import RestoreConfig
from .model import ModelChoice, choose_model
from .stages.sources import Listing, list_units


@dataclass
class Work:
    model: ModelChoice
    listing: Listing
    layout: str  # output layout
    settings_id: str
    units: list[dict[str, Any]]  # to run
    already: int  # items found done before reading anything
    done: frozenset[str]  # done item keys inside shards (the read stage skips them)
    markers: dict[str, Any] = field(default_factory=dict)  # published shards
    counts: dict[str, int] = field(default_factory=dict)


def find_work(config: RestoreConfig, run_id: str, model: ModelChoice | None = None) -> Work:
    model = model or choose_model(config)
    history = ledger.load_history(config.output, config.io_options, config.io_retries)
    listing = list_units(config, ledger.known_keys(history))
    layout = config.layout_for(listing.layout)
    settings_id = config.settings_id(model.model_id, model.engine, listing.template_url, layout)
    done_at = ledger.done_versions(history, settings_id, config.retry_failed, config.overwrite)
    units, already, done = listing.units, 0, frozenset()
    counts: Counter[str] = Counter()
    if listing.layout == "pairs":  # keys are known: skip done items before reading them
        units = [u for u in units if not ledger.is_done(done_at, u["key"], u["version"])]
        already = len(listing.units) - len(units)
        if config.overwrite:
            counts["overwrite"] = len(units)
        else:
            counts.update(_pair_counts(history, settings_id, listing.units, units, done_at))
    else:  # items of a shard that changed since are not done
        done = _done_in_shards(done_at, listing.units)
    del history
    markers: dict[str, Any] = {}
    if layout != "files" or listing.layout != "pairs":
        markers = shards.load_markers(config.output, config.io_options, config.io_retries)
        units, published = _plan_shards(config, units, listing.layout, settings_id, markers, run_id)
        already += published
        counts["already_done_in_published_shards"] = published
    if listing.layout != "pairs":
        counts["shards_to_read"] = len(units)
        counts["shards_published"] = len(listing.units) - len(units)
    return Work(model, listing, layout, settings_id, units, already, done, markers, dict(counts))


def dry_run(config: RestoreConfig) -> dict[str, Any]:
    """What a run would do now (nothing is written, no Ray is started)."""
    work = find_work(config, run_id="dry-run")
    return {
        "layout": work.listing.layout,
        "output_layout": work.layout,
        "items_listed": work.listing.items,
        "settings_id": work.settings_id,
        "engine": work.model.engine,
        "model_id": work.model.model_id,
        **work.counts,
    }


def _pair_counts(
    history: Any,
    settings_id: str,
    listed: list[dict[str, Any]],
    todo: list[dict[str, Any]],
    done_at: dict[str, str | None],
) -> Counter[str]:
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


def _done_in_shards(done: dict[str, str | None], units: list[dict[str, Any]]) -> frozenset[str]:
    """Done item keys whose shard is the same file as when they were done."""
    shard_versions = {u["key"]: u.get("version") for u in units}
    keep = []
    for key in done:
        shard = key
        while "/" in shard:
            shard = shard.rsplit("/", 1)[0]
            if shard in shard_versions:
                if ledger.is_done(done, key, shard_versions[shard]):
                    keep.append(key)
                break
        else:
            keep.append(key)  # a shard-level error row, or a shard no longer listed
    return frozenset(keep)


def _plan_shards(
    config: RestoreConfig,
    units: list[dict[str, Any]],
    input_layout: str,
    settings_id: str,
    markers: dict[str, Any],
    run_id: str,
) -> tuple[list[dict[str, Any]], int]:
    """(units to run, items found already published). Input shards published with these
    settings are not read again; loose files are cut into output shards of `shard_size`
    items, named after the run (each run's new items make new shards)."""
    layout = config.layout_for(input_layout)
    if input_layout == "pairs":
        for i, unit in enumerate(units):
            n, seq = divmod(i, config.shard_size)
            unit.update(shard=f"{run_id}-{n:06d}", seq=seq)
            if seq == config.shard_size - 1 or i == len(units) - 1:
                unit["shard_items"] = seq + 1
        return units, 0
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


