"""The Ray restoration pipeline: sources -> read -> decode -> prepare -> infer (actor pool:
windows in, predictions out) -> finish -> encode + sinks.

Entry point: `run_restore(RestoreConfig.from_yaml("job.yaml"))`. Outputs, the stats schema
and resume semantics are described in docs/PIPELINE.md. `run_restore` is imported on first
use, so reading a config (the CLI's help, spec checks) does not import Ray.

May import: spl_model's public modules, Ray, pyarrow, fsspec. Never jobs. Inside, the driver's
modules (run, work, planner, dataset) import the stages (pipeline/stages/), never the reverse.
"""

from typing import Any

from .config import ConfigError, RestoreConfig

__all__ = ["ConfigError", "RestoreConfig", "run_restore"]


def __getattr__(name: str) -> Any:
    if name == "run_restore":
        from .run import run_restore

        return run_restore
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
