"""`run_restore(config) -> summary`: list, consult the ledger, stream the plan, write stats and
the run summary (OUT/runs/<run_id>.json)."""

from __future__ import annotations

import logging
import secrets
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow.compute as pc

from . import shards
from .compact import compact
from .config import ConfigError, RestoreConfig, redact_url
from .crashes import start_journal
from .dataset import Resources, build_dataset, pool_settings, resources, wait_for_gpus
from .interrupt import Gate, Interrupted, Stopped, consume_until_stopped, start_switch
from .lease import Lease
from .model import ModelChoice, choose_model
from .planner import Scratch
from .preflight import preflight
from .progress import Progress
from .ray_init import ensure_ray
from .schema import ALREADY_DONE, STATS_SCHEMA
from .stages.infer import InferPool, pool_facts, start_pool, stop_pool
from .stages.sources import Listing
from .stats import StatsSink
from .storage import filesystem, read_bytes
from .summary import RunSummary
from .work import Work, find_work

log = logging.getLogger(__name__)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def run_restore(config: RestoreConfig) -> dict[str, Any]:
    """Run one restore job to the end and return its summary (also written under OUT/runs)."""
    import ray

    started_at, t0 = datetime.now(UTC), time.monotonic()
    run_id = config.run_id or new_run_id()
    model = choose_model(config)  # an unusable checkpoint fails before anything is touched
    preflight(config)  # missing inputs, no masks, unreachable storage, read-only OUT
    # one run per OUT: a second one fails here, naming the holder
    with Lease(config.output, config.io_options, run_id, config.lease_ttl_s, config.io_retries):
        started_ray = ensure_ray(config.ray_address, config.num_cpus)
        try:
            return _run(config, model, run_id, started_at, t0)
        finally:
            if started_ray:
                ray.shutdown()


def _run(
    config: RestoreConfig, model: ModelChoice, run_id: str, started_at: datetime, t0: float
) -> dict[str, Any]:
    if config.mask_template == "auto":
        from .watermark import resolve_auto_template

        config = resolve_auto_template(config)
    scratch = Scratch.for_run(config, run_id)  # the plan's files; this run holds the lease
    try:
        return _run_work(config, find_work(config, run_id, model, scratch), run_id, started_at, t0)
    finally:
        scratch.remove()


def _opacity_map(config: RestoreConfig, template: bytes | None) -> bytes | None:
    """The `mask_alpha` file's bytes, checked once against the template it belongs to."""
    if not config.mask_alpha or template is None:
        return None
    from .stages.template import template_alpha, template_hole

    fs, path = filesystem(config.mask_alpha, config.io_options, config.io_retries)
    alpha = read_bytes(fs, path, config.io_retries)
    try:
        template_alpha(alpha, template_hole(template).shape)
    except Exception as exc:
        raise ConfigError(f"`mask_alpha` {redact_url(config.mask_alpha)!r}: {exc}") from None
    return alpha


def _run_work(
    config: RestoreConfig, work: Work, run_id: str, started_at: datetime, t0: float
) -> dict[str, Any]:
    template = _template(config, work.listing)
    alpha = _opacity_map(config, template)
    res = resources(config)
    summary = _summary(config, run_id, work, res, started_at)
    summary.write(config)
    out = _open_outputs(config, work, run_id)
    stopped_by = None
    try:
        if work.to_run:
            stopped_by = _execute(config, work, run_id, res, out, summary, template, alpha)
        out.sink.flush()
        if out.publisher is not None and stopped_by is None:
            summary.shards = out.publisher.finish()
            summary.shards["already_published"] = work.counts.get("shards_published", 0)
    except BaseException as exc:
        _flush_quietly(out.sink)
        stopped = isinstance(exc, KeyboardInterrupt)  # Ctrl-C before the results came
        status = "interrupted" if stopped else "failed"
        _end(config, summary, out, t0, status=status, error=f"{type(exc).__name__}: {exc}")
        raise
    if stopped_by is not None:  # every row that came is recorded; the next run skips those
        name = signal.Signals(stopped_by.signum).name
        _end(config, summary, out, t0, status="interrupted", interrupted_by=name,
             drained=stopped_by.drained)  # fmt: skip
        raise Interrupted(stopped_by.signum, summary.as_dict())
    _end(config, summary, out, t0, status="finished")
    try:  # small stats files of recurring runs, merged once there are many (pipeline/compact.py)
        compact(config.output, config.io_options, config.io_retries, full=False, min_files=64)
    except Exception:
        log.exception("could not compact the stats files (the next run tries again)")
    log.info("run %s finished: %s", run_id, out.progress.line())
    return summary.as_dict()


