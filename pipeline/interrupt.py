"""Stopping a run without losing finished work.

The first Ctrl-C (SIGINT) or SIGTERM does not raise. It turns on the run's `StopSwitch`, a
small named actor that the restore tasks look at before each block: they read no new items,
finish the blocks they have at the inference actors, and end. The driver goes on recording
the results that arrive, for at most `drain_s` seconds, so every item that was in flight gets
its stats row; the run then leaves as interrupted, and the next run skips what was recorded.
A second signal stops at once, still keeping every row recorded so far.

The results are recorded on a consumer thread, one batch at a time under a `Gate`; the main
thread only waits, counts signals and closes the gate, so a signal never lands in the middle
of writing a stats file.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NamedTuple

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(NamedTuple):
    signum: int  # the first signal
    drained: bool  # every result in flight was recorded (False: a second signal, or the limit)


class Interrupted(Exception):
    """The run stopped on a signal after recording what had finished (`summary`)."""

    def __init__(self, signum: int, summary: dict[str, Any]):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.summary = summary

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM


class Gate:
    """Lets the consumer record one batch at a time until the driver closes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def recording(self) -> Iterator[bool]:
        """Hold the gate while recording one batch; yields False once it is closed."""
        with self._lock:
            yield not self._closed

    def close(self, wait_s: float = 60.0) -> None:
        """Wait for the batch being recorded (at most `wait_s`), then let no other start."""
        acquired = self._lock.acquire(timeout=wait_s)
        self._closed = True
        if acquired:
            self._lock.release()


class StopSwitch:
    """The run's stop request, as a named actor that the restore tasks ask before each block."""

    def __init__(self) -> None:
        self.on = False

    def turn_on(self) -> None:
        self.on = True

    def is_on(self) -> bool:
        return self.on


def start_switch(run_id: str) -> tuple[Any, str]:
    """The run's switch actor (no CPU reserved; it dies with the driver): its handle (keep it
    while the run lasts) and its name, by which the tasks find it."""
    import ray

    name = f"spl-stop-{run_id}"
    return ray.remote(StopSwitch).options(num_cpus=0, name=name).remote(), name


def stop_check(name: str | None) -> Callable[[], bool]:
    """For a task: a check of the run's switch (always False without one, or once it is gone:
    a lost switch must not stop work)."""
    if name is None:
        return lambda: False
    import ray

    try:
        switch = ray.get_actor(name)
    except Exception:
        return lambda: False

    def check() -> bool:
        try:
            return bool(ray.get(switch.is_on.remote(), timeout=30))
        except Exception:
            return False

    return check


class StopSignals:
    """While entered (main thread only), SIGINT and SIGTERM are counted instead of raising."""

    def __init__(self) -> None:
        self.count = 0
        self.signum: int | None = None
        self.first_at = 0.0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            self.signum, self.first_at = signum, time.monotonic()

    def stop_now(self, drain_s: float) -> bool:
        """A second signal, or the first one's grace period is over."""
        if self.count >= 2:
            return True
        return self.count == 1 and time.monotonic() - self.first_at >= drain_s


def consume_until_stopped(
    consume: Callable[[Gate], None],
    drain_s: float,
    on_first: Callable[[int], None] | None = None,
) -> Stopped | None:
    """Run `consume(gate)` on a thread until it ends or a signal stops it.

    `on_first(signum)` runs on the main thread once the first signal came (turn the switch
    on, say so). Returns None when no signal came (what `consume` raised, if anything, is
    raised here), else how it stopped; the gate is then closed, so nothing more is recorded
    after this returns.
    """
    gate = Gate()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            consume(gate)
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)

    thread = threading.Thread(target=work, name="spl-results", daemon=True)
    with StopSignals() as signals:
        thread.start()
        announced = False
        while thread.is_alive() and not signals.stop_now(drain_s):
            thread.join(0.2)
            if signals.signum is not None and not announced:
                announced = True
                if on_first is not None:
                    on_first(signals.signum)
        drained = not thread.is_alive()
        if not drained:
            gate.close()
            if signals.count < 2:  # its iterator ends at the next batch: let it, briefly
                thread.join(5.0)
    if signals.signum is None:
        if failure:
            raise failure[0]
        return None
    return Stopped(signals.signum, drained)  # what the thread raised came with the stop
