"""Scheduled restoration batches: the schedules file, cron due times, and the scheduler.

A schedules file (YAML) names batches; each is a job spec plus a cron expression:

    address: http://head:8265        # optional; --address / RAY_ADDRESS win
    timezone: UTC                    # zone the cron times are read in (default UTC)
    defaults:                        # spec keys every batch starts from (optional)
      engine: spl
    batches:
      nightly:
        cron: "0 2 * * *"            # 5 fields; a 6th field is seconds (croniter's order)
        spec: nightly.yaml           # a job spec file, relative to this file, or a mapping

Each due tick becomes one job named `<batch>-<tick, UTC>` (id `spl-<batch>-<tick>`), so a
tick is submitted at most once however often the scheduler restarts. A batch never starts
while its previous run is pending or running: the tick is recorded as SKIPPED instead.
Ticks missed while the scheduler was down coalesce into one run (batches are incremental).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter

from pipeline.config import load_spec

from .schedule_state import StateStore
from .submit import ClusterError, Job, read_run_summary, submission_id_for

BATCH_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ScheduleError(ValueError):
    """A schedules file that cannot run; the message names the batch and the field."""


@dataclass(frozen=True)
class Batch:
    name: str
    cron: str
    spec: dict[str, Any]
    spec_file: Path | None = None  # set when the spec came from a file, unchanged

    @property
    def has_seconds(self) -> bool:
        return len(self.cron.split()) == 6


@dataclass
class Schedules:
    path: Path
    batches: dict[str, Batch]
    timezone: str = "UTC"
    address: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_schedules(path: str | Path, validate: bool = True) -> Schedules:
    """Read and check a schedules file; every batch's spec is validated like `spl submit`'s."""
    path = Path(path)
    try:
        data = load_spec(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ScheduleError(f"cannot read schedules file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ScheduleError(f"{path}: must be a YAML mapping with a `batches:` key")
    unknown = set(data) - {"batches", "timezone", "address", "defaults"}
    if unknown:
        raise ScheduleError(
            f"{path}: unknown key(s) {sorted(unknown)}; allowed: address, batches, defaults, "
            "timezone"
        )
    if not isinstance(data.get("batches"), dict):
        raise ScheduleError(f"{path}: needs a `batches:` mapping of batch names to cron + spec")
    timezone = str(data.get("timezone") or "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"{path}: unknown timezone {timezone!r} (e.g. UTC, Europe/Berlin)"
        ) from None
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ScheduleError(f"{path}: `defaults` must be a mapping of job spec keys")
    batches = {}
    for name, entry in data["batches"].items():
        batches[str(name)] = _batch(path, str(name), entry, defaults, validate)
    if not batches:
        raise ScheduleError(f"{path}: `batches` is empty")
    return Schedules(path, batches, timezone, data.get("address"), defaults)


def _batch(path: Path, name: str, entry: Any, defaults: dict, validate: bool) -> Batch:
    where = f"{path}: batch {name!r}"
    if not BATCH_NAME_RE.match(name):
        raise ScheduleError(f"{where}: names are 1-64 letters, digits, . _ - (it names jobs)")
    if not isinstance(entry, dict) or set(entry) - {"cron", "spec"} or "cron" not in entry:
        raise ScheduleError(f"{where}: needs exactly `cron` and `spec`")
    cron = str(entry["cron"]).strip()
    if not croniter.is_valid(cron) or len(cron.split()) not in (1, 5, 6):
        raise ScheduleError(
            f"{where}: `cron` {cron!r} is not a cron expression "
            "(minute hour day month weekday, e.g. '0 2 * * *', or @daily)"
        )
    raw = entry.get("spec")
    spec_file = None
    if isinstance(raw, str):
        spec_file = (path.parent / raw).resolve()
        from .spec import SpecError, read_spec_file

        try:
            raw = read_spec_file(spec_file)
        except SpecError as exc:
            raise ScheduleError(f"{where}: {exc.message}") from None
    if not isinstance(raw, dict):
        raise ScheduleError(f"{where}: `spec` must be a job spec mapping or a spec file path")
    spec = {**defaults, **{str(k).replace("-", "_"): v for k, v in raw.items()}}
    if validate:
        from .spec import SpecError
        from .spec import validate as check

        try:
            check(spec)
        except SpecError as exc:
            raise ScheduleError(f"{where}: {exc.message}") from None
    return Batch(name, cron, spec, spec_file if not defaults else None)


# ---- due times --------------------------------------------------------------------------
def due_tick(cron: str, now: datetime, tz: ZoneInfo | None = None) -> datetime:
    """The latest cron time at or before `now` (whole seconds), in UTC."""
    local = now.astimezone(tz or UTC).replace(microsecond=0)
    tick = croniter(cron, local + timedelta(seconds=1)).get_prev(datetime)
    return tick.astimezone(UTC)


def next_tick(cron: str, now: datetime, tz: ZoneInfo | None = None) -> datetime:
    """The first cron time strictly after `now`, in UTC."""
    local = now.astimezone(tz or UTC).replace(microsecond=0)
    return croniter(cron, local).get_next(datetime).astimezone(UTC)


def stamp(tick: datetime) -> str:
    return tick.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def run_name(batch: str, tick: datetime) -> str:
    """The name (and so the job id) of a batch's run for one tick."""
    return f"{batch}-{stamp(tick)}"


