"""`spl schedule run | list | history | export`: recurring restoration batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from .cmd_jobs import address_option, connect, counts_text, guarded, note
from .schedule import ScheduleError, Scheduler, Schedules, load_schedules, next_tick
from .schedule_state import StateLocked, StateStore

schedules_argument = click.argument(
    "schedules_file", metavar="SCHEDULES", type=click.Path(dir_okay=False, path_type=Path)
)
state_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Where the scheduler keeps its state and run history "
    "[default: .spl-schedule/<name> next to SCHEDULES].",
)


def load(path: Path) -> Schedules:
    try:
        return load_schedules(path)
    except ScheduleError as exc:
        raise click.ClickException(str(exc)) from None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.group("schedule")
def schedule() -> None:
    """Recurring restoration batches from a schedules file (job spec + cron per batch).

    \b
    SCHEDULES (YAML):
      timezone: UTC
      batches:
        nightly:
          cron: "0 2 * * *"
          spec: nightly.yaml          # a job spec file, or the spec inline as a mapping
    """


@schedule.command("run")
@schedules_argument
@address_option
@state_option
@click.option(
    "--poll",
    type=float,
    default=30.0,
    show_default=True,
    metavar="S",
    help="Seconds between checks of running jobs (the scheduler also wakes at every due time).",
)
@click.option(
    "--ship/--no-ship",
    default=None,
    help="Ship this project's source as each job's working_dir [default: ship when spl runs "
    "from a source checkout].",
)
@click.option("--once", is_flag=True, help="Do one pass over the batches and exit.")
@click.option("--max-ticks", type=int, metavar="N", help="Exit after N passes.")
@click.option(
    "--storage-option",
    "storage_option",
    multiple=True,
    metavar="KEY=VALUE",
    help="fsspec option for reading run summaries (counts) from each batch's OUT.",
)
@guarded
def run(
    schedules_file: Path,
    address: str | None,
    state_dir: Path | None,
    poll: float,
    ship: bool | None,
    once: bool,
    max_ticks: int | None,
    storage_option: tuple[str, ...],
) -> None:
    """Submit each batch when it is due, until interrupted.

    A batch never starts while its previous run is pending or running (that tick is recorded
    as SKIPPED); every run is recorded with its final status and counts. State is kept on
    disk and run names derive from the tick, so a restarted scheduler never submits a tick
    twice.
    """
    from .spec import parse_storage_options
    from .submit import project_root

    schedules = load(schedules_file)
    cluster = connect(address or schedules.address)
    store = StateStore(_state_dir(schedules_file, state_dir))
    try:
        store.lock()
    except StateLocked as exc:
        raise click.ClickException(str(exc)) from None
    note(
        f"scheduling {len(schedules.batches)} batch(es) on {cluster.address}; state in {store.root}"
    )
    scheduler = Scheduler(
        schedules,
        cluster,
        store,
        working_dir=project_root() if ship is not False else None,
        storage_options=parse_storage_options(storage_option),
        log=lambda message: note(f"{_stamp(datetime.now(UTC))}  {message}"),
    )
    try:
        scheduler.run(poll_s=poll, max_ticks=1 if once else max_ticks)
    except KeyboardInterrupt:
        note("stopped")
    finally:
        store.unlock()


def _state_dir(schedules_file: Path, given: Path | None) -> Path:
    return given or schedules_file.resolve().parent / ".spl-schedule" / schedules_file.stem


@schedule.command("list")
@schedules_argument
@state_option
def list_batches(schedules_file: Path, state_dir: Path | None) -> None:
    """Show each batch's cron, next due time and current run."""
    schedules = load(schedules_file)
    store = StateStore(_state_dir(schedules_file, state_dir))
    now = datetime.now(UTC)
    for batch in schedules.batches.values():
        current = store.current(batch.name)
        running = current["job_id"] if current else "-"
        nxt = _stamp(next_tick(batch.cron, now, schedules.tz))
        click.echo(
            f"{batch.name}  cron '{batch.cron}' ({schedules.timezone})  "
            f"next {nxt}  current {running}"
        )


@schedule.command("history")
@schedules_argument
@state_option
@click.option("--batch", metavar="BATCH", help="Only this batch.")
@click.option("-n", "--last", type=int, metavar="N", help="Only the last N records.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def history(
    schedules_file: Path, state_dir: Path | None, batch: str | None, last: int | None, as_json: bool
) -> None:
    """Print the recorded runs: tick, job id, final status and counts."""
    records = StateStore(_state_dir(schedules_file, state_dir)).history(batch)
    if last is not None:
        records = records[-last:] if last > 0 else []
    if as_json:
        for record in records:
            click.echo(json.dumps(record, sort_keys=True))
        return
    if not records:
        note("no runs recorded yet")
        return
    for record in records:
        click.echo(_history_line(record))


def _history_line(record: dict[str, Any]) -> str:
    shown = counts_text(record.get("counts"))
    parts = [
        record.get("scheduled_for") or "-",
        record.get("batch") or "-",
        record.get("job_id") or "-",
        record.get("status") or "-",
        shown,
        record.get("note") or "",
    ]
    return "  ".join(p for p in parts if p)


@schedule.command("export")
@schedules_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["crontab", "kubernetes"]),
    default="crontab",
    show_default=True,
    help="crontab lines, or Kubernetes ConfigMaps + CronJobs.",
)
@click.option(
    "--address", metavar="URL", help="Dashboard address to bake in [default: the file's]."
)
@click.option("--image", metavar="IMAGE", help="Container image with spl installed (kubernetes).")
def export(schedules_file: Path, fmt: str, address: str | None, image: str | None) -> None:
    """Print the schedules as crontab lines or Kubernetes CronJobs calling `spl submit`."""
    from .schedule_export import crontab, kubernetes

    schedules = load(schedules_file)
    if fmt == "crontab":
        click.echo(crontab(schedules, address), nl=False)
    else:
        click.echo(kubernetes(schedules, address, image), nl=False)