@dataclass
class _Outputs:
    """Where a run's results go as they come: the progress shown, the stats rows, the shards."""

    progress: Progress
    sink: StatsSink
    publisher: shards.ShardPublisher | None


def _open_outputs(config: RestoreConfig, work: Work, run_id: str) -> _Outputs:
    listing = work.listing
    progress = Progress(
        listing.items, config.progress_s, already_done=work.already, show=config.progress_bars
    )
    sink = StatsSink(
        config.output,
        run_id,
        config.io_options,
        config.io_retries,
        config.stats_flush_rows,
        config.stats_flush_s,
    )
    publisher = None
    if work.output_layout != "files" or listing.layout != "pairs":
        publisher = shards.ShardPublisher(
            config, work.output_layout, listing.layout, work.settings_id, run_id, work.units,
            work.markers, sink.flush,
        )  # fmt: skip
    return _Outputs(progress, sink, publisher)


def _execute(
    config: RestoreConfig,
    work: Work,
    run_id: str,
    res: Resources,
    out: _Outputs,
    summary: RunSummary,
    template: bytes | None,
    alpha: bytes | None,
) -> Stopped | None:
    """Start the actors, stream the dataset's rows into the outputs and stop the actors; how a
    signal stopped it, if one did."""
    wait_for_gpus(res, config.gpu_wait_s)
    _journal, journal_name = start_journal(run_id)  # the handles keep them alive
    switch, switch_name = start_switch(run_id)
    settings = pool_settings(config, work.model, res, journal_name)
    pool, stopped_by = None, None
    try:
        if settings is not None:
            pool = start_pool(settings, ready_timeout_s=config.gpu_wait_s + 300)
        held = _ray_data_options(config, res, pool)
        ds = build_dataset(
            config, work, pool, run_id=run_id, stop=switch_name, template=template, alpha=alpha,
            actor_cpus=held,
        )  # fmt: skip

        def stopping(signum: int) -> None:
            switch.turn_on.remote()  # the tasks start no new block
            out.progress.say(_stopping_line(signum, config.drain_s))

        try:
            stopped_by = consume_until_stopped(
                lambda gate: _consume(ds, out.sink, out.progress, out.publisher, gate),
                config.drain_s,
                on_first=stopping,
            )
        finally:
            out.progress.close()
        return stopped_by
    finally:
        if pool is not None:
            summary.inference_actors = pool_facts(pool)
            if stopped_by is None or stopped_by.drained:  # else tasks still call the actors:
                stop_pool(pool)  # they end with the driver, without retry warnings


def _template(config: RestoreConfig, listing: Listing) -> bytes | None:
    """The mask template's bytes, when the listing found one."""
    if not listing.template_url:
        return None
    fs, path = filesystem(listing.template_url, config.io_options, config.io_retries)
    return read_bytes(fs, path, config.io_retries)


def _stopping_line(signum: int, drain_s: float) -> str:
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    return (
        f"{name}: no new items start; recording the ones in flight (at most {drain_s:g} s, "
        "Ctrl-C again stops now). Finished items are kept; the next run resumes."
    )


def _consume(
    ds: Any,
    sink: StatsSink,
    progress: Progress,
    publisher: shards.ShardPublisher | None,
    gate: Gate,
) -> None:
    """Stream stats rows to the sink (rows of items found done only count), and tell the
    shard publisher which shards' items have all come through; stop once the gate closes."""
    seen: set[str] = set()
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        with gate.recording() as still_open:
            if not still_open:
                return
            _record(batch, seen, sink, progress, publisher)
    progress.maybe_log(force=True)


