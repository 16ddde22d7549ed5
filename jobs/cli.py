"""`spl`: the command-line front door. Subcommands load on first use, so `spl --help` is fast
and works before the modules of later commands exist."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import click

# name -> (module, attribute, one-line help shown by `spl --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "restore": ("jobs.cmd_restore", "restore", "Restore images here (local Ray or --address)."),
    "submit": ("jobs.cmd_submit", "submit", "Submit a restore job to a Ray cluster."),
    "status": ("jobs.cmd_jobs", "status", "Show a job's state and run summary."),
    "logs": ("jobs.cmd_jobs", "logs", "Print (or follow) a job's logs."),
    "stop": ("jobs.cmd_jobs", "stop", "Stop a running job."),
    "list": ("jobs.cmd_jobs", "list_jobs", "List restore jobs on a cluster."),
    "schedule": ("jobs.cmd_schedule", "schedule", "Run, inspect and export scheduled batches."),
    "evaluate": ("jobs.evaluate", "evaluate", "Score engines on images with known ground truth."),
    "data": ("jobs.data", "data", "Build the default model's photo set (splits + manifest)."),
    "train": ("jobs.train", "train", "Train or fine-tune an SPL generator."),
    "report": ("jobs.report", "report", "Write one HTML page about a restore run."),
    "watermark": ("jobs.watermark", "watermark", "Find the watermark an archive shares."),
    "compact": ("jobs.compact", "compact", "Merge a restore output's stats files into one."),
    "demo": ("jobs.cli", "demo", "Restore a built-in sample archive into out/demo."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when they run (or show their help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr, short = COMMANDS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return _not_yet(name, short)
        for candidate in (attr, "main", "cli", "command"):
            command = getattr(module, candidate, None)
            if isinstance(command, click.Command):
                return command
        return _not_yet(name, short)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


def _not_yet(name: str, short: str) -> click.Command:
    """A stand-in for a command whose module is not there yet: any arguments, one clear line."""

    def run(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"`spl {name}` is not available in this version yet.")

    return click.Command(
        name,
        callback=run,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True},
        help=f"{short} (Not available yet.)",
    )


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Quick start:
  spl demo                                   restore a sample archive into out/demo
  spl restore --images DIR --masks DIR --output OUT
  spl submit --config job.yaml --name nightly --wait     (RAY_ADDRESS=http://head:8265)

Run `spl COMMAND --help` for a command's flags.""",
)
@click.version_option(package_name="spl-restore", prog_name="spl")
@click.option("-q", "--quiet", is_flag=True, help="No progress display; warnings and results only.")
@click.option(
    "-v", "--verbose", is_flag=True, help="Log what runs do (INFO), Ray's worker logs included."
)
@click.pass_context
def main(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    """Batch image restoration with SPL inpainting on Ray.

    Reads images and masks from any fsspec URL (s3://, gs://, local paths), fills the masked
    regions, and writes restored images, per-image stats (Parquet) and a run summary.
    """
    ctx.obj = {"quiet": quiet}  # `verbose` acts through the log level (pipeline/ray_init.py)
    if verbose:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


@click.command("demo")
@click.option(
    "--output",
    default="out/demo",
    show_default=True,
    metavar="DIR",
    help="Where the sample archive and its restoration go.",
)
def demo(output: str) -> None:
    """Restore a built-in sample archive (photos with watermark-like masks).

    Runs the default model on a local Ray and writes images, stats and the run summary to
    OUTPUT; what `make demo` calls.
    """
    from jobs import demo as demo_module

    summary = demo_module.main(output)
    counts = ", ".join(f"{k} {v}" for k, v in (summary.get("counts") or {}).items())
    click.echo(f"demo run {summary.get('run_id')}: {counts} -> {output}")
    click.echo(f"  report (open in a browser): {Path(output, 'report.html').resolve()}")
    click.echo(f"  comparison picture:         {Path(output, 'comparison.png').resolve()}")
    click.echo(f"  restored images:            {Path(output, 'images').resolve()}")


if __name__ == "__main__":
    main()
