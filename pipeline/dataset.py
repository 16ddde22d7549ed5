"""The run's Ray Data dataset: units -> one Ray Data task per group of blocks (read, decode,
prepare, infer on the actor pool, finish, encode + write) -> stats rows for the driver.

The device boundary is the infer stage: the CPU task sends only model-size windows to an
inference actor (pipeline/stages/infer.py) and keeps the full-resolution pixels to paste into, so
pixels never cross the object store. Each task keeps two blocks at the actors while it
prepares the next or finishes the last, so an actor always has work queued.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyarrow.fs import FSSpecHandler, PyFileSystem

from spl_model.compiled import usable_cwd

from .config import ConfigError, RestoreConfig
from .formats import SHARD_LAYOUTS
from .interrupt import stop_check
from .model import ModelChoice
from .stages.decode import decode_batch
from .stages.finish import finish_batch
from .stages.infer import InferPool
from .stages.prepare import needs_refine, prepare_batch, refine_batch
from .stages.read import read_units
from .stages.settings import PoolSettings, StageSettings
from .stages.sinks import write_images
from .stages.sources import UNIT_SCHEMA
from .storage import filesystem
from .work import Work

log = logging.getLogger(__name__)
# Memory reserved for a restore task: a worker with torch/NumPy/Pillow imported, plus per item
# of the blocks it holds (two at the actors, one being prepared or finished) its encoded bytes,
# RGB, original-mode pixels, hole map and output: about MEMORY_PER_PIXEL bytes per pixel, the
# pixels expected from the listing (pipeline/cost.py), or a ~4 MP item's where none are known.
TASK_MEMORY_BASE = 384 * 2**20
MEMORY_PER_PIXEL = 8
TASK_MEMORY_PER_ITEM = 4_000_000 * MEMORY_PER_PIXEL
BLOCKS_IN_FLIGHT = 2  # blocks of one task at the actors at once
CPU_ACTOR_CPUS = 0.5  # what a CPU actor reserves by default: one per core, half of each
BLOCKS_PER_TASK = 4  # I/O blocks of loose files per task (a shard is one task however long)
TASK_PIXELS = 256_000_000  # loose files: a task holds about this many pixels (64 of 4 MP)


def restore_units(
    units: pa.Table,
    stages: StageSettings,
    pool: InferPool | None = None,
    stop: str | None = None,
) -> Iterator[pa.Table]:
    """Read -> decode -> prepare -> infer (-> refine -> infer) -> finish -> write, one block of
    `batch_size` items at a time; RESULT_SCHEMA rows out. `pool` is None for the classical
    engines (no model). Blocks finish in the order they were read. Once the run's stop switch
    (named `stop`) is on, no new block starts; the blocks at the actors are finished."""
    usable_cwd()  # the stages' compiled code (JPEG, PNG, Telea) is loaded in this process
    in_flight: deque[Any] = deque()
    stop_requested = stop_check(stop)

    def finish(inferred: pa.Table) -> pa.Table:
        return write_images(finish_batch(inferred, stages.finish), stages.write)

    def advance() -> pa.Table | None:
        """Collect the oldest block; one whose items have a final pass to run (thick holes,
        coarse to fine) is sent again and stays at the head of the queue."""
        assert pool is not None
        inferred = pool.collect(in_flight.popleft())
        if needs_refine(inferred):
            in_flight.appendleft(pool.submit(refine_batch(inferred, stages.prepare)))
            return None
        return finish(inferred)

    for block in read_units(units, stages.read):
        if stop_requested():
            break
        prepared = prepare_batch(decode_batch(block, stages.decode), stages.prepare)
        if pool is None:
            yield finish(prepared)
            continue
        in_flight.append(pool.submit(prepared))
        while len(in_flight) >= BLOCKS_IN_FLIGHT:
            if (done := advance()) is not None:
                yield done
    while in_flight:
        if (done := advance()) is not None:
            yield done


@dataclass(frozen=True)
class Resources:
    device: str  # what each actor's Inpainter is given: cpu | cuda | auto (resolved inside it)
    actors: tuple[int, int]
    gpus_per_actor: float
    cpus_per_actor: float
    threads_per_actor: int | None = None  # torch threads; None: Ray's (one per reserved CPU)


def resources(config: RestoreConfig) -> Resources:
    """Device and actor pool size from the config and the cluster (fixed pool by default).

    GPUs are requested whenever the job asks for them (`device: cuda` or `gpus_per_actor` > 0),
    whatever the cluster has at start, so an autoscaler brings GPU nodes; `device: auto` asks
    for them only when the cluster already has GPUs. The device itself is resolved inside each
    actor (`auto`: CUDA when that actor sees a GPU).
    """
    import ray

    cluster = ray.cluster_resources()
    gpus, cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 1.0)
    explicit = config.device == "cuda" or (config.gpus_per_actor or 0) > 0
    gpu_wanted = explicit or (
        config.device == "auto" and gpus > 0 and config.gpus_per_actor != 0
    )
    per_gpu = (config.gpus_per_actor or 1.0) if gpu_wanted else 0.0
    per_cpu = config.cpus_per_actor
    if per_cpu is None:  # a CPU actor computes on one core; its tasks' bursts run beside it
        per_cpu = 1.0 if gpu_wanted else CPU_ACTOR_CPUS
    pool = config.actor_range()
    if pool is None:
        if gpu_wanted:  # no GPU yet (autoscaling): one actor until `actors` says more
            size = max(1, int(gpus // per_gpu))
        else:  # the actors reserve about half of the CPUs, the tasks the other half
            size = max(1, int(cpus * 0.5 // max(per_cpu, 0.5)))
        pool = (size, size)
    device = ("cuda" if config.device == "cuda" else "auto") if gpu_wanted else "cpu"
    threads = config.threads_per_actor
    if threads is None and device == "cpu":
        # the model is most of a CPU job's work: the actors' torch threads share all the
        # cluster's cores, never more than the biggest node has (one each by default: one
        # thread per actor never waits for a sibling thread whose core a task took)
        node = max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n["Alive"]), default=1)
        threads = max(1, int(min(cpus // pool[1], node)))
    return Resources(
        device=device,
        actors=pool,
        gpus_per_actor=per_gpu,
        cpus_per_actor=per_cpu,
        threads_per_actor=threads,
    )


def wait_for_gpus(res: Resources, timeout_s: float, poll_s: float = 1.0) -> None:
    """Ask the autoscaler for the pool's GPU bundles and wait until the cluster has them.

    Raises ConfigError in one sentence after `timeout_s`, so a job that can never get its GPUs
    fails instead of hanging in an actor pool that never starts.
    """
    if res.gpus_per_actor <= 0:
        return
    import ray

    need = res.gpus_per_actor * res.actors[0]
    bundle = {"GPU": res.gpus_per_actor, "CPU": res.cpus_per_actor}
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[bundle] * res.actors[0])
    deadline = time.monotonic() + timeout_s
    have = ray.cluster_resources().get("GPU", 0.0)
    if have < need:
        log.info("waiting up to %.0f s for %g GPU(s) (the cluster has %g)", timeout_s, need, have)
    while have < need:
        if time.monotonic() >= deadline:
            raise ConfigError(
                f"the job asked for {res.actors[0]} actor(s) with {res.gpus_per_actor:g} GPU "
                f"each, but the Ray cluster still had {have:g} GPU(s) after {timeout_s:g} s "
                "(`gpu_wait_s`): add GPU worker types to the cluster, lower `actors` or "
                "`gpus_per_actor`, or use `device: cpu`"
            )
        time.sleep(poll_s)
        have = ray.cluster_resources().get("GPU", 0.0)


def build_dataset(
    config: RestoreConfig,
    work: Work,
    pool: InferPool | None,
    *,
    run_id: str,
    stop: str | None = None,
    template: bytes | None = None,
    alpha: bytes | None = None,
    actor_cpus: float = 0.0,
) -> Any:
    """The run's dataset over `work` (its model, layouts and settings too): its shard units, or
    its pairs' unit files read in blocks of one task's worth, so that tasks spread over the
    CPUs the actors leave (`actor_cpus`: what the pool reserves). `stop`: the name of the run's
    stop switch (pipeline/interrupt.py)."""
    import ray
    import ray.data

    batch = config.batch_size
    cpus = max(1.0, ray.cluster_resources().get("CPU", 0.0) - actor_cpus)
    layout = work.listing.layout
    per_task = units_per_task(config, layout, work.to_run, cpus, work.pixels_to_run)
    if work.unit_files:
        fs, root = filesystem(work.scratch.url, work.scratch.options)
        files = [f"{root}/{name}" for name in work.unit_files]
        ds = ray.data.read_parquet(
            files, filesystem=PyFileSystem(FSSpecHandler(fs)), schema=UNIT_SCHEMA
        ).repartition(target_num_rows_per_block=per_task)
    else:
        units = work.units
        blocks = max(1, min(math.ceil(len(units) / per_task), len(units)))
        ds = ray.data.from_items(units, override_num_blocks=blocks)
    stages = stage_settings(config, work, run_id=run_id, template=template, alpha=alpha)
    mean_pixels = work.pixels_to_run // work.to_run if work.pixels_to_run else 0
    return ds.map_batches(
        restore_units,
        batch_size=per_task,
        batch_format="pyarrow",
        fn_args=(stages,),
        fn_kwargs={"pool": pool, "stop": stop},
        memory=task_memory(batch, None if layout in SHARD_LAYOUTS else per_task, mean_pixels),
    )


def stage_settings(
    config: RestoreConfig,
    work: Work,
    *,
    run_id: str,
    template: bytes | None = None,
    alpha: bytes | None = None,
) -> StageSettings:
    """The settings of every stage of `restore_units` for `work` (its model, settings id and
    layouts), from the job's config."""
    return StageSettings.from_config(
        config,
        work.model,
        run_id=run_id,
        settings_id=work.settings_id,
        input_layout=work.listing.layout,
        output_layout=work.output_layout,
        template=template,
        alpha=alpha,
    )


