"""Planning the actor pool: GPUs are requested whenever the job asks for them."""

from __future__ import annotations

import time

import pytest

from pipeline.config import ConfigError, RestoreConfig
from pipeline.dataset import BLOCKS_PER_TASK, resources, units_per_task, wait_for_gpus


def config(**extra) -> RestoreConfig:
    return RestoreConfig.from_dict({"images": "/tmp/in", "output": "/tmp/out", **extra})


def test_gpu_requests_do_not_depend_on_the_gpus_present_at_start(ray_local):
    # The local Ray has no GPU, as an autoscaling cluster before its GPU workers start.
    assert resources(config()).gpus_per_actor == 0  # auto with no GPU: CPU actors
    asked = resources(config(gpus_per_actor=0.5))
    assert (asked.gpus_per_actor, asked.device, asked.actors) == (0.5, "auto", (1, 1))
    cuda = resources(config(device="cuda", actors="2"))
    assert (cuda.gpus_per_actor, cuda.device, cuda.actors) == (1.0, "cuda", (2, 2))


def test_waiting_for_gpus_that_never_come_ends_in_one_sentence(ray_local):
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"asked for 2 actor\(s\) with 1 GPU each.*after 1 s"):
        wait_for_gpus(resources(config(device="cuda", actors="2")), timeout_s=1, poll_s=0.2)
    assert time.monotonic() - start < 10


def test_a_small_run_is_cut_into_enough_tasks_for_every_cpu():
    job = config(batch_size=8)
    assert units_per_task(job, "pairs", to_run=288, cpus=16) == 9  # 32 tasks, not 9
    assert units_per_task(job, "pairs", to_run=100_000, cpus=16) == 8 * BLOCKS_PER_TASK
    assert units_per_task(job, "pairs", to_run=3, cpus=16) == 1
    assert units_per_task(job, "webdataset", to_run=288, cpus=16) == 1  # a shard per task
