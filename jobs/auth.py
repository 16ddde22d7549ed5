"""Ray token authentication for every command that talks to a cluster.

Ray 2.60 reads the token from, in order: `RAY_AUTH_TOKEN`, the file named by
`RAY_AUTH_TOKEN_PATH`, then `~/.ray/auth_token`; clients send it only when
`RAY_AUTH_MODE=token` (the Jobs SDK as `Authorization: Bearer <token>`, gRPC clients as
metadata). `ray start --head` and `ray.init()` turn token mode on by themselves when a token
is available; a client given an explicit address does not. `use_cluster_token()` does the
same for `spl`, so a user who set the token the standard way needs nothing else.

Nothing here ever prints or logs a token: only where it came from.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
HOW_TO_SET = (
    f"set {TOKEN_ENV} to the cluster's token (or {TOKEN_PATH_ENV} to a file holding it); "
    "`ray get-auth-token` on the head node prints it"
)


def default_token_path() -> Path:
    return Path.home() / ".ray" / "auth_token"


def _file_has_token(path: Path) -> bool:
    try:
        return bool(path.read_text().strip())
    except OSError:
        return False


def token_source() -> str | None:
    """Where Ray would read the token from, in Ray's own precedence; None when nowhere.

    Like Ray, an unreadable RAY_AUTH_TOKEN_PATH does not fall back to the default file.
    """
    if os.environ.get(TOKEN_ENV):
        return TOKEN_ENV
    path = os.environ.get(TOKEN_PATH_ENV)
    if path:
        return f"{TOKEN_PATH_ENV} ({path})" if _file_has_token(Path(path)) else None
    if _file_has_token(default_token_path()):
        return str(default_token_path())
    return None


def token_path_problem() -> str | None:
    """One sentence when RAY_AUTH_TOKEN_PATH names a file Ray cannot use (Ray refuses it)."""
    path = os.environ.get(TOKEN_PATH_ENV)
    if os.environ.get(TOKEN_ENV) or not path or _file_has_token(Path(path)):
        return None
    return (
        f"{TOKEN_PATH_ENV} is {path}, which cannot be read or is empty: point it at a file "
        "holding the cluster's token (`ray get-auth-token` on the head node prints it)."
    )


def use_cluster_token() -> str | None:
    """Turn on token mode for this process when a token is available and the mode is unset.

    An explicit `RAY_AUTH_MODE` is respected. Returns the token's source (never the token).
    """
    source = token_source()
    if os.environ.get(MODE_ENV) is None and source is not None:
        os.environ[MODE_ENV] = "token"
    _refresh_ray_auth_state()
    return source


def _refresh_ray_auth_state() -> None:
    """Make an already imported Ray re-read the mode and token (they are cached per process)."""
    if "ray._raylet" not in sys.modules:
        return  # Ray reads the environment when it is first imported
    import ray

    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token authentication
        return

    if ray.is_initialized():
        return  # never swap credentials under a connected driver
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


GRPC_AUTH_MARKERS = ("InvalidAuthToken", "AuthenticationError", "Authentication token is missing")


def auth_error_in(exc: BaseException) -> BaseException | None:
    """The authentication failure behind `exc`, if any: an AuthenticationError in its chain
    (the Jobs SDK), or a GCS connection error whose text says the token was refused
    (`ray.init` wraps that in a ConnectionError with the gRPC error as text)."""
    try:
        from ray.exceptions import AuthenticationError
    except ImportError:  # a Ray without token authentication
        AuthenticationError = ()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, AuthenticationError) or any(
            marker in str(current) for marker in GRPC_AUTH_MARKERS
        ):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def token_mode_on() -> bool:
    return os.environ.get(MODE_ENV, "").lower() == "token"


def auth_failure_sentence(address: str, error: BaseException) -> str:
    """One sentence for a 401/403 from the cluster, saying what to set."""
    text = str(getattr(error, "message", "") or error)
    source = token_source()
    if "Authentication failed" in text or ("invalid" in text.lower() and source):
        return (
            f"The Ray cluster at {address} rejected the authentication token from {source}: "
            f"{HOW_TO_SET}."
        )
    if source and not token_mode_on():
        return (
            f"The Ray cluster at {address} requires an authentication token but "
            f"{MODE_ENV}={os.environ.get(MODE_ENV)}: set {MODE_ENV}=token "
            f"(the token is read from {source})."
        )
    return f"The Ray cluster at {address} requires an authentication token: {HOW_TO_SET}."
