"""Faults injected into real runs: the S3 server goes away mid-run, an inference actor's
process is killed mid-batch, the checkpoint URL is unreachable or missing.

Covered elsewhere (not repeated): the driver SIGKILLed mid-run then re-run
(test_resume.py), a worker node removed from a 3-node cluster (test_cluster.py), a corrupt
checkpoint file failing before any work (test_e2e.py::test_unusable_checkpoint_...).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline import ConfigError, RestoreConfig, run_restore
from pipeline.ledger import latest_rows, load_history
from pipeline.schema import STATS_SCHEMA
from tests.conftest import S3_KEY, S3_SECRET, _wait_for_s3, _weed_binary, free_ports
from tests.pipeline import data

ITEMS = 16
SIZE = (256, 192)
HOLE = (40, 30, 210, 160)  # a big hole: opencv-ns takes a moment per item


class PrivateSeaweedFS:
    """A SeaweedFS of this module only, so it can be stopped and started by pid."""

    def __init__(self, workdir: Path):
        weed = _weed_binary()
        if weed is None:
            pytest.skip("SeaweedFS (`weed`) is not installed")
        s3, master, volume, filer = free_ports(4, low=45000, high=54999)
        self.workdir, self.log = workdir, workdir / "weed.log"
        self.endpoint_url = f"http://127.0.0.1:{s3}"
        self.args = [
            weed, "server", "-s3", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={s3}", f"-master.port={master}", f"-volume.port={volume}",
            f"-filer.port={filer}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64", "-master.telemetry=false",
        ]  # fmt: skip
        self.process: subprocess.Popen | None = None

    @property
    def storage_options(self) -> dict:
        return {"key": S3_KEY, "secret": S3_SECRET, "endpoint_url": self.endpoint_url}

    def start(self) -> None:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                self.args, stdout=handle, stderr=subprocess.STDOUT, cwd=self.workdir,
                start_new_session=True,
            )  # fmt: skip
        _wait_for_s3(self.endpoint_url, self.process, self.log)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options, skip_instance_cache=True)


@pytest.fixture(scope="module")
def private_s3(tmp_path_factory):
    server = PrivateSeaweedFS(tmp_path_factory.mktemp("weed-faults"))
    server.start()
    fs = server.filesystem()
    for attempt in range(30):
        try:
            fs.mkdir("faults")
            break
        except Exception:
            if attempt == 29:
                raise
            time.sleep(0.5)
    yield server
    server.stop()


def write_inputs(fs, root: str, count: int = ITEMS) -> None:
    for i in range(count):
        fs.pipe_file(f"{root}/images/{i:02d}.png", data.encode(data.photo(300 + i, SIZE)))
        fs.pipe_file(f"{root}/masks/{i:02d}.png", data.encode(data.box_mask(SIZE, HOLE)))


def spec(images: str, masks: str, out: str, **more) -> RestoreConfig:
    return RestoreConfig.from_dict(
        dict(
            images=images,
            masks=masks,
            output=out,
            engine="opencv-ns",
            batch_size=2,
            actors="1",
            stats_flush_rows=2,
            progress_bars=False,
        )
        | more
    )


def in_background(fn: Callable[[], None]) -> tuple[threading.Thread, dict]:
    """Run `fn` in a thread; its exception, if any, lands in the returned dict."""
    outcome: dict = {}

    def wrapper() -> None:
        try:
            fn()
        except BaseException as exc:  # reported by the test
            outcome["error"] = exc

    thread = threading.Thread(target=wrapper, daemon=True)
    thread.start()
    return thread, outcome


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise TimeoutError(what)


def check_every_item_once(rows: list[dict], images_found: int) -> None:
    ok = Counter(r["key"] for r in rows if r["status"] == "ok")
    assert sorted(ok) == [f"{i:02d}" for i in range(ITEMS)]
    assert set(ok.values()) == {1}, "an item was restored twice"
    assert images_found == ITEMS


def test_s3_server_down_for_seconds_mid_run_loses_and_duplicates_nothing(
    ray_local, private_s3, tmp_path
):
    fs = private_s3.filesystem()
    root = "faults/outage"
    write_inputs(fs, root)
    out = f"s3://{root}/out"
    args = dict(
        images=f"s3://{root}/images",
        masks=f"s3://{root}/masks",
        out=out,
        storage_options=private_s3.storage_options,
        io_timeout_s=5,
    )
    downtime: dict = {}

    def outage() -> None:
        watcher = private_s3.filesystem()
        wait_for(
            lambda: len(watcher.find(f"{root}/out/images", refresh=True)) >= 2, 120, "no images"
        )
        private_s3.stop()
        downtime["stopped"] = time.monotonic()
        time.sleep(4)
        private_s3.start()
        downtime["started"] = time.monotonic()

    thread, outcome = in_background(outage)
    first_error = None
    try:
        first = run_restore(spec(**args))
    except Exception as exc:  # a clear failure is allowed: the re-run must complete the work
        first, first_error = None, exc
    thread.join(timeout=120)
    assert "error" not in outcome, outcome.get("error")
    assert "stopped" in downtime and "started" in downtime, "the outage did not happen mid-run"
    if first is not None:
        assert first["status"] == "finished"
        assert first["counts"]["listed"] == ITEMS
        history = load_history(out, private_s3.storage_options, columns=list(STATS_SCHEMA.names))
        errors = [r for r in history.to_pylist() if r["status"] == "error"]
        for row in errors:  # items that exhausted their retries say so, naming the cause
            assert "cannot read" in row["error"] or "cannot write" in row["error"], row["error"]
    else:
        assert "S3" in str(first_error) or "connect" in str(first_error).lower(), first_error
    print(
        "outage: first run",
        first["counts"] if first else f"failed: {first_error}",
        f"(server down {downtime['started'] - downtime['stopped']:.1f}s)",
    )
    second = run_restore(spec(**args, retry_failed=True))
    assert second["status"] == "finished"
    assert second["counts"]["listed"] == ITEMS
    rows = load_history(out, private_s3.storage_options, columns=list(STATS_SCHEMA.names))
    latest = latest_rows(out, private_s3.storage_options).to_pylist()
    assert {r["status"] for r in latest} == {"ok"}
    check_every_item_once(rows.to_pylist(), len(fs.find(f"{root}/out/images", refresh=True)))


def inpaint_actor_pids() -> list[int]:
    """Pids of the live actors of the inference pool (Ray names them after InferActor)."""
    import ray._private.state as state

    return [
        int(entry["Pid"])
        for entry in state.actors().values()
        if "InferActor" in entry.get("ActorClassName", "")
        and entry.get("State") == "ALIVE"
        and entry.get("Pid")
    ]


def test_killing_the_inference_actor_mid_batch_costs_a_restart_not_rows(ray_local, tmp_path):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    # Large items with large holes, on the model (classical engines need no actor): the actor
    # is still busy when the first images are written.
    items, size, hole = ITEMS, (768, 576), (100, 80, 660, 480)
    for i in range(items):
        for folder, img in ((images, data.photo(300 + i, size)), (masks, None)):
            folder.mkdir(exist_ok=True)
            blob = data.encode(img) if img else data.encode(data.box_mask(size, hole))
            (folder / f"{i:02d}.png").write_bytes(blob)
    killed: dict = {}

    def kill_actor() -> None:
        wait_for(lambda: len(list((out / "images").glob("*.png"))) >= 2, 120, "no images")
        pids = inpaint_actor_pids()
        assert pids, "no live InferActor"
        os.kill(pids[0], signal.SIGKILL)
        killed["pid"] = pids[0]
        killed["images_before"] = len(list((out / "images").glob("*.png")))
        wait_for(lambda: set(inpaint_actor_pids()) - {pids[0]}, 60, "the actor did not restart")
        killed["restarted"] = True

    thread, outcome = in_background(kill_actor)
    model = data.small_checkpoint(tmp_path / "small.safetensors")
    summary = run_restore(spec(str(images), str(masks), str(out), engine=None, checkpoint=model))
    thread.join(timeout=90)
    assert "error" not in outcome, outcome.get("error")
    assert killed.get("pid") and killed["images_before"] < items, "not killed mid-run"
    assert summary["status"] == "finished"
    assert summary["counts"] == {
        "listed": items, "ok": items, "error": 0, "skipped": 0, "already_done": 0,
    }  # fmt: skip
    rows = load_history(str(out), {}, columns=list(STATS_SCHEMA.names)).to_pylist()
    assert len(rows) == items
    check_every_item_once(rows, len(list((out / "images").glob("*.png"))))


@pytest.mark.parametrize("where", ["closed-port", "missing-object"])
def test_unreachable_or_missing_checkpoint_fails_fast_before_reading_inputs(
    ray_local, private_s3, tmp_path, where
):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(data.encode(data.photo(1, (64, 48))))
    port = free_ports(1, low=45000, high=54999)[0]
    checkpoint = {
        "closed-port": f"http://127.0.0.1:{port}/weights/spl.pth",
        "missing-object": "s3://faults/no/such/weights.safetensors",
    }[where]
    started = time.monotonic()
    with pytest.raises(ConfigError, match="checkpoint") as info:
        run_restore(
            RestoreConfig.from_dict(
                dict(
                    images=str(tmp_path / "in"),
                    mask_template=str(tmp_path / "in" / "a.png"),
                    output=str(tmp_path / "out"),
                    checkpoint=checkpoint,
                    storage_options=private_s3.storage_options,
                    progress_bars=False,
                )
            )
        )
    assert time.monotonic() - started < 60
    assert checkpoint.split("/")[-1] in str(info.value)
    assert not (tmp_path / "out").exists()  # nothing was read or written


def test_an_item_that_crashes_its_worker_gets_an_error_row_and_the_job_goes_on(tmp_path):
    """A segfault on one item (fault injection): its batch is retried item by item, the item
    gets an error row after two crashes, its neighbours are restored, and the job ends."""
    import sys

    import yaml

    from tests.conftest import clean_env

    fs = __import__("fsspec").filesystem("file", auto_mkdir=True)
    items = {f"p{i}": data.good_item(i, (64, 48)) for i in range(6)}
    data.write_pairs(fs, str(tmp_path / "img"), str(tmp_path / "mask"), items)
    config = tmp_path / "job.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "images": str(tmp_path / "img"),
                "masks": str(tmp_path / "mask"),
                "output": str(tmp_path / "out"),
                "checkpoint": data.small_checkpoint(tmp_path / "small.safetensors"),
                "batch_size": 3,
                "actors": "1",
                "num_cpus": 2,
                "progress_bars": False,
            }
        )
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**clean_env(), "SPL_FAULT_CRASH_KEYS": "p4", "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-m", "jobs.restore", "--config", str(config)],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {r["key"]: r for r in latest_rows(str(tmp_path / "out")).to_pylist()}
    assert rows["p4"]["status"] == "error" and "crashed its inference worker 2 times" in (
        rows["p4"]["error"]
    )
    assert all(rows[f"p{i}"]["status"] == "ok" for i in (0, 1, 2, 3, 5))
