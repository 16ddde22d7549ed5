"""Progress: counts by status, and a periodic one-line log (done/total, images/s, ETA)."""

from __future__ import annotations

import logging
import time
from collections import Counter

log = logging.getLogger("pipeline.progress")


class Progress:
    def __init__(self, total: int | None, interval_s: float = 10.0, already_done: int = 0):
        self.total = total
        self.interval_s = interval_s
        self.counts: Counter[str] = Counter()
        self.counts["already_done"] = already_done
        self.errors: Counter[str] = Counter()  # this run's error messages (first line)
        self.start = time.monotonic()
        self.last_log = self.start

    def add(self, status: str, n: int = 1, error: str | None = None) -> None:
        self.counts[status] += n
        if status == "error":
            self.errors[(error or "unknown error").splitlines()[0][:200]] += n

    def top_errors(self, count: int = 3) -> list[dict[str, object]]:
        """The most frequent error messages of this run, with their counts."""
        return [{"error": e, "count": n} for e, n in self.errors.most_common(count)]

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def processed(self) -> int:
        """Items this run worked on (not counting those found already done)."""
        return self.done - self.counts["already_done"]

    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return self.processed / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        total = "?" if self.total is None else str(self.total)
        text = f"{self.done}/{total} items"
        if self.total:
            text += f" ({100 * self.done / self.total:.0f}%)"
        text += (
            f" | ok {self.counts['ok']} error {self.counts['error']} skipped "
            f"{self.counts['skipped']} already_done {self.counts['already_done']}"
            f" | {rate:.2f} images/s"
        )
        if self.total is not None and rate > 0:
            text += f" | ETA {_duration(max(0, self.total - self.done) / rate)}"
        return text

    def maybe_log(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_log >= self.interval_s:
            self.last_log = now
            log.info("restore progress: %s", self.line())


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
