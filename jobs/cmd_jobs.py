"""`spl submit | status | logs | stop | list`: restore jobs on a Ray cluster (Jobs API)."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from .submit import Cluster, ClusterError, Job, read_run_summary

address_option = click.option(
    "--address",
    envvar="RAY_ADDRESS",
    metavar="URL",
    help="The cluster's dashboard address, e.g. http://HEAD:8265 [env: RAY_ADDRESS].",
)
storage_option = click.option(
    "--storage-option",
    "storage_option",
    multiple=True,
    metavar="KEY=VALUE",
    help="fsspec option for reading the run summary from OUT (repeatable).",
)


def connect(address: str | None) -> Cluster:
    try:
        cluster = Cluster(address)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    quiet_ray_packaging_logs()  # after Ray's SDK has set its loggers up
    return cluster


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Show ClusterErrors as one line (`Error: ...`, exit 1) instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ClusterError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def quiet_ray_packaging_logs() -> None:
    """Ray logs every working_dir upload step at INFO; a CLI user needs none of it."""
    for name in ("ray._private.runtime_env", "ray.dashboard.modules.dashboard_sdk"):
        logging.getLogger(name).setLevel(logging.ERROR)


def note(message: str) -> None:
    click.echo(message, err=True)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


COUNT_ORDER = ("listed", "ok", "error", "skipped", "already_done")


def counts_text(counts: dict[str, Any] | None) -> str:
    """`listed 4, ok 3, error 1, ...` in a fixed order, whatever order the summary has."""
    counts = counts or {}
    keys = [k for k in COUNT_ORDER if k in counts] + sorted(set(counts) - set(COUNT_ORDER))
    return ", ".join(f"{k} {counts[k]}" for k in keys)


def summary_line(summary: dict[str, Any]) -> str:
    counts = counts_text(summary.get("counts"))
    line = f"{summary.get('status', '?')}: {counts or 'no counts yet'}"
    if "wall_s" in summary:
        line += f"; {summary['wall_s']:.1f} s, {summary.get('images_per_s', 0):.2f} images/s"
    return line


def describe(job: Job, summary: dict[str, Any] | None) -> str:
    lines = [f"{job.submission_id}  {job.status}  {job.message}".rstrip()]
    if job.batch:
        lines.append(f"  batch     {job.batch}")
    lines.append(f"  started   {_when(job.start_time)}")
    if job.end_time:
        lines.append(f"  finished  {_when(job.end_time)}")
    if job.output:
        lines.append(f"  output    {job.output}")
    if summary is not None:
        lines.append(f"  run       {job.run_id} {summary_line(summary)}")
    elif job.finished and job.output:
        lines.append(f"  run       no summary at {job.output}/runs/{job.run_id}.json")
    return "\n".join(lines)


def job_summary(job: Job, storage: tuple[str, ...]) -> dict[str, Any] | None:
    if not job.output:
        return None
    from .spec import parse_storage_options

    return read_run_summary(job.output, job.run_id, parse_storage_options(storage))


def report(job: Job, storage: tuple[str, ...], as_json: bool) -> None:
    summary = job_summary(job, storage) if job.finished else None
    if as_json:
        click.echo(json.dumps({"job": job.__dict__, "summary": summary}, default=str, indent=2))
    else:
        click.echo(describe(job, summary))


def finish_wait(
    cluster: Cluster, job: Job, timeout: float | None, storage: tuple[str, ...]
) -> None:
    """Wait for the job, report it, and exit 0 only when it SUCCEEDED."""
    final = cluster.wait(
        job.submission_id,
        timeout_s=timeout,
        on_change=lambda j: note(f"{j.submission_id}: {j.status}"),
    )
    report(final, storage, as_json=False)
    if final.status != "SUCCEEDED":
        sys.exit(1)


# ---- commands -------------------------------------------------------------------------------
@click.command("status")
@click.argument("job")
@address_option
@click.option("--wait", is_flag=True, help="Wait for the job to end; exit 0 only on SUCCEEDED.")
@click.option("--timeout", type=float, metavar="S", help="Give up waiting after S seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (job and run summary).")
@storage_option
@guarded
def status(
    job: str,
    address: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
    storage_option: tuple[str, ...],
) -> None:
    """Show a job's state, and its run summary (OUT/runs/) once it has ended.

    JOB is a job id (spl-NAME) or the NAME given to `spl submit`.
    """
    cluster = connect(address)
    found = cluster.get(job)
    if wait and not found.finished:
        found = cluster.wait(found.submission_id, timeout_s=timeout)
    report(found, storage_option, as_json)
    if wait and found.status != "SUCCEEDED":
        sys.exit(1)


@click.command("logs")
@click.argument("job")
@address_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
@guarded
def logs(job: str, address: str | None, follow: bool) -> None:
    """Print a job's driver logs."""
    cluster = connect(address)
    if follow:
        cluster.follow_logs(job, lambda chunk: click.echo(chunk, nl=False))
    else:
        click.echo(cluster.logs(job), nl=False)


@click.command("stop")
@click.argument("job")
@address_option
@click.option("--wait", is_flag=True, help="Wait until the job has stopped.")
@guarded
def stop(job: str, address: str | None, wait: bool) -> None:
    """Stop a running job (items it finished stay done; a re-run resumes)."""
    cluster = connect(address)
    found = cluster.stop(job)
    if wait:
        found = cluster.wait(found.submission_id, timeout_s=120)
    note(f"{found.submission_id}: {found.status}")


@click.command("list")
@address_option
@click.option("--batch", metavar="BATCH", help="Only runs of this batch.")
@click.option("--all", "show_all", is_flag=True, help="Include jobs not submitted by spl.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def list_jobs(address: str | None, batch: str | None, show_all: bool, as_json: bool) -> None:
    """List jobs on the cluster, oldest first."""
    jobs = connect(address).list(batch=batch, spl_only=not show_all)
    if as_json:
        click.echo(json.dumps([j.__dict__ for j in jobs], default=str, indent=2))
        return
    if not jobs:
        note("no jobs")
        return
    width = max(len(j.submission_id) for j in jobs)
    for j in jobs:
        click.echo(
            f"{j.submission_id:<{width}}  {j.status:<9}  {_when(j.start_time)}  "
            f"{j.batch or '-'}  {j.output or ''}".rstrip()
        )
