"""`spl report OUT` / `python -m jobs.report OUT`: one self-contained HTML page about a run."""

from __future__ import annotations

import click

from jobs.spec import storage_options_flag
from pipeline.report import ReportOptions, write_report


@click.command("report")
@click.argument("out")
@click.option(
    "--output", "destination", default=None, help="Where to write (default OUT/report.html)."
)
@click.option("--sample", default=24, show_default=True, help="Random restored items to show.")
@click.option("--worst", default=12, show_default=True, help="Worst items by seam ratio to show.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random sample.")
@click.option("--storage-option", "storage_options", multiple=True, help="fsspec key=value.")
def report(
    out: str, destination: str | None, sample: int, worst: int, seed: int, storage_options
) -> None:
    """Write an HTML report of the restore output OUT: run summary, errors grouped by message,
    histograms, and before / mask / after galleries (a random sample and the worst seams)."""
    options = ReportOptions(
        sample=sample, worst=worst, seed=seed,
        storage_options=storage_options_flag(storage_options),
    )  # fmt: skip
    click.echo(write_report(out, destination, options))


if __name__ == "__main__":
    report()
