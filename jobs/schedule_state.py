"""The scheduler's memory on disk: what it last did per batch, and the history of runs.

    STATE_DIR/state.json     {"batches": {name: {"last_tick": iso, "current": {...} | null}}}
    STATE_DIR/history.jsonl  one record per run (or skipped tick), appended and fsynced
    STATE_DIR/lock           held (flock) while a scheduler runs on this directory

state.json is replaced atomically (write + rename), so a scheduler killed at any moment
restarts from a consistent state; a history record already written for a job is never
written twice.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO


class StateLocked(RuntimeError):
    """Another scheduler is running on the same state directory."""


class StateStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.state_path = self.root / "state.json"
        self.history_path = self.root / "history.jsonl"
        self._lock: TextIO | None = None

    # ---- locking --------------------------------------------------------------------------
    def lock(self) -> None:
        """Hold the directory for this process; raises StateLocked when another one does."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / "lock", "a+")  # held until unlock()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StateLocked(
                f"another `spl schedule run` (pid {holder}) is using {self.root}; stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # ---- per-batch state ------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {"batches": {}}
        return data if isinstance(data.get("batches"), dict) else {"batches": {}}

    def _write(self, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(f".state.json.{os.getpid()}.tmp")
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.state_path)

    def _batch(self, name: str) -> dict[str, Any]:
        return self._read()["batches"].get(name, {})

    def last_tick(self, name: str) -> datetime | None:
        value = self._batch(name).get("last_tick")
        return datetime.fromisoformat(value) if value else None

    def current(self, name: str) -> dict[str, Any] | None:
        return self._batch(name).get("current")

    def set_last_tick(self, name: str, tick: datetime) -> None:
        data = self._read()
        data["batches"].setdefault(name, {})["last_tick"] = tick.isoformat()
        self._write(data)

    def set_current(
        self, name: str, current: dict[str, Any] | None, last_tick: datetime | None = None
    ) -> None:
        data = self._read()
        entry = data["batches"].setdefault(name, {})
        entry["current"] = current
        if last_tick is not None:
            entry["last_tick"] = last_tick.isoformat()
        self._write(data)

    def batches(self) -> dict[str, dict[str, Any]]:
        return self._read()["batches"]

    # ---- history --------------------------------------------------------------------------
    def history(self, batch: str | None = None) -> list[dict[str, Any]]:
        try:
            lines = self.history_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a crash mid-append
        return [r for r in records if batch is None or r.get("batch") == batch]

    def append_history(self, record: dict[str, Any]) -> bool:
        """Append one record; False (and nothing written) if this job is already recorded."""
        job_id = record.get("job_id")
        if job_id and any(r.get("job_id") == job_id for r in self.history()):
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        torn = self.history_path.exists() and not self.history_path.read_bytes().endswith(b"\n")
        with open(self.history_path, "a") as handle:
            if torn and self.history_path.stat().st_size:
                handle.write("\n")
            handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return True
