"""A run's summary, OUT/runs/<run_id>.json: what the run set out to do, written as it starts
(status `running`), and what it did, written again as it ends. `RunSummary.as_dict()` is what
`run_restore` returns and what the file holds (docs/PIPELINE.md lists the keys)."""

from __future__ import annotations

import dataclasses
import json
import platform
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from .config import RestoreConfig
from .progress import Progress
from .stats import StatsSink
from .storage import atomic_write, filesystem, full_url

VERSIONED = (
    "spl-restore",
    "ray",
    "torch",
    "numpy",
    "pillow",
    "pyarrow",
    "fsspec",
    "s3fs",
    "opencv-python-headless",
)


def versions() -> dict[str, str]:
    """Python's and the key packages' versions, as installed here."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class RunSummary:
    """The summary's fields. Those without a default are known when the run starts and always
    written; the others are written once set (the end's counts and rates, and what only some
    runs have: an error, the signal that stopped it, shards, the inference actors)."""

    run_id: str
    started_at: str
    layout: str
    output_layout: str
    engine: str
    model_id: str
    settings_id: str
    items_listed_up_front: int | None
    orphan_masks: int
    config: dict[str, Any]
    resources: dict[str, Any]
    plan: dict[str, int]
    versions: dict[str, str] = field(default_factory=versions)
    host: str = field(default_factory=platform.node)
    status: str = "running"  # running | finished | interrupted | failed
    # as the run ends
    counts: dict[str, int] | None = None
    top_errors: list[Any] | None = None
    finished_at: str | None = None
    wall_s: float | None = None
    images_per_s: float | None = None
    items_per_s: float | None = None
    stats_files: int | None = None
    stats_rows: int | None = None
    bytes: dict[str, Any] | None = None  # input and output bytes of the items restored
    error: str | None = None
    interrupted_by: str | None = None  # SIGINT | SIGTERM
    drained: bool | None = None  # whether every item in flight was recorded before the stop
    shards: dict[str, Any] | None = None  # shard outputs: published, already published
    inference_actors: dict[str, Any] | None = None
    summary_uri: str | None = None  # where it was written

    def as_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None or f.default is dataclasses.MISSING:
                out[f.name] = value
        return out

    def end(self, progress: Progress, sink: StatsSink, wall_s: float, **fields: Any) -> None:
        """Fill in what the run did (`fields`: status, and error or the stopping signal)."""
        for name, value in fields.items():
            setattr(self, name, value)
        counts = Counter({"ok": 0, "error": 0, "skipped": 0, "already_done": 0})
        counts.update(progress.counts)
        self.counts = {"listed": sum(counts.values()), **dict(counts)}
        self.top_errors = progress.top_errors()
        self.finished_at = datetime.now(UTC).isoformat()
        self.wall_s = round(wall_s, 3)
        self.images_per_s = round(counts["ok"] / wall_s, 4) if wall_s > 0 else 0.0
        self.items_per_s = round(progress.processed / wall_s, 4) if wall_s > 0 else 0.0
        self.stats_files = sink.files
        self.stats_rows = sink.rows_written
        self.bytes = {
            "input": sink.bytes_in,
            "output": sink.bytes_out,
            "ratio": round(sink.bytes_out / sink.bytes_in, 4) if sink.bytes_in else None,
        }

    def write(self, config: RestoreConfig) -> None:
        """Write (or rewrite) OUT/runs/<run_id>.json atomically; sets `summary_uri`."""
        fs, root = filesystem(config.output, config.io_options, config.io_retries)
        path = f"{root}/runs/{self.run_id}.json"
        data = json.dumps(self.as_dict(), indent=2, sort_keys=True, default=str).encode()
        atomic_write(fs, path, data, attempts=max(1, config.io_retries))
        self.summary_uri = full_url(fs, path)
