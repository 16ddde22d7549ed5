"""What numba-compiled code needs from the process that runs it."""

from __future__ import annotations

import os
import tempfile


def usable_cwd() -> None:
    """numba resolves a module's relative path against the working directory when it compiles
    or loads a cached function, and a worker process can outlive that directory (a Ray worker
    on an autoscaled node has had it removed): it then fails with FileNotFoundError. Such a
    process moves to the temporary directory first."""
    try:
        os.getcwd()
    except FileNotFoundError:
        os.chdir(tempfile.gettempdir())
