"""Shard outputs: publish each output shard once all of its items have results, and skip
input shards whose output is already published with the same settings. With loose files out
of shard inputs, the same bookkeeping records input shards whose items are all done, so that
the next run does not read them again.

The sink stage writes results into part files (pipeline/stages/shard_parts.py). The driver
counts the stats rows of each shard (`ShardPublisher`); when a shard has all of them it flushes
the stats and starts a Ray task that builds the shard and writes it under its final name in one
atomic write, then its marker `OUT/published/<shard>.json`, then deletes the parts. The shard is
built from the input shard (every other member or column passes through, in order), the parts,
and the shard's earlier published version (items done by an earlier run). An interrupted run
leaves parts; the next run finds their items done and publishes the shard. """

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from . import formats
from .errors import TRANSIENT
from .formats import parquet
from .schema import ERROR
from .stages.shard_parts import (
    list_part_shards,
    read_parts,
    remove_parts,
    shard_path,
)
from .storage import atomic_write, filesystem, full_url, join_under, read_bytes, with_retries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardJob:
    """What publishing one shard needs (sent to a Ray task)."""

    shard: str
    layout: str  # webdataset | parquet (output)
    input_layout: str  # webdataset | parquet | pairs
    input_url: str | None  # the input shard (None for a shard of loose files)
    input_size: int | None
    input_version: str | None
    output: str
    storage_options: dict[str, Any]
    retries: int
    settings_id: str
    run_id: str
    use_base: bool  # take items done earlier from the published shard


def marker_path(root: str, shard: str) -> str:
    return join_under(f"{root}/published", f"{shard}.json")


def publish_shard(job: ShardJob) -> dict[str, Any]:
    """Build and publish one shard; returns its marker, or {"published": False, "reason"}."""
    fs, root = filesystem(job.output, job.storage_options, job.retries)
    try:
        return _publish(job, fs, root)
    except Exception as exc:
        log.exception("shard %s not published", job.shard)
        return {"shard": job.shard, "published": False, "reason": f"{type(exc).__name__}: {exc}"}


def _publish(job: ShardJob, fs: Any, root: str) -> dict[str, Any]:
    results = read_parts(fs, root, job.shard, job.settings_id, job.retries)
    target = shard_path(root, job.layout, job.shard)
    out_format, in_format = formats.layout(job.layout), formats.layout(job.input_layout)
    schema = None
    if job.layout == "parquet" and job.input_layout == "parquet":  # keep the input's schema
        in_fs, in_path = filesystem(job.input_url, job.storage_options, job.retries)
        schema = parquet.input_schema(in_fs, in_path)
    writer = out_format.Shard(schema)
    counts: Counter[str] = Counter()
    missing = 0

    def emit(sample: Any, result: dict[str, Any] | None) -> None:
        writer.add(out_format.to_sample(sample, job.input_layout, result))
        if result is not None:
            counts[result["status"]] += 1
            counts["retryable"] += result["status"] == ERROR and result["error_kind"] == TRANSIENT

    if job.input_layout == "pairs":  # the results are the samples
        for seq in sorted(results):
            emit(_original(results[seq], job), results[seq])
    else:
        in_fs, in_path = filesystem(job.input_url, job.storage_options, job.retries)
        base = _base(fs, target, job)
        for seq, sample in enumerate(in_format.samples(in_fs, in_path)):
            earlier = next(base, None) if base is not None else None
            if seq in results:
                emit(sample, results[seq])
            elif not in_format.is_item(sample):
                emit(sample, None)
            elif earlier is not None:  # the published shard follows the input one to one
                writer.add(earlier)  # already in the output shape
                status, kind = out_format.sample_status(earlier)
                counts[status or "ok"] += 1
                counts["retryable"] += status == ERROR and kind == TRANSIENT
            else:
                missing += 1
    if missing:
        return {
            "shard": job.shard,
            "published": False,
            "reason": f"{missing} item(s) have no result in this run's or earlier parts (they "
            "are done in the stats, but their restored bytes are gone); rerun with --overwrite",
        }
    data = writer.close()
    atomic_write(fs, target, data, attempts=max(1, job.retries))
    marker = {
        **{k: v for k, v in asdict(job).items() if k in ("shard", "layout", "settings_id")},
        "published": True,
        "output_uri": full_url(fs, target),
        "input_uri": job.input_url,
        "input_size": job.input_size,
        "input_version": job.input_version,
        "run_id": job.run_id,
        "samples": writer.samples,
        "items": sum(counts[s] for s in ("ok", "error", "skipped")),
        "counts": {s: counts[s] for s in ("ok", "error", "skipped")},
        "retryable": counts["retryable"],
        "bytes": len(data),
        "published_at": datetime.now(UTC).isoformat(),
    }
    text = json.dumps(marker, indent=1, sort_keys=True).encode()
    atomic_write(fs, marker_path(root, job.shard), text, attempts=max(1, job.retries))
    remove_parts(fs, root, job.shard)
    return marker


