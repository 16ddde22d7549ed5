"""Whether an error row is worth retrying: `transient` errors are retried by the next run on its
own; `permanent` ones (the input itself is bad) only with `retry_failed`.

Transient: storage reads and writes, timeouts, a file that vanished after listing, a pair's
mask that is not there yet (a shard's members never change, so a shard sample without a mask
is permanent), worker and device faults (a lost actor, CUDA out of memory). Everything else,
such as corrupt or unsupported images, masks that do not fit and unsafe keys, is permanent.
The messages are this project's own, so their wording is the contract.
"""

from __future__ import annotations

TRANSIENT, PERMANENT = "transient", "permanent"
TRANSIENT_MARKERS = (
    "cannot read ",
    "cannot write ",
    "disappeared after listing",
    "no mask for this image",  # pairs: the mask may be uploaded after its image
    "timed out",
    "timeout",
    "out of memory",
    "outofmemoryerror",
    "rayactorerror",
    "actordiederror",
    "workercrashederror",
    "objectlosterror",
    "connection",
    "slowdown",
)


def error_kind(status: str | None, message: str | None) -> str | None:
    """`transient` or `permanent` for an error row; None for any other status."""
    if status != "error":
        return None
    text = (message or "").lower()
    return TRANSIENT if any(marker in text for marker in TRANSIENT_MARKERS) else PERMANENT
