"""`spl watermark detect`: find the watermark an archive's images share (thin: parse, run)."""

from __future__ import annotations

import logging

import click

from jobs.spec import quiet, storage_options_flag
from pipeline.config import ConfigError
from pipeline.progress import Steps
from pipeline.watermark import DetectConfig, detect_watermark


@click.group("watermark")
def watermark() -> None:
    """Watermarks shared by a whole archive."""


@watermark.command("detect")
@click.option("--images", required=True, help="Images as `spl restore` reads them (any layout).")
@click.option("--output", required=True, help="Folder for template.png, alpha.png, "
              "placement.yaml, preview.png and detection.json.")  # fmt: skip
@click.option("--sample", default=400, show_default=True, help="Images to sample.")
@click.option("--min-group", default=16, show_default=True, help="Images per size group.")
@click.option("--format", "fmt", default="auto", show_default=True,
              type=click.Choice(["auto", "pairs", "webdataset", "parquet"]))  # fmt: skip
@click.option("--seed", default=0, show_default=True)
@click.option("--storage-option", "storage_options", multiple=True, help="fsspec key=value.")
def detect(images, output, sample, min_group, fmt, seed, storage_options) -> None:
    """Estimate the watermark from a sample (median of gradients, Dekel et al. 2017) and write
    a template with its placement; look at preview.png before restoring a million images."""
    logging.basicConfig(level=logging.WARNING)
    try:
        config = DetectConfig(images, output, sample, min_group, seed, fmt,
                              storage_options_flag(storage_options))  # fmt: skip
        show = not quiet(click.get_current_context())
        steps = Steps("detect: reading the sample", show=show, unit="images")
        try:
            detection = detect_watermark(config, progress=steps.update)
        finally:
            steps.close()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(detection.message)
    if not detection.found:
        raise SystemExit(1)
    click.echo(f"next: spl restore --images {images} --config {output}/placement.yaml --output OUT")
