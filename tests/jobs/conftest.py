"""Fixtures for the CLI and job tests: one real Ray head (token auth on) for the package, a
small archive on the SeaweedFS fixture, and an in-process `spl` runner."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from jobs.cli import main

from .ray_head import RayHead

AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def reset_ray_auth_cache() -> None:
    """Make this process's Ray forget a token it cached (other tests use other tokens)."""
    import ray
    from ray._raylet import AuthenticationTokenLoader, Config

    if not ray.is_initialized():
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture(scope="package")
def ray_head(seaweedfs) -> Iterator[RayHead]:
    """A head on 127.0.0.1 with token auth, its own temp dir and ports; stopped at the end.

    SeaweedFS starts first, so the ports picked here (worker range included) avoid its ports.
    """
    saved = {name: os.environ.get(name) for name in AUTH_VARS}
    root = Path(tempfile.mkdtemp(prefix="splhead", dir="/tmp"))  # short: Ray's socket paths
    head = RayHead(root)
    head.start()
    try:
        yield head
    finally:
        head.stop()
        shutil.rmtree(root, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_ray_auth_cache()


@dataclass
class Spl:
    """Runs `spl ...` in this process, with the environment of a configured client."""

    env: dict[str, str | None]

    def __call__(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        merged = {**self.env, **(env or {})}
        result = CliRunner().invoke(main, list(args), env=merged, catch_exceptions=True)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result


@pytest.fixture
def spl_offline() -> Spl:
    """`spl` with no cluster configured."""
    return Spl({name: None for name in AUTH_VARS})


@pytest.fixture
def spl(ray_head: RayHead) -> Spl:
    """`spl` configured for the test head the standard way (RAY_ADDRESS + token file)."""
    return Spl(ray_head.client_env())


@pytest.fixture
def cluster(ray_head: RayHead, monkeypatch: pytest.MonkeyPatch):
    """A `jobs.submit.Cluster` for the test head, this process configured the standard way."""
    from jobs.submit import Cluster

    for name, value in ray_head.client_env().items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return Cluster(ray_head.address)


@dataclass
class Archive:
    images: str
    masks: str
    keys: list[str]
    storage_options: dict

    def storage_flags(self) -> list[str]:
        return [f"--storage-option={k}={v}" for k, v in self.storage_options.items()]


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="package")
def archive(seaweedfs) -> Archive:
    """Four small images (64-128 px) with masks on SeaweedFS."""
    fs = seaweedfs.filesystem()
    root = f"{seaweedfs.bucket}/jobs-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(7)
    keys = []
    for i, (w, h) in enumerate([(64, 64), (96, 80), (128, 96), (72, 128)]):
        key = f"set{i % 2}/img{i}"
        image = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[h // 4 : h // 2, w // 4 : w // 2] = 255
        fs.pipe_file(f"{root}/images/{key}.png", _png(image))
        fs.pipe_file(f"{root}/masks/{key}.png", _png(mask))
        keys.append(key)
    return Archive(f"s3://{root}/images", f"s3://{root}/masks", keys, seaweedfs.storage_options)


@pytest.fixture
def out_prefix(seaweedfs) -> str:
    return f"s3://{seaweedfs.bucket}/jobs-out-{uuid.uuid4().hex[:8]}"


def one_line_error(result: Result) -> str:
    """The single `Error: ...` line a failed command printed (and nothing else)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.output, result.output
    assert len(lines) == 1, result.stderr
    return lines[0]
