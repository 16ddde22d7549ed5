"""One run per OUT: a lease object, `OUT/_lease.json`, created atomically and renewed while
the run lives.

- Created exclusively: `O_CREAT | O_EXCL` on a file system, a conditional PUT
  (`If-None-Match: *`) on S3. Of two runs that start together, exactly one gets it.
- Renewed every `ttl / 4` seconds by a daemon thread of the driver. A second run fails at once
  with a sentence naming the holder (run id, host, pid) and when the lease expires.
- A lease not renewed for `ttl` seconds (its driver was killed, its machine lost) has expired,
  and so has one whose holder ran on this host and whose process is gone: the next run takes
  it over (a file system renames it away atomically; S3 deletes it after
  reading it back unchanged) and creates its own.
- Released (deleted) at the end of the run, if it is still this run's.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from .config import ConfigError
from .storage import atomic_write, filesystem, is_local

log = logging.getLogger(__name__)
LEASE_NAME = "_lease.json"


class LeaseHeld(ConfigError):
    """Another live run holds OUT."""


class Lease:
    def __init__(
        self,
        output: str,
        storage_options: dict[str, Any],
        run_id: str,
        ttl_s: float = 120.0,
        retries: int = 5,
    ) -> None:
        self.fs, root = filesystem(output, storage_options, retries)
        self.output, self.path = output, f"{root}/{LEASE_NAME}"
        self.run_id, self.ttl_s, self.retries = run_id, ttl_s, retries
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewing = threading.Lock()  # held while a renewal reads and writes the lease
        self._thread: threading.Thread | None = None

    # ---- the holder's side --------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lease or raise `LeaseHeld`; starts renewing it."""
        if not self._create():
            holder = self._read()
            if holder is not None and not _expired(holder) and not _dead_here(holder):
                raise LeaseHeld(_held_message(self.output, holder))
            log.warning("taking over the expired lease of run %s", (holder or {}).get("run_id"))
            self._take_over(holder)
            if not self._create():
                holder = self._read() or {}
                raise LeaseHeld(_held_message(self.output, holder))
        self._thread = threading.Thread(target=self._renew_loop, name="spl-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and delete the lease. A renewal being written (slow storage, retries)
        ends first and none starts after, so no late renewal brings the lease back."""
        self._stop.set()
        with self._renewing:
            holder = self._read()
            if holder is not None and holder.get("token") == self.token:
                try:
                    self.fs.rm_file(self.path)
                except FileNotFoundError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # ---- internals ----------------------------------------------------------------------------
    def _body(self) -> bytes:
        now = time.time()
        return json.dumps(
            {
                "run_id": self.run_id,
                "host": platform.node(),
                "pid": os.getpid(),
                "token": self.token,
                "renewed_at": datetime.fromtimestamp(now, UTC).isoformat(),
                "expires_at": now + self.ttl_s,
            }
        ).encode()

    def _create(self) -> bool:
        """Create the lease object only if there is none; True when this call created it."""
        body = self._body()
        if is_local(self.fs):
            self.fs.makedirs(os.path.dirname(self.path), exist_ok=True)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
            return True
        try:
            self.fs.pipe_file(self.path, body, mode="create")
        except FileExistsError:
            return False
        except OSError as exc:  # S3 answers 412 Precondition Failed when the key exists
            text = f"{exc} {exc.__cause__}".lower().replace("-", "")
            if "412" in text or "precondition" in text:
                return False
            raise
        return True

    def _read(self) -> dict[str, Any] | None:
        try:
            self.fs.invalidate_cache(self.path)
            return json.loads(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        except ValueError:  # being written this instant: treat as held, not expired
            return {"run_id": "?", "expires_at": time.time() + self.ttl_s}

    def _take_over(self, holder: dict[str, Any] | None) -> None:
        if holder is None:
            return
        if is_local(self.fs):
            try:  # of two runs taking over, only one rename finds the file
                os.rename(self.path, f"{self.path}.expired-{uuid.uuid4().hex[:8]}")
                for name in os.listdir(os.path.dirname(self.path)):
                    if name.startswith(f"{LEASE_NAME}.expired-"):
                        os.remove(os.path.join(os.path.dirname(self.path), name))
            except FileNotFoundError:
                pass
            return
        again = self._read()
        if again is not None and again.get("token") == holder.get("token"):
            try:
                self.fs.rm_file(self.path)
            except FileNotFoundError:
                pass

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            with self._renewing:
                if self._stop.is_set():  # released while this one waited for the lock
                    return
                try:
                    holder = self._read()
                    if holder is not None and holder.get("token") != self.token:
                        log.error(
                            "lost the lease on %s to run %s", self.output, holder.get("run_id")
                        )
                        return
                    atomic_write(self.fs, self.path, self._body(), attempts=max(1, self.retries))
                except Exception:
                    log.exception("could not renew the lease on %s", self.output)


def _expired(holder: dict[str, Any]) -> bool:
    return float(holder.get("expires_at") or 0) < time.time()


def _dead_here(holder: dict[str, Any]) -> bool:
    """A holder on this host whose process is gone (a killed driver): no need to wait for
    its lease to expire."""
    if holder.get("host") != platform.node() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _held_message(output: str, holder: dict[str, Any]) -> str:
    until = datetime.fromtimestamp(float(holder.get("expires_at") or 0), UTC)
    return (
        f"`output` {output} is in use by run {holder.get('run_id')} on host "
        f"{holder.get('host')} (pid {holder.get('pid')}), whose lease runs until "
        f"{until:%Y-%m-%d %H:%M:%S} UTC unless renewed; wait for it to finish, stop it, or use "
        f"another output (a killed run's lease expires on its own)"
    )
