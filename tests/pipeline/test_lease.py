"""One run per OUT: a second run fails at once naming the holder; an expired lease is taken
over; the lease is gone after a run. On local paths and on SeaweedFS S3."""

from __future__ import annotations

import json
import time

import pytest

from pipeline import RestoreConfig, run_restore
from pipeline.lease import LEASE_NAME, Lease, LeaseHeld
from tests.pipeline import data

SIZE = (64, 48)


@pytest.fixture(params=["local", "s3"])
def out_url(request, tmp_path):
    """(OUT url, storage options, a filesystem and path prefix to look at OUT)."""
    if request.param == "local":
        import fsspec

        return str(tmp_path / "out"), {}, fsspec.filesystem("file"), str(tmp_path / "out")
    seaweedfs = request.getfixturevalue("seaweedfs")
    prefix = request.getfixturevalue("s3_prefix")
    return f"{prefix}/out", seaweedfs.storage_options, seaweedfs.filesystem(), (
        f"{prefix.removeprefix('s3://')}/out"
    )


def test_a_second_holder_is_refused_with_the_holders_name(out_url):
    url, options, fs, root = out_url
    first = Lease(url, options, run_id="run-one", ttl_s=30)
    first.acquire()
    try:
        second = Lease(url, options, run_id="run-two", ttl_s=30)
        with pytest.raises(LeaseHeld, match="in use by run run-one on host"):
            second.acquire()
        held = json.loads(fs.cat_file(f"{root}/{LEASE_NAME}"))
        assert held["run_id"] == "run-one"
    finally:
        first.release()
    assert not fs.exists(f"{root}/{LEASE_NAME}")
    with Lease(url, options, run_id="run-two", ttl_s=30):  # free again
        pass


def test_an_expired_lease_is_taken_over(out_url):
    url, options, fs, root = out_url
    dead = Lease(url, options, run_id="killed-run", ttl_s=1)
    assert dead._create()  # its driver died: never renewed, never released
    time.sleep(1.2)
    with Lease(url, options, run_id="next-run", ttl_s=30):
        fs.invalidate_cache(f"{root}/{LEASE_NAME}")
        assert json.loads(fs.cat_file(f"{root}/{LEASE_NAME}"))["run_id"] == "next-run"


def test_a_live_lease_is_renewed_past_its_ttl(tmp_path):
    with Lease(str(tmp_path), {}, run_id="long-run", ttl_s=2):
        time.sleep(3)  # past its first expiry, renewed every 0.5 s: still held
        with pytest.raises(LeaseHeld):
            Lease(str(tmp_path), {}, run_id="other", ttl_s=2).acquire()


def test_a_renewal_still_being_written_at_release_does_not_bring_the_lease_back(
    tmp_path, monkeypatch
):
    """Slow storage (retries during an outage): the run ends while its renewal is being
    written. The lease must be gone afterwards, or the next run in this process is refused."""
    import threading

    import pipeline.lease as lease_module

    writing = threading.Event()
    write = lease_module.atomic_write

    def slow_write(*args, **kwargs):
        writing.set()
        time.sleep(6)  # longer than release used to wait for the renewal thread
        write(*args, **kwargs)

    monkeypatch.setattr(lease_module, "atomic_write", slow_write)
    lease = Lease(str(tmp_path), {}, run_id="first", ttl_s=0.4)
    lease.acquire()
    assert writing.wait(5)
    lease.release()
    time.sleep(1)
    assert not (tmp_path / LEASE_NAME).exists()
    with Lease(str(tmp_path), {}, run_id="next"):  # not refused
        pass


def test_a_restore_on_a_held_output_fails_at_once_and_holds_it_while_it_runs(ray_local, tmp_path):
    import fsspec

    fs = fsspec.filesystem("file", auto_mkdir=True)
    data.write_pairs(fs, str(tmp_path / "img"), str(tmp_path / "mask"), {"a": data.good_item(1)})
    spec = {
        "images": str(tmp_path / "img"),
        "masks": str(tmp_path / "mask"),
        "output": str(tmp_path / "out"),
        "engine": "opencv-telea",
        "progress_bars": False,
    }
    with Lease(str(tmp_path / "out"), {}, run_id="scheduled-run", ttl_s=30):
        started = time.monotonic()
        with pytest.raises(LeaseHeld, match="scheduled-run"):
            run_restore(RestoreConfig.from_dict(spec))
        assert time.monotonic() - started < 5
    summary = run_restore(RestoreConfig.from_dict(spec))
    assert summary["counts"]["ok"] == 1
    assert not (tmp_path / "out" / LEASE_NAME).exists()
