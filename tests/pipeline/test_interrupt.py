"""Ctrl-C keeps finished work: the first signal drains, the second stops, nothing is recorded
after the driver stops listening."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from pipeline.interrupt import Gate, consume_until_stopped


def signal_later(*delays: float, signum: int = signal.SIGINT) -> None:
    for delay in delays:
        threading.Timer(delay, os.kill, (os.getpid(), signum)).start()


def recorder(items: int | None, recorded: list[int], pause_s: float = 0.02):
    """A consumer recording `items` results (None: without end) one at a time under the gate."""

    def consume(gate: Gate) -> None:
        i = 0
        while items is None or i < items:
            time.sleep(pause_s)  # waiting for the next result
            with gate.recording() as still_open:
                if not still_open:
                    return
                recorded.append(i)
            i += 1

    return consume


def test_a_first_ctrl_c_lets_the_work_in_flight_be_recorded():
    recorded: list[int] = []
    told: list[int] = []
    signal_later(0.2)
    stopped = consume_until_stopped(recorder(40, recorded), drain_s=60, on_first=told.append)
    assert stopped == (signal.SIGINT, True) and told == [signal.SIGINT]
    assert recorded == list(range(40))  # nothing lost: the results kept coming in


def test_the_drain_has_a_limit_and_nothing_is_recorded_after_it():
    recorded: list[int] = []
    signal_later(0.2, signum=signal.SIGTERM)
    t0 = time.monotonic()
    assert consume_until_stopped(recorder(None, recorded), drain_s=0.5) == (signal.SIGTERM, False)
    assert 0.6 <= time.monotonic() - t0 < 3
    count = len(recorded)
    time.sleep(0.2)
    assert len(recorded) == count  # the gate is closed


def test_a_second_ctrl_c_stops_at_once():
    recorded: list[int] = []
    signal_later(0.2, 0.4)
    t0 = time.monotonic()
    assert consume_until_stopped(recorder(None, recorded), drain_s=60) == (signal.SIGINT, False)
    assert time.monotonic() - t0 < 2


def test_without_a_signal_the_consumers_failure_is_raised_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGINT)

    def failing(gate: Gate) -> None:
        raise RuntimeError("the dataset failed")

    with pytest.raises(RuntimeError, match="the dataset failed"):
        consume_until_stopped(failing, drain_s=1)
    assert consume_until_stopped(recorder(3, []), drain_s=1) is None
    assert signal.getsignal(signal.SIGINT) is before
