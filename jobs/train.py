"""`spl train`: train or fine-tune an SPL generator on Ray Train (thin: parse, validate, run)."""

from __future__ import annotations

import json

import click

from jobs.spec import storage_options_flag
from pipeline.config import ConfigError
from pipeline.train import TrainConfig, run_training


def _ratio(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value.split(":"))
    except ValueError:
        raise click.BadParameter("expected LOW:HIGH, e.g. 0.1:0.6") from None
    return low, high


@click.command("train")
@click.option("--images", required=True, help="Training photos: a folder or fsspec URL.")
@click.option("--output", required=True, help="Where checkpoints and final weights go.")
@click.option("--model", default="spl-small", show_default=True, help="spl or spl-small.")
@click.option(
    "--teacher",
    type=click.Choice(["efficientnet-lite0", "none"]),
    default="efficientnet-lite0",
    show_default=True,
    help="Pretext teacher for the semantic prior; `none` drops the prior loss.",
)
@click.option("--init", default=None, help="Fine-tune from these weights (official or native).")
@click.option("--steps", default=1000, show_default=True, type=int)
@click.option("--batch-size", default=4, show_default=True, type=int)
@click.option("--lr", default=1e-4, show_default=True, type=float)
@click.option("--prior-weight", default=1.0, show_default=True, type=float)
@click.option("--hole-ratio", default="0.1:0.6", show_default=True, callback=_ratio)
@click.option("--workers", default=1, show_default=True, type=int, help="Ray Train workers.")
@click.option("--gpu/--no-gpu", "use_gpu", default=False, help="One GPU per worker.")
@click.option("--checkpoint-every", default=100, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--storage-option", "storage_options", multiple=True, help="fsspec key=value.")
def train(storage_options: tuple[str, ...], **options) -> None:
    """Train (or fine-tune) a generator; re-running with the same OUTPUT resumes."""
    try:
        config = TrainConfig(storage_options=storage_options_flag(storage_options), **options)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(run_training(config), indent=2, default=str))
