"""Entry points a Ray cluster runs (`python -m jobs.restore ...`) and the `spl` CLI."""
