"""Planning the actor pool: GPUs are requested whenever the job asks for them."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from pipeline.config import ConfigError, RestoreConfig
from pipeline.cost import expected_pixels
from pipeline.dataset import (
    BLOCKS_PER_TASK,
    resources,
    task_memory,
    units_per_task,
    wait_for_gpus,
)


def config(**extra) -> RestoreConfig:
    return RestoreConfig.from_dict({"images": "/tmp/in", "output": "/tmp/out", **extra})


def test_gpu_requests_do_not_depend_on_the_gpus_present_at_start(ray_local):
    # The local Ray has no GPU, as an autoscaling cluster before its GPU workers start.
    assert resources(config()).gpus_per_actor == 0  # auto with no GPU: CPU actors
    asked = resources(config(gpus_per_actor=0.5))
    assert (asked.gpus_per_actor, asked.device, asked.actors) == (0.5, "auto", (1, 1))
    cuda = resources(config(device="cuda", actors="2"))
    assert (cuda.gpus_per_actor, cuda.device, cuda.actors) == (1.0, "cuda", (2, 2))
    assert cuda.cpus_per_actor == 1.0


def test_cpu_actors_run_the_model_on_all_the_cores_they_share(ray_local):
    import ray

    cpus = int(ray.cluster_resources()["CPU"])
    # by default one single-threaded actor per core, reserving half of it for the tasks
    default = resources(config(device="cpu"))
    assert (default.actors, default.threads_per_actor) == ((cpus, cpus), 1)
    assert default.cpus_per_actor * cpus == cpus / 2
    assert resources(config(device="cpu", cpus_per_actor=1)).actors == (cpus // 2, cpus // 2)
    assert resources(config(device="cpu", actors="1")).threads_per_actor == cpus
    assert resources(config(device="cpu", actors="1", threads_per_actor=1)).threads_per_actor == 1
    assert resources(config(device="cuda", actors="1")).threads_per_actor is None


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


def test_tasks_of_big_photos_hold_fewer_items_and_ask_for_the_memory_they_need():
    job = config(batch_size=16)
    many = 100_000
    assert units_per_task(job, "pairs", many, cpus=16, pixels=many * 1_000_000) == 64
    big = units_per_task(job, "pairs", many, cpus=16, pixels=many * 24_000_000)
    assert big == 10  # ~240 MP a task, as 64 photos of 4 MP
    # the memory asked for covers the RGB pixels of every item the task holds at once
    assert task_memory(16, big, 24_000_000) > big * 24_000_000 * 3
    assert task_memory(16, 64, 1_000_000) < task_memory(16, big, 24_000_000)
    # a shard task streams its shard: it holds three blocks, however long the shard
    assert task_memory(16, None, 12_000_000) > 48 * 12_000_000 * 3


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_expected_pixels_never_fall_far_below_a_real_photos(fmt):
    from skimage import data

    photo = data.astronaut()
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, fmt, quality=90)
    guess = expected_pixels(f"s3://b/photo.{fmt.lower()}", len(buffer.getvalue()))
    assert photo.shape[0] * photo.shape[1] * 0.8 < guess < photo.shape[0] * photo.shape[1] * 6
    assert expected_pixels("s3://b/photo.jpg", None) == 0
