"""`spl restore`: run one restore job from this machine (local Ray, or a cluster's GCS)."""

from __future__ import annotations

import os

import click
import yaml

from . import auth
from .spec import SpecError, spec_from_cli, spec_options, validate


@click.command(
    "restore",
    epilog="""\b
Examples:
  spl restore --images s3://archive/photos --masks s3://archive/masks --output s3://archive/restored
  spl restore --images ./scans --mask-template logo.png --mask-anchor bottom-right --output out/
  spl restore --config job.yaml --batch-size 16      # flags override the file

To run on a Ray cluster through its Jobs API, use `spl submit` with the same flags.""",
)
@spec_options(aliases={"ray_address": ["--address"]})
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the checked job spec (YAML), then list the inputs, consult OUT's ledger and "
    "print what a run would do (new, changed, retry, already done); write nothing.",
)
@click.pass_context
def restore(ctx: click.Context, **params: object) -> None:
    """Restore images: fill masked regions and write images, stats and a run summary.

    Starts a local Ray (or joins the cluster at --address) and runs the job to the end.
    Every flag is also a key of the YAML job spec (`--mask-template` is `mask_template`).
    """
    config = validate(spec_from_cli(ctx, params))
    if params["dry_run"]:
        click.echo(yaml.safe_dump(config.redacted(), sort_keys=False), nl=False)
        from pipeline.work import dry_run

        try:
            plan = {"plan": dry_run(config)}
        except Exception as exc:  # storage unreachable, inputs missing: the spec still printed
            plan = {"plan_error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        click.echo(yaml.safe_dump(plan, sort_keys=False), nl=False)
        return
    joining = config.ray_address or os.environ.get("RAY_ADDRESS")
    if joining and joining.startswith(("http://", "https://")):
        where = "--address" if config.ray_address else "RAY_ADDRESS"
        raise click.UsageError(
            f"{where} {joining} is a dashboard URL: `spl submit` runs jobs there; `spl restore` "
            "joins a cluster by its GCS address (HOST:6379), or runs locally without one."
        )
    if joining:
        if problem := auth.token_path_problem():
            raise click.ClickException(problem)
        auth.use_cluster_token()
    from pipeline import ConfigError, run_restore

    try:
        summary = run_restore(config)
    except ConfigError as exc:
        raise SpecError(str(exc)) from None
    except Exception as exc:
        address = config.ray_address or os.environ.get("RAY_ADDRESS") or "the local Ray"
        if (cause := auth.auth_error_in(exc)) is not None:
            raise click.ClickException(auth.auth_failure_sentence(address, cause)) from None
        if isinstance(exc, ConnectionError) and config.ray_address:
            raise click.ClickException(
                f"Cannot connect to the Ray cluster at {address}: {str(exc).splitlines()[0]}"
            ) from None
        raise
    counts = summary.get("counts", {})
    shown = ", ".join(f"{k} {v}" for k, v in counts.items())
    click.echo(
        f"run {summary.get('run_id')} {summary.get('status')}: {shown} "
        f"in {summary.get('wall_s', 0):.1f} s -> {summary.get('summary_uri', config.output)}"
    )