def _record(
    batch: Any,
    seen: set[str],
    sink: StatsSink,
    progress: Progress,
    publisher: shards.ShardPublisher | None,
) -> None:
    statuses = batch["status"].to_pylist()
    keys = batch["key"].to_pylist()
    errors = batch["error"].to_pylist()
    keep, counted = [], []
    for i, (key, status) in enumerate(zip(keys, statuses, strict=True)):
        if key in seen:  # never two rows for one item in one run
            log.warning("dropping a second row for key %r in this run", key)
            continue
        seen.add(key)
        counted.append(i)
        progress.add(status, error=errors[i])
        if status != ALREADY_DONE:
            keep.append(i)
    if keep:
        rows = batch.take(keep) if len(keep) < batch.num_rows else batch
        sink.add(rows.select(STATS_SCHEMA.names))
    if publisher is not None and counted:
        rows = batch.take(counted)
        publisher.add(
            rows["input_shard" if publisher.output_layout == "files" else "shard"].to_pylist(),
            rows["shard_items"].to_pylist(),
            rows["status"].to_pylist(),
            rows["error_kind"].to_pylist(),
        )
    progress.maybe_log()


def _end(
    config: RestoreConfig, summary: RunSummary, out: _Outputs, t0: float, **fields: Any
) -> None:
    """Complete the summary (`fields`, counts, rates, bytes) and write it."""
    summary.end(out.progress, out.sink, time.monotonic() - t0, **fields)
    summary.write(config)


def _summary(
    config: RestoreConfig, run_id: str, work: Work, res: Resources, started_at: datetime
) -> RunSummary:
    """The run summary as it starts (OUT/runs/<run_id>.json); the rest comes at the end."""
    model, listing = work.model, work.listing
    log.info(
        "run %s: %s layout, %s items listed (%s), engine %s (%s), %d-%d actors on %s",
        run_id,
        listing.layout,
        listing.items if listing.items is not None else "?",
        ", ".join(f"{k} {v}" for k, v in work.counts.items()),
        model.engine,
        model.model_id[:12],
        *res.actors,
        res.device,
    )
    return RunSummary(
        run_id=run_id,
        started_at=started_at.isoformat(),
        layout=listing.layout,
        output_layout=work.output_layout,
        engine=model.engine,
        model_id=model.model_id,
        settings_id=work.settings_id,
        items_listed_up_front=listing.items,
        orphan_masks=listing.orphan_masks,
        config=config.redacted(),
        resources={
            "device": res.device,
            "actors": list(res.actors),
            "gpus_per_actor": res.gpus_per_actor,
            "cpus_per_actor": res.cpus_per_actor,
            "threads_per_actor": res.threads_per_actor,  # None: Ray's (one per reserved CPU)
            "batch_size": config.batch_size,
            "model_batch": config.model_batch,  # None: by each actor's device (CUDA 64, CPU 1)
        },
        plan=work.counts,
    )


def _flush_quietly(sink: StatsSink) -> None:
    try:
        sink.flush()
    except Exception:
        log.exception("could not write the last stats rows")


def _ray_data_options(config: RestoreConfig, res: Resources, pool: InferPool | None) -> float:
    """Progress bars; and the actor pool's CPUs and GPUs taken out of Ray Data's budget. The
    pool is ours, not a Ray Data operator, so Ray Data would otherwise count its CPUs as free
    for restore tasks and run more of them than the cluster has CPUs beside the actors.
    Returns the pool's CPUs."""
    import warnings

    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the run's own progress (pipeline/progress.py) instead
    if not log.isEnabledFor(logging.INFO):  # Ray Data's plan and timing lines: in its log file
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    actors = len(pool.actors) if pool is not None else 0
    held = ray.data.ExecutionResources(
        cpu=res.cpus_per_actor * actors, gpu=res.gpus_per_actor * actors
    )
    with warnings.catch_warnings():  # deprecated in Ray 2.60 for label selectors, which
        warnings.simplefilter("ignore")  # scope Ray Data to nodes, not subtract an actor pool
        ctx.execution_options.exclude_resources = held
    return held.cpu


def count_statuses(stats: Any) -> dict[str, int]:
    """Counts by status of a stats table (for reports and tests)."""
    if stats.num_rows == 0:
        return {}
    counts = pc.value_counts(stats["status"]).to_pylist()
    return {entry["values"]: entry["counts"] for entry in counts}
