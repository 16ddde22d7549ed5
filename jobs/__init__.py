"""Entry points a Ray cluster runs (`python -m jobs.restore ...`) and the `spl` CLI.

May import: pipeline and spl_model (their public functions). Nothing imports jobs. Kept thin:
flags are parsed and checked here, the work is done by pipeline.
"""
