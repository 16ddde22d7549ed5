"""`spl train`: train or fine-tune an SPL generator, here or on Ray Train (thin: parse, run)."""

from __future__ import annotations

import json
import logging

import click

from jobs.spec import storage_options_flag
from pipeline.config import ConfigError
from pipeline.training.train import TrainConfig, run_training


def _two_floats(separator: str, example: str):
    """A click callback parsing `A<separator>B` into two floats."""

    def parse(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[float, float]:
        try:
            first, second = (float(v) for v in value.split(separator))
        except ValueError:
            raise click.BadParameter(f"expected two numbers like {example}") from None
        return first, second

    return parse


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
@click.option(
    "--prefill",
    type=click.Choice(["none", "telea"]),
    default="none",
    show_default=True,
    help="Input convention: `telea` trains a residual over an OpenCV Telea pre-fill.",
)
@click.option("--init", default=None, help="Fine-tune from these weights (official or native).")
@click.option("--steps", default=1000, show_default=True, type=int)
@click.option(
    "--time-limit", "time_limit_min", default=None, type=float,
    help="Minutes; stop there and write the final weights.",
)  # fmt: skip
@click.option("--batch-size", default=4, show_default=True, type=int)
@click.option("--lr", default=1e-4, show_default=True, type=float)
@click.option(
    "--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant",
    show_default=True, help="cosine: decay to 0 over the steps or the time limit.",
)  # fmt: skip
@click.option(
    "--betas", default="0,0.9", show_default=True, callback=_two_floats(",", "0,0.9"),
    help="Adam betas.",
)  # fmt: skip
@click.option("--l1-weight", default=10.0, show_default=True, type=float)
@click.option("--gan-weight", default=1.0, show_default=True, type=float)
@click.option("--prior-weight", default=1.0, show_default=True, type=float)
@click.option(
    "--hole-ratio", default="0.1:0.6", show_default=True, callback=_two_floats(":", "0.1:0.6")
)
@click.option(
    "--stamp-masks", default=0.0, show_default=True, type=float,
    help="Share of samples that are native-scale 256-px crops with a text, logo or scratch "
    "mask (what the crop strategy's tiles see of a watermark); the rest use --hole-ratio.",
)  # fmt: skip
@click.option(
    "--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
    show_default=True, help="auto: bf16 autocast on CUDA, fp32 on CPU.",
)  # fmt: skip
@click.option(
    "--local", "launcher", flag_value="local", default=False,
    help="Train in this process (one CPU or GPU) instead of on Ray Train.",
)  # fmt: skip
@click.option("--workers", default=1, show_default=True, type=int, help="Ray Train workers.")
@click.option("--gpu/--no-gpu", "use_gpu", default=False, help="One GPU per worker.")
@click.option("--loader-workers", default=2, show_default=True, type=int,
              help="Data-loading processes per worker (decode, crops, masks, pre-fill).")
@click.option("--checkpoint-every", default=100, show_default=True, type=int)
@click.option("--log-every", default=10, show_default=True, type=int)
@click.option("--val-images", default=None, help="Held-out photos scored every --val-every.")
@click.option("--val-every", default=500, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--storage-option", "storage_options", multiple=True, help="fsspec key=value.")
def train(storage_options: tuple[str, ...], **options) -> None:
    """Train (or fine-tune) a generator; re-running with the same OUTPUT resumes."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    options["launcher"] = options["launcher"] or "ray"
    try:
        config = TrainConfig(storage_options=storage_options_flag(storage_options), **options)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(run_training(config), indent=2, default=str))