def _base(fs: Any, target: str, job: ShardJob) -> Any:
    """The published shard's samples (items done by earlier runs), or None."""
    fs.invalidate_cache(target)
    if not job.use_base or not fs.exists(target):
        return None
    return iter(formats.layout(job.layout).samples(fs, target))


def _original(result: dict[str, Any], job: ShardJob) -> dict[str, Any]:
    """A loose input file's original bytes, for an item that was not restored."""
    if result["data"] is not None or not result.get("image_uri"):
        return {}
    try:
        fs, path = filesystem(result["image_uri"], job.storage_options, job.retries)
        return {"image": read_bytes(fs, path, job.retries)}
    except Exception as exc:  # the item failed; its stats say why, the sample stays
        log.info("original of %s unavailable: %s", result["key"], exc)
        return {}


# ---- before the run: which input shards are already published ----------------------------------
def load_markers(
    output: str, storage_options: dict[str, Any], retries: int
) -> dict[str, dict[str, Any]]:
    """shard -> its marker, for every shard published under OUT."""
    fs, root = filesystem(output, storage_options, retries)
    folder = f"{root}/published"
    fs.invalidate_cache(folder)
    if not fs.exists(folder):
        return {}
    markers = {}
    for path in with_retries(lambda: fs.find(folder), f"list {folder}", retries):
        if path.endswith(".json"):
            marker = json.loads(read_bytes(fs, path, retries))
            markers[marker["shard"]] = marker
    return markers


def is_complete(
    marker: dict[str, Any] | None,
    unit: dict[str, Any],
    settings_id: str,
    layout: str,
    retry_failed: bool,
    overwrite: bool,
) -> bool:
    """Whether an input shard needs no reading: published with these settings from the same
    input (ETag, or size and mtime), with no error the next run would retry."""
    return bool(
        marker
        and not overwrite
        and marker["settings_id"] == settings_id
        and marker["layout"] == layout
        and _same_input(marker, unit)
        and marker["retryable"] == 0
        and not (retry_failed and _may_hold_errors(marker))
    )


def _may_hold_errors(marker: dict[str, Any]) -> bool:
    """Errors, or items an earlier run did (whose rows this marker did not see)."""
    counts = marker["counts"]
    return bool(counts["error"] or counts.get("already_done"))


def _same_input(marker: dict[str, Any], unit: dict[str, Any]) -> bool:
    """Whether the input shard is the file the marker's shard was built from."""
    if marker.get("input_version") and unit.get("version"):
        return marker["input_version"] == unit["version"]
    return marker.get("input_size") == unit.get("size")


