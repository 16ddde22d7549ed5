"""`spl restore`: run one restore job from this machine (local Ray, or a cluster's GCS)."""

from __future__ import annotations

import os

import click
import yaml

from . import auth
from .spec import SpecError, quiet, spec_from_cli, spec_options, validate


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
@click.option(
    "--allow-errors",
    is_flag=True,
    help="Exit 0 even when some items failed (by default such a run exits 3).",
)
@click.option(
    "--concat",
    "concat_dir",
    metavar="DIR",
    help="After the run, write before | mask | after strips of items it restored to DIR "
    "(DIR/<key>.jpg), for a quick look.",
)
@click.option(
    "--concat-items",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many items --concat shows (the first by key).",
)
@click.pass_context
def restore(ctx: click.Context, **params: object) -> None:
    """Restore images: fill masked regions and write images, stats and a run summary.

    Starts a local Ray (or joins the cluster at --address) and runs the job to the end.
    Every flag is also a key of the YAML job spec (`--mask-template` is `mask_template`).

    Exit status: 0 when every item was restored, skipped or already done; 3 when any item
    failed (its reason is on its stats row; --allow-errors exits 0); 2 for a job that cannot
    run (bad spec, missing inputs); 1 when the run itself failed; 130 (143 for SIGTERM) when
    stopped by Ctrl-C: the items finished by then are kept and the next run skips them.
    """
    config = validate(spec_from_cli(ctx, params))
    if quiet(ctx):
        config.progress_bars = False
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
    from pipeline.interrupt import Interrupted

    try:
        summary = run_restore(config)
    except ConfigError as exc:
        raise SpecError(str(exc)) from None
    except Interrupted as stop:
        click.echo(interrupted_line(stop.summary), err=True)
        ctx.exit(stop.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted before any item was recorded; nothing to keep.", err=True)
        ctx.exit(130)
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
    if params["concat_dir"]:
        from pipeline.previews import write_strips

        count = write_strips(
            config.output, summary["run_id"], params["concat_dir"], params["concat_items"],
            config.io_options,
        )  # fmt: skip
        click.echo(f"before | mask | after strips of {count} item(s): {params['concat_dir']}")
    if counts.get("error"):
        click.echo(failure_line(counts, summary.get("top_errors", []), config.output), err=True)
        if not params["allow_errors"]:
            ctx.exit(EXIT_ITEMS_FAILED)


EXIT_ITEMS_FAILED = 3


def interrupted_line(summary: dict) -> str:
    """What an interrupted run kept, and how to go on."""
    counts = summary.get("counts", {})
    kept = counts.get("ok", 0) + counts.get("error", 0) + counts.get("skipped", 0)
    done = kept + counts.get("already_done", 0)
    listed = summary.get("items_listed_up_front")
    of = f" of {listed}" if listed is not None else ""
    return (
        f"interrupted: {kept} item(s) of this run recorded, {done}{of} done in all. Run the "
        "same command again to resume: recorded items are skipped."
    )


def failure_line(counts: dict, top_errors: list[dict], output: str) -> str:
    """Why items failed, in one line: the top reasons with their counts, and where to look."""
    failed = counts["error"]
    reasons = "; ".join(f"{e['count']} x {e['error']}" for e in top_errors) or "see the stats"
    worked = failed + counts.get("ok", 0) + counts.get("skipped", 0)
    if failed == worked:
        head = f"every one of the {failed} item(s) this run worked on failed: {reasons}"
    else:
        head = f"{failed} of {worked} item(s) failed: {reasons}"
    return f"{head}. Every error is in `spl report {output}`."
