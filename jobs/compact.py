"""`spl compact OUT`: merge the stats files of a restore output into one (holds OUT's lease)."""

from __future__ import annotations

import click

from jobs.spec import quiet, storage_options_flag


@click.command("compact")
@click.argument("out")
@click.option("--storage-option", "storage_options", multiple=True, help="fsspec key=value.")
@click.pass_context
def compact(ctx: click.Context, out: str, storage_options: tuple[str, ...]) -> None:
    """Merge every stats file of OUT into one Parquet file, atomically: a compaction that is
    interrupted loses no row and leaves no duplicate. Fails at once while a run holds OUT."""
    from pipeline.compact import compact as merge
    from pipeline.config import ConfigError
    from pipeline.lease import Lease
    from pipeline.run import new_run_id

    options = storage_options_flag(storage_options)
    try:
        with Lease(out, options, run_id=f"compact-{new_run_id()}"):
            result = merge(out, options, show=not quiet(ctx))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if result["file"] is None:
        click.echo(f"{out}: {result['files_before']} stats file(s), nothing to compact")
    else:
        click.echo(
            f"{out}: {result['compacted']} stats files ({result['rows']} rows) -> {result['file']}"
        )


if __name__ == "__main__":
    compact()
