"""Scheduled batches: due times, the schedules file, state on disk, and the scheduler against
the real head (no overlap, restart without double submission, history)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from jobs.schedule import (
    ScheduleError,
    Scheduler,
    due_tick,
    load_schedules,
    next_tick,
    run_name,
)
from jobs.schedule_state import StateLocked, StateStore
from jobs.submit import Cluster, submission_id_for

from .conftest import one_line_error


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---- due times ----------------------------------------------------------------------------
def test_due_tick_is_the_latest_time_at_or_before_now() -> None:
    assert due_tick("0 2 * * *", at("2024-05-01T02:00:00")) == at("2024-05-01T02:00:00")
    assert due_tick("0 2 * * *", at("2024-05-01T01:59:59")) == at("2024-04-30T02:00:00")
    assert due_tick("0 2 * * *", at("2024-05-01T13:30:00.9")) == at("2024-05-01T02:00:00")
    assert due_tick("*/15 * * * *", at("2024-05-01T10:44:59")) == at("2024-05-01T10:30:00")
    assert due_tick("@hourly", at("2024-05-01T10:00:01")) == at("2024-05-01T10:00:00")
    # a sixth field is seconds (croniter's order)
    assert due_tick("* * * * * */5", at("2024-05-01T10:00:04.7")) == at("2024-05-01T10:00:00")
    assert due_tick("* * * * * */5", at("2024-05-01T10:00:05")) == at("2024-05-01T10:00:05")


def test_next_tick_and_timezones() -> None:
    assert next_tick("0 2 * * *", at("2024-05-01T02:00:00")) == at("2024-05-02T02:00:00")
    berlin = ZoneInfo("Europe/Berlin")  # 02:00 in Berlin is 00:00 UTC in summer
    assert due_tick("0 2 * * *", at("2024-05-01T00:30:00"), berlin) == at("2024-05-01T00:00:00")
    assert next_tick("0 2 * * *", at("2024-05-01T00:30:00"), berlin) == at("2024-05-02T00:00:00")


def test_run_names_are_per_tick() -> None:
    tick = at("2024-05-01T02:00:00")
    assert run_name("nightly", tick) == "nightly-20240501T020000Z"
    assert submission_id_for(run_name("nightly", tick)) == "spl-nightly-20240501T020000Z"


# ---- schedules file -----------------------------------------------------------------------
def write(tmp_path: Path, data: dict, name: str = "schedules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


SPEC = {"images": "s3://a/img", "masks": "s3://a/masks", "output": "s3://a/out"}


def test_load_schedules_inline_and_file_specs(tmp_path: Path) -> None:
    (tmp_path / "nightly.yaml").write_text(yaml.safe_dump(SPEC))
    path = write(
        tmp_path,
        {
            "timezone": "Europe/Berlin",
            "defaults": {"engine": "opencv-telea"},
            "batches": {
                "nightly": {"cron": "0 2 * * *", "spec": "nightly.yaml"},
                "hourly": {"cron": "@hourly", "spec": {**SPEC, "batch_size": 4}},
            },
        },
    )
    schedules = load_schedules(path)
    assert schedules.timezone == "Europe/Berlin"
    assert schedules.batches["nightly"].spec == {"engine": "opencv-telea", **SPEC}
    assert schedules.batches["hourly"].spec["batch_size"] == 4


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ({"cron": "0 2 * *", "spec": SPEC}, "is not a cron expression"),
        ({"cron": "61 * * * *", "spec": SPEC}, "is not a cron expression"),
        ({"cron": "@daily", "spec": {**SPEC, "engine": "lama"}}, "`engine` must be one of"),
        ({"cron": "@daily", "spec": {"images": "s3://a"}}, "`output` is required"),
        ({"cron": "@daily", "spec": "missing.yaml"}, "cannot read"),
        ({"spec": SPEC}, "needs exactly `cron` and `spec`"),
    ],
)
def test_bad_batches_name_the_batch_and_field(tmp_path: Path, batch: dict, expected: str) -> None:
    path = write(tmp_path, {"batches": {"nightly": batch}})
    with pytest.raises(ScheduleError, match="batch 'nightly'") as info:
        load_schedules(path)
    assert expected in str(info.value)


def test_bad_file_level_keys(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError, match="unknown timezone"):
        load_schedules(write(tmp_path, {"timezone": "Mars/Olympus", "batches": {}}))
    with pytest.raises(ScheduleError, match="unknown key"):
        load_schedules(write(tmp_path, {"batchs": {}}))


def test_cli_reports_schedule_errors_in_one_line(spl_offline, tmp_path: Path) -> None:
    path = write(tmp_path, {"batches": {"nightly": {"cron": "nope", "spec": SPEC}}})
    result = spl_offline("schedule", "list", str(path))
    assert result.exit_code == 1 and "not a cron expression" in one_line_error(result)


# ---- state on disk ------------------------------------------------------------------------
def test_state_store_round_trip_and_history_dedupe(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    tick = at("2024-05-01T02:00:00")
    store.set_current("b", {"job_id": "spl-b-1", "submitted": True}, last_tick=tick)
    again = StateStore(tmp_path / "state")  # what a restarted scheduler reads
    assert again.last_tick("b") == tick and again.current("b")["job_id"] == "spl-b-1"
    assert again.append_history({"batch": "b", "job_id": "spl-b-1", "status": "SUCCEEDED"})
    assert not again.append_history({"batch": "b", "job_id": "spl-b-1", "status": "SUCCEEDED"})
    with open(again.history_path, "a") as handle:
        handle.write('{"batch": "b", "job_id": "torn')  # a crash mid-append
    assert again.append_history({"batch": "b", "job_id": "spl-b-2", "status": "FAILED"})
    assert [r["job_id"] for r in again.history("b")] == ["spl-b-1", "spl-b-2"]


def test_one_scheduler_per_state_dir(tmp_path: Path) -> None:
    first, second = StateStore(tmp_path / "s"), StateStore(tmp_path / "s")
    first.lock()
    try:
        with pytest.raises(StateLocked, match="another `spl schedule run`"):
            second.lock()
    finally:
        first.unlock()
    second.lock()
    second.unlock()


# ---- the scheduler against the real head --------------------------------------------------
@pytest.fixture
def tiny_schedule(tmp_path: Path, archive, out_prefix) -> Path:
    spec = {
        "images": archive.images,
        "masks": archive.masks,
        "output": out_prefix,
        "engine": "opencv-telea",
        "batch_size": 2,
        "actors": "1",
        "progress_bars": False,
        "storage_options": archive.storage_options,
    }
    return write(tmp_path, {"batches": {"tiny": {"cron": "* * * * * */5", "spec": spec}}})


def wait_until_finished(cluster: Cluster, job_id: str, timeout_s: float = 240) -> str:
    return cluster.wait(job_id, timeout_s=timeout_s).status


def test_scheduler_no_overlap_restart_and_history(cluster, tiny_schedule, tmp_path, archive):
    """Clock-driven ticks 5 s apart against the real head."""
    schedules = load_schedules(tiny_schedule)
    state = tmp_path / "state"
    log: list[str] = []

    def scheduler() -> Scheduler:  # a fresh process' worth of objects: restart = new instance
        return Scheduler(
            schedules, cluster, StateStore(state), storage_options=archive.storage_options,
            log=log.append,
        )  # fmt: skip

    t0 = due_tick("* * * * * */5", datetime.now(UTC))
    scheduler().tick(t0)  # first sight: remembers the tick, submits nothing (cron semantics)
    assert cluster.list(batch="tiny") == []
    before_submit = (state / "state.json").read_text()

    t1 = t0 + timedelta(seconds=5)
    scheduler().tick(t1)
    first_id = submission_id_for(run_name("tiny", t1))
    assert [j.submission_id for j in cluster.list(batch="tiny")] == [first_id]

    scheduler().tick(t1 + timedelta(seconds=2))  # restart within the same tick: nothing new
    assert len(cluster.list(batch="tiny")) == 1

    t2 = t1 + timedelta(seconds=5)  # the next tick while the first run is still going
    if cluster.get(first_id).finished:
        pytest.skip("the first run ended before the overlap check could be made")
    scheduler().tick(t2)
    assert len(cluster.list(batch="tiny")) == 1
    skipped = StateStore(state).history("tiny")[-1]
    assert skipped["status"] == "SKIPPED" and first_id in skipped["note"]

    # a crash between submitting and saving state: the old state comes back
    (state / "state.json").write_text(before_submit)
    assert wait_until_finished(cluster, first_id) == "SUCCEEDED"
    scheduler().tick(t1 + timedelta(seconds=1))  # replays tick t1: the same job id is found
    assert [j.submission_id for j in cluster.list(batch="tiny")] == [first_id]
    assert any("found already submitted" in line for line in log)

    scheduler().tick(t1 + timedelta(seconds=2))  # reaps the finished run into the history
    records = [r for r in StateStore(state).history("tiny") if r["job_id"] == first_id]
    assert len(records) == 1
    assert records[0]["status"] == "SUCCEEDED" and records[0]["counts"]["ok"] == len(archive.keys)
    assert StateStore(state).current("tiny") is None
    assert len(cluster.list(batch="tiny")) == 1  # one tick submitted, one skipped: one job


def test_schedule_run_cli_real_time(spl, cluster, tiny_schedule, tmp_path, archive):
    """`spl schedule run` with a 5 s cron: submits once per due tick, then history prints it."""
    state = tmp_path / "cli-state"
    args = ["--state-dir", str(state), *archive.storage_flags()]
    result = spl("schedule", "run", str(tiny_schedule), "--max-ticks", "2", "--poll", "10", *args)
    assert result.exit_code == 0, result.output
    assert "scheduled" in result.stderr and "submitted spl-tiny-" in result.stderr
    current = StateStore(state).current("tiny")
    assert wait_until_finished(cluster, current["job_id"]) == "SUCCEEDED"

    # a restart: the finished run is recorded once; the file lock is free again
    result = spl("schedule", "run", str(tiny_schedule), "--once", *args)
    assert result.exit_code == 0, result.output
    history = spl("schedule", "history", str(tiny_schedule), "--state-dir", str(state), "--json")
    records = [json.loads(line) for line in history.stdout.splitlines()]
    done = [r for r in records if r["job_id"] == current["job_id"]]
    assert len(done) == 1 and done[0]["status"] == "SUCCEEDED"
    assert done[0]["counts"]["already_done"] + done[0]["counts"]["ok"] == len(archive.keys)
    text = spl("schedule", "history", str(tiny_schedule), "--state-dir", str(state))
    assert current["job_id"] in text.stdout and "SUCCEEDED" in text.stdout
    shutil.rmtree(state)


def test_schedule_list_shows_next_run(spl_offline, tiny_schedule, tmp_path) -> None:
    result = spl_offline("schedule", "list", str(tiny_schedule), "--state-dir", str(tmp_path))
    assert result.exit_code == 0 and "tiny" in result.stdout and "next" in result.stdout