# ---- the scheduler ----------------------------------------------------------------------
class ClusterLike(Protocol):
    def find(self, job: str) -> Job | None: ...
    def list(self, batch: str | None = None, spl_only: bool = True) -> list[Job]: ...
    def submit(self, spec: dict[str, Any], name: str, **kwargs: Any) -> tuple[Job, bool]: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Submits due batches; one `tick()` is one pass over every batch."""

    def __init__(
        self,
        schedules: Schedules,
        cluster: ClusterLike,
        store: StateStore,
        *,
        working_dir: Path | None = None,
        storage_options: dict[str, Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
        log: Callable[[str], Any] = print,
    ) -> None:
        self.schedules, self.cluster, self.store = schedules, cluster, store
        self.working_dir, self.clock, self.log = working_dir, clock, log
        self.storage_options = storage_options

    def tick(self, now: datetime | None = None) -> None:
        now = now or self.clock()
        for batch in self.schedules.batches.values():
            self._reap(batch)
            self._maybe_submit(batch, now)

    def run(self, poll_s: float = 30.0, max_ticks: int | None = None) -> None:
        """Tick until interrupted (or `max_ticks` passes), sleeping until the next due time."""
        ticks = 0
        while max_ticks is None or ticks < max_ticks:
            try:
                self.tick()
            except ClusterError as exc:  # a cluster restart or network blip: try again later
                self.log(f"pass failed, will retry: {exc}")
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
            now = self.clock()
            soonest = min(
                next_tick(b.cron, now, self.schedules.tz) for b in self.schedules.batches.values()
            )
            time.sleep(max(0.2, min(poll_s, (soonest - now).total_seconds() + 0.05)))

    # ---- steps ----------------------------------------------------------------------------
    def _reap(self, batch: Batch) -> None:
        """Record the batch's current run once it has ended (or resubmit a lost intent)."""
        current = self.store.current(batch.name)
        if current is None:
            return
        job = self.cluster.find(current["job_id"])
        if job is None and not current.get("submitted"):
            self._submit(batch, current["name"], current["scheduled_for"])  # crashed mid-submit
            return
        if job is None:
            self._record(batch, current, status="LOST", note="the cluster no longer knows this job")
            return
        if job.finished:
            summary = read_run_summary(job.output or "", job.run_id, self.storage_options)
            self._record(batch, current, job=job, summary=summary)

    def _maybe_submit(self, batch: Batch, now: datetime) -> None:
        due = due_tick(batch.cron, now, self.schedules.tz)
        last = self.store.last_tick(batch.name)
        if last is None:  # a batch seen for the first time waits for its next tick, like cron
            self.store.set_last_tick(batch.name, due)
            self.log(
                f"{batch.name}: scheduled ({batch.cron}); next run "
                f"{_iso(next_tick(batch.cron, now, self.schedules.tz))}"
            )
            return
        if due <= last:
            return
        busy = self._busy_run(batch)
        if busy is not None:
            self.store.set_last_tick(batch.name, due)
            self.store.append_history(
                {
                    "batch": batch.name,
                    "scheduled_for": _iso(due),
                    "job_id": None,
                    "status": "SKIPPED",
                    "note": f"previous run {busy.submission_id} still {busy.status}",
                    "recorded_at": _iso(self.clock()),
                }
            )
            self.log(
                f"{batch.name}: tick {_iso(due)} skipped, {busy.submission_id} is {busy.status}"
            )
            return
        name = run_name(batch.name, due)
        self.store.set_current(
            batch.name,
            {
                "name": name,
                "job_id": submission_id_for(name),
                "scheduled_for": _iso(due),
                "submitted": False,
            },
            last_tick=due,
        )
        self._submit(batch, name, _iso(due))

    def _busy_run(self, batch: Batch) -> Job | None:
        current = self.store.current(batch.name)
        if current is not None:
            job = self.cluster.find(current["job_id"])
            if job is not None and not job.finished:
                return job
        active = [j for j in self.cluster.list(batch=batch.name) if not j.finished]
        return active[-1] if active else None  # also runs submitted by hand or by a lost state

    def _submit(self, batch: Batch, name: str, scheduled_for: str) -> None:
        job, started = self.cluster.submit(
            batch.spec, name, batch=batch.name, working_dir=self.working_dir
        )
        self.store.set_current(
            batch.name,
            {
                "name": name,
                "job_id": job.submission_id,
                "scheduled_for": scheduled_for,
                "submitted": True,
                "submitted_at": _iso(self.clock()),
            },
        )
        verb = "submitted" if started else "found already submitted"
        self.log(f"{batch.name}: {verb} {job.submission_id} for tick {scheduled_for}")

    def _record(
        self,
        batch: Batch,
        current: dict[str, Any],
        job: Job | None = None,
        summary: dict[str, Any] | None = None,
        status: str | None = None,
        note: str = "",
    ) -> None:
        record = {
            "batch": batch.name,
            "scheduled_for": current.get("scheduled_for"),
            "job_id": current["job_id"],
            "submitted_at": current.get("submitted_at"),
            "finished_at": _iso(datetime.fromtimestamp(job.end_time, UTC))
            if job and job.end_time
            else None,
            "status": status or (job.status if job else "UNKNOWN"),
            "counts": (summary or {}).get("counts"),
            "wall_s": (summary or {}).get("wall_s"),
            "images_per_s": (summary or {}).get("images_per_s"),
            "note": note or (job.message if job and job.status != "SUCCEEDED" else ""),
            "recorded_at": _iso(self.clock()),
        }
        self.store.append_history(record)
        self.store.set_current(batch.name, None)
        self.log(
            f"{batch.name}: {record['job_id']} {record['status']} {record['counts'] or ''}".rstrip()
        )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
