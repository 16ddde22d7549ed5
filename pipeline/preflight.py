"""What a restore job must pass before anything starts (Ray, the lease on OUT): inputs that do
not exist or cannot be reached, loose images with no masks, an OUT that cannot be written.
Each is refused in one sentence (`ConfigError`) that says what to set."""

from __future__ import annotations

import dataclasses
import itertools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from .config import ConfigError, RestoreConfig, redact_url
from .formats.common import IMAGE_EXTS
from .stages.sources import check_inputs, iter_files
from .storage import filesystem, is_local, strip_ext

PEEK = 200  # files looked at to tell loose images from shards
CONNECTION_ERRORS = (  # botocore's and aiohttp's names for "no server answered"
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ServerTimeoutError",
)


def preflight(config: RestoreConfig) -> None:
    """Raise ConfigError for a job that cannot work; cheap (a few storage calls, one try)."""
    probe = dataclasses.replace(config, io_retries=0)  # a dead endpoint fails in seconds
    with reaching("images", config.images):
        check_inputs(probe)
        _masks_for_loose_images(probe)
    _writable_output(config)


@contextmanager
def reaching(name: str, url: str) -> Iterator[None]:
    """Storage errors (credentials, endpoint, access) as one sentence naming what to set."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:
        problem = storage_problem(exc)
        if problem is None:
            raise
        raise ConfigError(f"cannot read `{name}` {redact_url(url)!r}: {problem}") from None


def storage_problem(exc: BaseException) -> str | None:
    """What to set for a storage error (looking through its causes), or None if unknown."""
    seen: BaseException | None = exc
    while seen is not None:
        name = type(seen).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            return (
                "no credentials were found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE), or pass --storage-option key=... --storage-option secret=...;"
                " a public bucket takes --storage-option anon=true"
            )
        if name in CONNECTION_ERRORS or isinstance(seen, ConnectionError):
            return (
                "no storage server answered. Check the endpoint (--storage-option "
                "endpoint_url=http://HOST:PORT, or AWS_ENDPOINT_URL) and that the server is up"
            )
        if isinstance(seen, PermissionError) or "AccessDenied" in str(seen):
            return "access was denied: the credentials in use may not read it"
        seen = seen.__cause__ or seen.__context__
    return None


def _masks_for_loose_images(config: RestoreConfig) -> None:
    """Loose images need `masks` or `mask_template`; shards carry their masks."""
    if config.masks or config.mask_template or config.format in ("webdataset", "parquet"):
        return
    fs, root = filesystem(config.images, config.io_options, 1)
    if fs.isfile(root):
        paths = [root]
    else:
        paths = [p for p, _, _ in itertools.islice(iter_files(fs, root, root, []), PEEK)]
    if not paths:
        raise ConfigError(f"`images` {redact_url(config.images)!r} holds no files")
    exts = {strip_ext(p)[1] for p in paths}
    if config.format == "pairs" or (exts & set(IMAGE_EXTS) and not exts & {"tar", "parquet"}):
        raise ConfigError(
            f"`images` {redact_url(config.images)!r} holds loose images, which need masks: "
            "give --masks PREFIX (a mask per image, same relative name) or --mask-template FILE "
            "(one mask for all; `auto` finds a repeated watermark)"
        )


def _writable_output(config: RestoreConfig) -> None:
    """A local OUT must be creatable and writable, by this user (remote ones are checked by
    the lease, the run's first write)."""
    fs, path = filesystem(config.output, config.io_options, 1)
    if not is_local(fs):
        return
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".spl-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"`output` {path!r} cannot be written ({exc.strerror or exc}): choose another "
            "--output or fix its permissions"
        ) from None
