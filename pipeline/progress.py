"""Progress: counts by status, shown as it goes (done/total, ok and error counts, images/s, ETA).

`show`: a tqdm bar on stderr when it is a terminal, else a plain line on stderr every
`interval_s` seconds (no control characters: logs and pipes stay readable); not shown, the
same line goes to the log at INFO.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections import Counter
from typing import TextIO

log = logging.getLogger("pipeline.progress")


class Progress:
    def __init__(
        self,
        total: int | None,
        interval_s: float = 10.0,
        already_done: int = 0,
        show: bool = False,
        stream: TextIO | None = None,
    ):
        self.total = total
        self.interval_s = interval_s
        self.counts: Counter[str] = Counter()
        self.counts["already_done"] = already_done
        self.errors: Counter[str] = Counter()  # this run's error messages (first line)
        self.start = time.monotonic()
        self.last_log = self.start
        self.stream = stream or sys.stderr
        self.bar = None
        if show and self.stream.isatty():
            from tqdm import tqdm

            width, height = shutil.get_terminal_size((100, 24))  # a size-less pty: 100 x 24
            self.bar = tqdm(
                total=total, initial=already_done, desc="restore", unit=" items",
                file=self.stream, ncols=width, nrows=height, mininterval=0.5,
            )  # fmt: skip
        self.lines = show and self.bar is None

    def add(self, status: str, n: int = 1, error: str | None = None) -> None:
        self.counts[status] += n
        if status == "error":
            self.errors[(error or "unknown error").splitlines()[0][:200]] += n
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"ok {self.counts['ok']} error {self.counts['error']}", refresh=False
            )
            self.bar.update(n)

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
            if self.lines:
                print(f"restore: {self.line()}", file=self.stream, flush=True)
            elif self.bar is None:
                log.info("restore progress: %s", self.line())

    def say(self, text: str) -> None:
        """One line on stderr, shown whether or not progress is (above the bar on a terminal)."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar (its last state stays on the terminal)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
