"""`python -m jobs.restore --config job.yaml [KEY=VALUE ...]`: run one restore job.

KEY=VALUE pairs override the spec (values parsed as YAML: `batch_size=4`, `overwrite=true`).
Exit status: 0 when the run finished (item errors are rows, not failures), 2 for a bad
job spec, 1 when the run itself failed, 128 + the signal's number when a signal stopped it
(what had finished is recorded; the next run resumes).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pipeline import ConfigError, RestoreConfig, run_restore
from pipeline.config import load_spec
from pipeline.interrupt import Interrupted


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r} must look like KEY=VALUE")
        out[key.strip()] = load_spec(value) if value else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.restore", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML job spec")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = RestoreConfig.from_yaml(args.config, parse_overrides(args.overrides))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = run_restore(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"{stop}; the items finished by then are recorded", file=sys.stderr)
        return stop.exit_code
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("run_id", "status", "counts", "wall_s", "images_per_s", "summary_uri")
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
