"""The plan builder: units -> read -> decode -> inpaint (actor pool) -> encode+write -> stats.

Blocks stay small: units are spread over many blocks, shards are cut into blocks of
`batch_size` items, and pixels exist only between decode and encode.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import ray
import ray.data
from ray.data import ActorPoolStrategy

from .config import ConfigError, RestoreConfig
from .crashes import RESTARTS
from .decode import decode_batch
from .inference import InpaintActor
from .model import ModelChoice
from .read import read_units
from .sinks import write_images

log = logging.getLogger(__name__)
# Memory reserved for a read+decode task: a worker with torch/NumPy/Pillow imported, plus
# per item the encoded bytes, RGB, original-mode pixels and hole map of a ~4 MP image.
# Declaring it also keeps Ray Data from fusing decode into the actor (it fuses only ops with
# equal resources): decoding runs in CPU tasks, in parallel, while the actors only infer.
DECODE_MEMORY_BASE = 384 * 2**20
DECODE_MEMORY_PER_ITEM = 32 * 2**20


def read_and_decode(
    units: pa.Table,
    read_kwargs: dict[str, Any],
    decode_kwargs: dict[str, Any],
    done: Any = None,
) -> Iterator[pa.Table]:
    """The read stage then the decode stage, one block of `batch_size` items at a time.

    `done` (keys the ledger holds) may come as an ObjectRef, fetched once per task."""
    if isinstance(done, ray.ObjectRef):
        done = ray.get(done)
    for block in read_units(units, **read_kwargs, done=done):
        yield decode_batch(block, **decode_kwargs)


@dataclass(frozen=True)
class Resources:
    device: str  # what each actor's Inpainter is given: cpu | cuda | auto (resolved inside it)
    actors: tuple[int, int]
    gpus_per_actor: float
    cpus_per_actor: float


def resources(config: RestoreConfig) -> Resources:
    """Device and actor pool size from the config and the cluster (fixed pool by default).

    GPUs are requested whenever the job asks for them (`device: cuda` or `gpus_per_actor` > 0),
    whatever the cluster has at start, so an autoscaler brings GPU nodes; `device: auto` asks
    for them only when the cluster already has GPUs. The device itself is resolved inside each
    actor (`auto`: CUDA when that actor sees a GPU).
    """
    cluster = ray.cluster_resources()
    gpus, cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 1.0)
    explicit = config.device == "cuda" or (config.gpus_per_actor or 0) > 0
    gpu_wanted = explicit or (
        config.device == "auto" and gpus > 0 and config.gpus_per_actor != 0
    )
    per_gpu = (config.gpus_per_actor or 1.0) if gpu_wanted else 0.0
    pool = config.actor_range()
    if pool is None:
        if gpu_wanted:  # no GPU yet (autoscaling): one actor until `actors` says more
            size = max(1, int(gpus // per_gpu))
        else:  # leave about half of the CPUs to the decode and encode tasks
            size = max(1, int(cpus * 0.5 // max(config.cpus_per_actor, 0.5)))
        pool = (size, size)
    device = ("cuda" if config.device == "cuda" else "auto") if gpu_wanted else "cpu"
    return Resources(
        device=device,
        actors=pool,
        gpus_per_actor=per_gpu,
        cpus_per_actor=config.cpus_per_actor,
    )


def wait_for_gpus(res: Resources, timeout_s: float, poll_s: float = 1.0) -> None:
    """Ask the autoscaler for the pool's GPU bundles and wait until the cluster has them.

    Raises ConfigError in one sentence after `timeout_s`, so a job that can never get its GPUs
    fails instead of hanging in an actor pool that never starts.
    """
    if res.gpus_per_actor <= 0:
        return
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
    units: list[dict[str, Any]],
    layout: str,
    model: ModelChoice,
    res: Resources,
    *,
    run_id: str,
    settings_id: str,
    done_ref: Any = None,
    template: bytes | None = None,
    output_layout: str = "files",
    journal: Any = None,
) -> ray.data.Dataset:
    batch = config.batch_size
    per_unit = layout in ("webdataset", "parquet")  # one shard per block: streamed inside
    blocks = len(units) if per_unit else max(1, math.ceil(len(units) / batch))
    ds = ray.data.from_items(units, override_num_blocks=max(1, min(blocks, len(units))))
    read_kwargs = {
        "storage_options": config.io_options,
        "io_retries": config.io_retries,
        "batch_size": batch,
        "has_template": template is not None,
    }
    decode_kwargs = {
        "template": template,
        "anchor": config.mask_anchor,
        "offset": config.mask_offset,
        "scale": config.mask_scale,
        "max_image_pixels": config.max_image_pixels,
        "search": config.mask_search,
        "min_score": config.mask_min_score,
        "mask_orientation": config.mask_orientation,
    }
    ds = ds.map_batches(
        read_and_decode,
        batch_size=1 if per_unit else batch,
        batch_format="pyarrow",
        fn_args=(read_kwargs, decode_kwargs),
        fn_kwargs={"done": done_ref},
        memory=DECODE_MEMORY_BASE + DECODE_MEMORY_PER_ITEM * batch,
    )
    low, high = res.actors
    ds = ds.map_batches(
        InpaintActor,
        batch_size=batch,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(min_size=low, max_size=high),
        num_cpus=res.cpus_per_actor,
        num_gpus=res.gpus_per_actor,
        # bounded: an item that keeps killing its actor cannot hang the job (crashes.py gives
        # it an error row). Ray 2.60 takes these only as ray_remote_args (deprecation warning).
        max_restarts=RESTARTS,
        max_task_retries=RESTARTS,
        fn_constructor_kwargs={
            "journal": journal,
            "model": model.source,
            "expected_model_id": model.model_id,
            "threads": config.threads_per_actor,
            "device": res.device,
            "precision": config.precision,
            "strategy": config.strategy,
            "dilate": config.dilate,
            "batch_size": batch,
            "storage_options": config.storage_options,
        },
    )
    return ds.map_batches(
        write_images,
        batch_size=batch,
        batch_format="pyarrow",
        fn_kwargs={
            "output": config.output,
            "storage_options": config.io_options,
            "io_retries": config.io_retries,
            "output_format": config.output_format,
            "output_quality": config.output_quality,
            "run_id": run_id,
            "settings_id": settings_id,
            "strategy": config.strategy,
            "max_image_pixels": config.max_image_pixels,
            "layout": output_layout,
            "input_layout": layout,
        },
    )
