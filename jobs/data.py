"""`spl data`: build the default model's photo set (train / val / holdout splits + manifest)."""

from __future__ import annotations

import collections

import click

from pipeline.training.photos import build_photo_set


@click.command("data")
@click.option("--output", default="data/photos", show_default=True, help="Folder to write.")
def data(output: str) -> None:
    """Fetch openly licensed photos (Debian wallpapers, scikit-image, matplotlib) into splits."""
    manifest = build_photo_set(output)
    counts = collections.Counter(entry["split"] for entry in manifest["files"])
    click.echo(f"{output}: " + ", ".join(f"{n} {split}" for split, n in sorted(counts.items())))
