"""`spl evaluate`: the paper's protocol, engines side by side (thin: parse, validate, run)."""

from __future__ import annotations

import click

from jobs.spec import storage_options_flag
from pipeline.evaluate import EvaluateConfig, run_evaluation


@click.command("evaluate")
@click.option("--images", required=True, help="Photos with no holes (ground truth).")
@click.option("--output", required=True, help="Where inputs, per-engine runs and results go.")
@click.option(
    "--engine",
    "engines",
    multiple=True,
    type=click.Choice(["opencv-telea", "opencv-ns"]),
    help="A classical engine to score (repeatable).",
)
@click.option(
    "--checkpoint", "checkpoints", multiple=True, help="SPL weights to score (repeatable)."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Fixes the image-mask pairs.")
@click.option("--limit", default=None, type=int, help="Use at most this many photos.")
@click.option("--batch-size", default=8, show_default=True, type=int)
@click.option("--storage-option", "storage_options", multiple=True, help="fsspec key=value.")
def evaluate(storage_options: tuple[str, ...], **options) -> None:
    """Score engines per hole-ratio bucket (PSNR / SSIM / L1 as the paper computes them).

    Writes OUTPUT/results/results.parquet (one row per image, engine and bucket) and
    OUTPUT/table.md, and prints the table.
    """
    options["engines"], options["checkpoints"] = (
        list(options["engines"]),
        list(options["checkpoints"]),
    )
    config = EvaluateConfig(storage_options=storage_options_flag(storage_options), **options)
    try:
        _, table = run_evaluation(config)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(table)