def units_per_task(
    config: RestoreConfig, layout: str, to_run: int = 0, cpus: float = 0.0, pixels: int = 0
) -> int:
    """A shard is one task however long (streamed inside). Loose files go in groups sized by
    their cost: up to BLOCKS_PER_TASK blocks and about TASK_PIXELS pixels (`pixels`: expected
    for the `to_run` items; 0 when unknown), so that a task of 24 MP photos takes about as long
    and as much memory as one of 4 MP photos; fewer when the run is small for the cluster, at
    least two tasks per CPU, so that every CPU works from the start."""
    if layout in SHARD_LAYOUTS:
        return 1
    most = config.batch_size * BLOCKS_PER_TASK
    if pixels > 0 and to_run > 0:
        most = max(1, min(most, TASK_PIXELS * to_run // pixels))
    if to_run <= 0 or cpus <= 0:
        return most
    return max(1, min(most, math.ceil(to_run / (2 * cpus))))


def task_memory(batch_size: int, items: int | None, mean_pixels: int = 0) -> int:
    """Bytes of memory a restore task asks Ray for: the items it holds at once (up to three
    blocks, at most its `items`; None: a shard, however long) at their expected pixels (0:
    unknown, priced as ~4 MP)."""
    held = batch_size * (BLOCKS_IN_FLIGHT + 1)
    held = held if items is None else min(items, held)
    per_item = mean_pixels * MEMORY_PER_PIXEL if mean_pixels else TASK_MEMORY_PER_ITEM
    return TASK_MEMORY_BASE + held * per_item


def pool_settings(
    config: RestoreConfig, model: ModelChoice, res: Resources, journal: str
) -> PoolSettings | None:
    """How `infer.start_pool` builds the run's actors; None when the engine needs none."""
    return PoolSettings.from_config(
        config,
        model,
        size=res.actors,
        num_cpus=res.cpus_per_actor,
        num_gpus=res.gpus_per_actor,
        device=res.device,
        threads=res.threads_per_actor,
        journal=journal,
    )
