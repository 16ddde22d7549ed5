"""The Ray restoration pipeline: sources -> decode -> inpaint (actor pool) -> encode -> sinks.

Entry point: `run_restore(RestoreConfig.from_yaml("job.yaml"))`. Outputs, the stats schema
and resume semantics are described in docs/PIPELINE.md.
"""

from .config import ConfigError, RestoreConfig
from .run import run_restore

__all__ = ["ConfigError", "RestoreConfig", "run_restore"]
