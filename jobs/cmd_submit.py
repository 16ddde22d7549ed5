"""`spl submit`: send a restore job to a Ray cluster through its Jobs API."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import click
import yaml

from .cmd_jobs import address_option, connect, finish_wait, guarded, note
from .spec import spec_from_cli, spec_options, validate
from .submit import project_root, submission_id_for


def parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    """NAME=VALUE, or NAME alone to pass this shell's value (keeps secrets out of history)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            if name not in os.environ:
                raise click.BadParameter(
                    f"{name} is not set in this environment", param_hint="--env"
                )
            value = os.environ[name]
        out[name] = value
    return out


def default_name(spec: dict[str, Any]) -> str:
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    return f"restore-{hashlib.sha256(blob).hexdigest()[:10]}"


@click.command(
    "submit",
    epilog="""\b
Examples:
  export RAY_ADDRESS=http://head:8265 RAY_AUTH_TOKEN=...   # or RAY_AUTH_TOKEN_PATH
  spl submit --config nightly.yaml --name nightly-2024-05-01 --wait
  spl submit --images s3://a/img --masks s3://a/masks --output s3://a/out --env AWS_PROFILE""",
)
@address_option
@click.option(
    "--name",
    metavar="NAME",
    help="Run name; the job id is spl-NAME, so the same "
    "name never starts twice [default: a hash of the spec].",
)
@click.option("--batch", metavar="BATCH", help="Batch this run belongs to [default: NAME].")
@click.option(
    "--skip-if-running",
    is_flag=True,
    help="Submit nothing while another run of the same batch is pending or running.",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="Environment variable for the job (repeatable); NAME alone passes this shell's value.",
)
@click.option(
    "--ship/--no-ship",
    default=None,
    help="Ship this project's source as the job's working_dir [default: ship when "
    "spl runs from a source checkout; --no-ship when the cluster has it installed].",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the job id and the checked spec (YAML) and exit."
)
@click.option("--wait", is_flag=True, help="Wait for the job to end; exit 0 only on SUCCEEDED.")
@click.option("--timeout", type=float, metavar="S", help="Give up waiting after S seconds.")
@spec_options(exclude={"ray_address"})
@click.pass_context
@guarded
def submit(ctx: click.Context, **params: Any) -> None:
    """Submit a restore job to a Ray cluster; prints its job id.

    Takes the same flags and --config file as `spl restore`; the spec is checked here,
    before anything is sent. Ray's token authentication is used the standard way
    (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token).
    """
    spec = spec_from_cli(ctx, params)
    config = validate(spec)
    name = params["name"] or default_name(spec)
    if params["dry_run"]:
        note(f"job id: {submission_id_for(name)}")
        shown = {k: v for k, v in config.redacted().items() if k in spec}
        click.echo(yaml.safe_dump(shown, sort_keys=False), nl=False)
        return
    ship = params["ship"]
    working_dir: Path | None = project_root() if ship in (None, True) else None
    if ship and working_dir is None:
        raise click.UsageError("--ship: spl is not running from a source checkout")
    for key in ("images", "masks", "mask_template", "output", "checkpoint"):
        value = spec.get(key)
        if isinstance(value, str) and value and "://" not in value:
            note(f"note: `{key}` {value} is a local path; every cluster node must see it there")
    cluster = connect(params["address"])
    batch = params["batch"] or name
    if params["skip_if_running"]:
        busy = [j for j in cluster.list(batch=batch) if not j.finished]
        if busy:
            note(f"batch {batch} is still running as {busy[-1].submission_id}; not submitting")
            click.echo(busy[-1].submission_id)
            return
    job, started = cluster.submit(
        spec, name, batch=batch, working_dir=working_dir, env=parse_env(params["env"])
    )
    if started:
        note(f"submitted {job.submission_id} to {cluster.address} ({job.status})")
    else:
        note(f"{job.submission_id} already exists ({job.status}); not submitting it again")
        if job.status in ("FAILED", "STOPPED"):
            note("to run this batch again, submit it under a new --name")
    click.echo(job.submission_id)
    if params["wait"]:
        finish_wait(cluster, job, params["timeout"], params["storage_option"])
