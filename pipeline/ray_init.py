"""How every command starts Ray, one way: join the cluster named by `address` (or RAY_ADDRESS),
else start a private local Ray for this process. Never a stale cluster some earlier `ray start`
left behind (a bare `ray.init()` would join that)."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
# Every Ray a command uses starts in `ensure_ray`, never implicitly: a call into Ray after
# ray.shutdown (the results thread an interrupted run leaves behind) must not start another.
# Ray reads this when it is first imported, which in the commands comes after this module.
os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
TOKEN_NOTICE = "ray._private.authentication.authentication_token_setup"  # "token auth is on"


def ensure_ray(
    address: str | None = None, num_cpus: int | None = None, log_to_driver: bool | None = None
) -> bool:
    """Connect or start Ray; True when this call initialised it (the caller shuts it down).

    Workers' logs reach this process's terminal only when it logs at INFO (`spl -v`,
    `python -m jobs.restore`) or `log_to_driver` says so; they are always in Ray's session
    folder."""
    import ray

    if ray.is_initialized():
        return False
    verbose = logging.getLogger("pipeline").isEnabledFor(logging.INFO)
    quiet = {
        "log_to_driver": verbose if log_to_driver is None else log_to_driver,
        "logging_level": logging.INFO if verbose else logging.WARNING,
    }
    joining = address or os.environ.get("RAY_ADDRESS")
    if joining:
        ray.init(address=joining, **quiet)
        return True
    if not verbose:  # a private Ray keeps token auth on (the safe default): no news to tell
        logging.getLogger(TOKEN_NOTICE).setLevel(logging.ERROR)
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
    return True