# ---- during the run: the driver's bookkeeping ---------------------------------------------------
class ShardPublisher:
    """Counts each shard's stats rows and publishes a shard (a Ray task) once it has them all;
    `finish` publishes the rest (empty shards, shards left by interrupted runs) and waits."""

    def __init__(
        self,
        config: Any,
        output_layout: str,
        input_layout: str,
        settings_id: str,
        run_id: str,
        units: list[dict[str, Any]],
        markers: dict[str, dict[str, Any]],
        flush: Any,
    ) -> None:
        self.config, self.output_layout, self.input_layout = config, output_layout, input_layout
        self.settings_id, self.run_id, self.flush = settings_id, run_id, flush
        self.markers = markers
        self.inputs = {
            u["key"]: u for u in units if u["kind"] in ("tar", "parquet")
        }  # shard -> its input unit
        self.seen: Counter[str] = Counter()
        self.statuses: dict[str, Counter[str]] = {}
        self.totals: dict[str, int] = {}
        self.started: dict[str, Any] = {}
        self.marked = 0

    def add(
        self,
        shards: list[str | None],
        totals: list[int | None],
        statuses: list[str],
        kinds: list[str | None],
    ) -> None:
        rows = zip(shards, totals, statuses, kinds, strict=True)
        for shard, total, status, kind in rows:
            if shard is None:
                continue
            self.seen[shard] += 1
            counts = self.statuses.setdefault(shard, Counter())
            counts[status] += 1
            counts["retryable"] += kind == TRANSIENT
            if total is not None:
                self.totals[shard] = total
            if self.seen[shard] == self.totals.get(shard) and shard not in self.started:
                self.flush()  # the stats of every item in the shard are in the ledger first
                if self.output_layout == "files":
                    self._mark_done(shard)
                else:
                    self._start(shard)

    def finish(self) -> dict[str, Any]:
        self.flush()
        if self.output_layout == "files":
            return {"layout": "files", "input_shards_done": self.marked}
        rest = set(self.inputs) | set(self.seen)
        if self.input_layout == "pairs":  # shards of loose files left by interrupted runs
            fs, root = filesystem(self.config.output, self.config.io_options)
            rest |= list_part_shards(fs, root, self.settings_id)
        for shard in sorted(rest - set(self.started)):
            self._start(shard)
        import ray

        outcomes = ray.get(list(self.started.values()))
        failed = [o for o in outcomes if not o.get("published")]
        for outcome in failed:
            log.warning("shard %s not published: %s", outcome["shard"], outcome["reason"])
        return {
            "layout": self.output_layout,
            "published": len(outcomes) - len(failed),
            "not_published": failed,
            "bytes": sum(o.get("bytes", 0) for o in outcomes),
        }

    def _mark_done(self, shard: str) -> None:
        """Files out of shards: record that every item of the input shard has its row, so the
        next run need not read it (the images themselves are already under OUT/images)."""
        self.started[shard] = None
        unit, counts = self.inputs.get(shard, {}), self.statuses[shard]
        marker = {
            "shard": shard,
            "layout": "files",
            "settings_id": self.settings_id,
            "input_uri": unit.get("image"),
            "input_size": unit.get("size"),
            "input_version": unit.get("version"),
            "run_id": self.run_id,
            "items": self.totals[shard],
            "counts": {s: counts[s] for s in ("ok", "error", "skipped", "already_done")},
            "retryable": counts["retryable"],
            "published_at": datetime.now(UTC).isoformat(),
        }
        fs, root = filesystem(self.config.output, self.config.io_options, self.config.io_retries)
        text = json.dumps(marker, indent=1, sort_keys=True).encode()
        atomic_write(fs, marker_path(root, shard), text, attempts=max(1, self.config.io_retries))
        self.marked += 1

    def _start(self, shard: str) -> None:
        import ray

        unit = self.inputs.get(shard, {})
        marker = self.markers.get(shard)
        job = ShardJob(
            shard=shard,
            layout=self.output_layout,
            input_layout=self.input_layout,
            input_url=unit.get("image"),
            input_size=unit.get("size"),
            input_version=unit.get("version"),
            output=self.config.output,
            storage_options=self.config.io_options,
            retries=self.config.io_retries,
            settings_id=self.settings_id,
            run_id=self.run_id,
            use_base=bool(
                marker
                and not self.config.overwrite
                and marker["settings_id"] == self.settings_id
                and _same_input(marker, unit)
            ),
        )
        task = ray.remote(publish_shard).options(num_cpus=1, max_retries=2)
        self.started[shard] = task.remote(job)
