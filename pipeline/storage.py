"""Storage helpers: fsspec filesystems from URLs, retries, atomic writes, safe output keys.

Atomicity: on object stores one PUT (or a completed multipart upload) is atomic for readers,
so bytes go straight to the final key. On file systems bytes go to a hidden temp name in the
same folder (`.name.tmp-<uuid>`, skipped by Parquet readers) and are renamed into place.
"""

from __future__ import annotations

import logging
import posixpath
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger(__name__)
T = TypeVar("T")

LOCAL_PROTOCOLS = {"file", "local"}
MAX_SEGMENT_BYTES = 255
IO_TIMEOUT_KEY = "_spl_io_timeout_s"  # our own option, never handed to fsspec
MAX_KEY_BYTES = 900  # S3 allows 1024 for the whole object key; leave room for OUT and ext
PERMANENT_ERRORS = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    ValueError,
    TypeError,
)
TRANSIENT_MARKERS = (
    "slowdown",
    "throttl",
    "timeout",
    "timed out",
    "temporar",
    "connection",
    "reset by peer",
    "503",
    "500",
    "502",
    "504",
    "internalerror",
    "serviceunavailable",
    "requesttimeout",
    "too many requests",
    "broken pipe",
)


class UnsafeKeyError(ValueError):
    """An input key that cannot be turned into a path under OUT."""


def protocol_of(url: str) -> str:
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", url)
    return match.group(1).lower() if match else "file"


def filesystem(
    url: str, storage_options: dict[str, Any] | None = None, retries: int = 5, timeout_s: float = 60
) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path) for a URL; storage options apply to remote protocols only.

    S3 gets botocore retries (standard mode) and connect/read timeouts unless the options
    already set them; credentials and endpoints otherwise come the standard AWS way. The
    timeout may also come as the option `IO_TIMEOUT_KEY` (see `RestoreConfig.io_options`).
    """
    protocol = protocol_of(url)
    options: dict[str, Any] = {}
    if protocol not in LOCAL_PROTOCOLS:
        options = dict(storage_options or {})
    timeout_s = float(options.pop(IO_TIMEOUT_KEY, timeout_s))
    if protocol in ("s3", "s3a"):
        config_kwargs = dict(options.get("config_kwargs") or {})
        config_kwargs.setdefault("retries", {"max_attempts": max(1, retries), "mode": "standard"})
        config_kwargs.setdefault("connect_timeout", timeout_s)
        config_kwargs.setdefault("read_timeout", timeout_s)
        options["config_kwargs"] = config_kwargs
    fs, path = fsspec.core.url_to_fs(url, **options)
    return fs, path.rstrip("/") or path


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def full_url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """A URL a user can paste (`s3://b/k`, or a plain local path)."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: throttling, timeouts, dropped connections, 5xx; not 404/403/bad input."""
    if isinstance(exc, PERMANENT_ERRORS):
        return False
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in TRANSIENT_MARKERS) or isinstance(exc, OSError)


def with_retries(fn: Callable[[], T], what: str, attempts: int = 5, base_delay_s: float = 0.2) -> T:
    """Call `fn`, retrying transient errors with jittered exponential backoff."""
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt >= attempts or not is_transient(exc):
                raise
            delay = min(10.0, base_delay_s * 2 ** (attempt - 1)) * (0.5 + random.random())
            log.warning("%s failed (%s); retry %d/%d in %.1fs", what, exc, attempt, attempts, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def read_bytes(fs: fsspec.AbstractFileSystem, path: str, attempts: int = 5) -> bytes:
    return with_retries(lambda: fs.cat_file(path), f"read {path}", attempts)


def atomic_write(fs: fsspec.AbstractFileSystem, path: str, data: bytes, attempts: int = 5) -> None:
    """Write `data` so that no reader ever sees a partial file under `path`."""
    if not is_local(fs):
        with_retries(lambda: fs.pipe_file(path, data), f"write {path}", attempts)
        return
    parent, name = posixpath.split(path)
    fs.makedirs(parent, exist_ok=True)
    tmp = posixpath.join(parent, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        with fs.open(tmp, "wb") as handle:
            handle.write(data)
        fs.mv(tmp, path)  # os.rename on one file system: atomic
    except BaseException:
        if fs.exists(tmp):
            fs.rm_file(tmp)
        raise


def sanitize_key(raw: str) -> str:
    """A relative, forward-slash key that cannot escape its root.

    Backslashes become `/`; empty, `.` segments and leading `/` or drive letters are dropped;
    `..` segments become `__`; control characters become `_`. Raises `UnsafeKeyError` when
    nothing usable is left or a segment is too long for object stores and file systems.
    """
    if not isinstance(raw, str):
        raise UnsafeKeyError(f"key must be a string, got {type(raw).__name__}")
    text = re.sub(r"[\x00-\x1f\x7f]", "_", raw.replace("\\", "/"))
    text = re.sub(r"^[a-zA-Z]:(?=/|$)", "", text)  # C:/... (Windows absolute)
    segments = []
    for segment in text.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            segment = "__"
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            shown = repr(raw[:80]) + ("..." if len(raw) > 80 else "")
            raise UnsafeKeyError(
                f"key {shown} has a path segment longer than {MAX_SEGMENT_BYTES} bytes"
            )
        segments.append(segment)
    key = "/".join(segments)
    if not key:
        raise UnsafeKeyError(f"key {raw!r} is empty once made safe")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise UnsafeKeyError(f"key {raw[:80]!r}... is longer than {MAX_KEY_BYTES} bytes")
    return key


def unique_key(key: str, seen: dict[str, int]) -> str:
    """`key`, or `key~2`, `key~3`... when `seen` (keys handed out so far) already holds it.

    Two input items must never share a key: they would share one output file and the driver
    keeps one row per key. The suffix follows input order, so a re-run gives the same keys."""
    count = seen.get(key, 0)
    seen[key] = count + 1
    if not count:
        return key
    n = count + 1
    while f"{key}~{n}" in seen:
        n += 1
    seen[key] = n
    seen[f"{key}~{n}"] = 1
    return f"{key}~{n}"


def join_under(root: str, relative: str) -> str:
    """`root/relative` for an already sanitized key; refuses anything that lands outside root."""
    root = posixpath.normpath(root).rstrip("/")  # `--output ../out` or `a//b` must still match
    joined = posixpath.normpath(posixpath.join(root, relative))
    if relative.startswith("/") or not joined.startswith(root + "/"):
        raise UnsafeKeyError(f"refusing to write {relative!r} outside {root!r}")
    return joined


def strip_ext(path: str) -> tuple[str, str]:
    """('a/b/photo', 'jpg') for 'a/b/photo.jpg'; the extension is lowercased, without dot."""
    stem, ext = posixpath.splitext(path)
    if not ext or "/" in ext:
        return path, ""
    return stem, ext[1:].lower()
