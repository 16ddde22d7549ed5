"""`spl evaluate`: engines side by side on the paper's crops or at archive resolution (thin:
parse, validate, run)."""

from __future__ import annotations

import click

from jobs.spec import quiet, storage_options_flag
from pipeline.evaluate import DEFAULT_ENGINES, PROTOCOLS, EvaluateConfig, run_evaluation
from spl_model.names import CLASSICAL_ENGINES
from spl_model.stamps import KINDS


@click.command("evaluate")
@click.option("--images", required=True, help="Photos with no holes (ground truth).")
@click.option("--output", required=True, help="Where inputs, per-engine runs and results go.")
@click.option(
    "--engine",
    "engines",
    multiple=True,
    type=click.Choice([*CLASSICAL_ENGINES, *DEFAULT_ENGINES]),
    help="An engine to score (repeatable): a classical one, or `default` for the bundled model.",
)
@click.option(
    "--checkpoint", "checkpoints", multiple=True, help="SPL weights to score (repeatable)."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Fixes the image-mask pairs.")
@click.option("--limit", default=None, type=int, help="Use at most this many photos.")
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default="crops",
    show_default=True,
    help="crops: the paper's 256² crops per hole-ratio bucket; archive: watermarks and objects "
    "stamped on full-size photos, scored inside the hole.",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(KINDS),
    help="Archive protocol: stamp kinds to use (repeatable; default all).",
)
@click.option("--max-side", default=None, type=int, help="Archive protocol: cap the long side.")
@click.option("--batch-size", default=8, show_default=True, type=int)
@click.option("--storage-option", "storage_options", multiple=True, help="fsspec key=value.")
@click.pass_context
def evaluate(ctx: click.Context, storage_options: tuple[str, ...], **options) -> None:
    """Score engines side by side.

    `--protocol crops`: per hole-ratio bucket on 256² crops (PSNR / SSIM / L1 as the paper
    computes them). `--protocol archive`: text, logo, stroke and object stamps on full-size
    photos through the real restore path, PSNR inside the hole and SSIM over its box, with
    comparison strips in OUTPUT/crops/. Writes OUTPUT/results/results.parquet (one row per
    image and engine) and OUTPUT/table.md, and prints the table.
    """
    for name in ("engines", "checkpoints", "kinds"):
        options[name] = list(options[name])
    if not options["kinds"]:
        options["kinds"] = list(KINDS)
    config = EvaluateConfig(
        storage_options=storage_options_flag(storage_options), progress_bars=not quiet(ctx),
        **options,
    )  # fmt: skip
    try:
        _, table = run_evaluation(config)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(table)
