"""Progress: counts by status, shown as it goes (done/total, ok and error counts, images/s, ETA);
and `Steps` / `track` for the other long commands (done/total, rate, ETA).

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
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

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
        self.bar = _bar(self.stream, show, total, "restore", "items", initial=already_done)
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
        return (
            f"{_done_of(self.done, self.total, 'items')}"
            f" | ok {self.counts['ok']} error {self.counts['error']} skipped "
            f"{self.counts['skipped']} already_done {self.counts['already_done']}"
            f" | {rate:.2f} images/s{_eta(self.done, self.total, rate)}"
        )

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


def _bar(
    stream: TextIO, show: bool, total: int | None, label: str, unit: str, initial: int = 0
) -> Any:
    """A tqdm bar on `stream` when it is shown and a terminal, else None."""
    if not (show and stream.isatty()):
        return None
    from tqdm import tqdm

    width, height = shutil.get_terminal_size((100, 24))  # a size-less pty: 100 x 24
    return tqdm(
        total=total, initial=initial, desc=label, unit=f" {unit}", file=stream,
        ncols=width, nrows=height, mininterval=0.5,
    )  # fmt: skip


def _done_of(done: int, total: int | None, unit: str) -> str:
    """`done/total unit (pct%)`; the total `?` while unknown."""
    text = f"{done}/{'?' if total is None else total} {unit}"
    return text + f" ({100 * done / total:.0f}%)" if total else text


def _eta(done: int, total: int | None, rate: float) -> str:
    if total is None or rate <= 0:
        return ""
    return f" | ETA {_duration(max(0, total - done) / rate)}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Steps:
    """Done / total of one long step, shown like a run's progress: a tqdm bar on a terminal, a
    plain `label: done/total (pct) | rate | ETA` line every `interval_s` when piped; nothing
    when `show` is False. `total` may be unknown (None) or learnt later."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        show: bool = True,
        interval_s: float = 10.0,
        unit: str = "items",
        stream: TextIO | None = None,
    ):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self.done = 0
        self.start = self.last = time.monotonic()
        self.bar = _bar(self.stream, show, total, label, unit)
        self.lines = show and self.bar is None

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None and total != self.total:
            self.total = total
            if self.bar is not None:
                self.bar.total = total
        if self.bar is not None:
            self.bar.update(done - self.done)
        self.done = done
        now = time.monotonic()
        if self.lines and now - self.last >= self.interval_s:
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return (
            f"{self.label}: {_done_of(self.done, self.total, self.unit)}"
            f" | {rate:.2f} {self.unit}/s{_eta(self.done, self.total, rate)}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines:
            print(self.line(), file=self.stream, flush=True)
            self.lines = False


def track(
    items: Iterable[T], label: str, total: int | None = None, show: bool = True, **options: object
) -> Iterator[T]:
    """`items`, one by one, with a `Steps` shown for them."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    steps = Steps(label, total, show, **options)  # type: ignore[arg-type]
    try:
        for done, item in enumerate(items, 1):
            yield item
            steps.update(done)
    finally:
        steps.close()
