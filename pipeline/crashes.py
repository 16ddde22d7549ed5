"""Items that crash their inference worker: found, retried a bounded number of times, then given
an error row, so the job goes on.

A segfault, a process killed for memory or a lost node takes down the actor with its whole
batch. Ray restarts the actor and retries the batch, a bounded number of times (`RESTARTS`).
The `CrashJournal`, one small actor per run owned by the driver, remembers which keys were begun
and never ended. A batch that comes back with such keys is run one item at a time, so the next
crash names its item; an item that has crashed `LIMIT` times gets an error row instead of
another try, and its neighbours are restored.

The pieces of one item that run on different actors at once (pipeline/stages/infer.py) have
keys of their own. `SPL_FAULT_CRASH_KEYS` (comma-separated keys) makes the actor exit abruptly
on those items, any piece of them: fault injection for tests, as a segfault would.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

LIMIT = 2  # crashes of one item before it gets an error row
RESTARTS = 4  # actor restarts and task retries of the inference stage (bounded: never a hang)
PIECE_MARK = "\x1f"  # in a key sent to the actors: the item's key, this, its piece's first window
CRASH_ERROR = (
    "this item crashed its inference worker {n} times (a segfault, or killed for memory); "
    "it is not tried again (--retry-failed tries it again)"
)


class CrashJournal:
    """Per key: whether a try of it is open (begun, not ended), and how many tries never ended.

    A try that is begun again while the last one is still open never ended: its actor died.
    Ending a try closes it but keeps the count, so an item whose windows span several batches
    cannot wipe out its crashes by finishing one of them."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.lost: Counter[str] = Counter()

    def begin(self, keys: list[str]) -> None:
        for key in keys:
            if key in self.open:
                self.lost[key] += 1
            self.open.add(key)

    def end(self, keys: list[str]) -> None:
        self.open.difference_update(keys)

    def crashes(self, keys: list[str]) -> dict[str, int]:
        """Tries that never ended, counting an open one (its actor is gone, or asks now)."""
        counts = {key: self.lost[key] + (key in self.open) for key in keys}
        return {key: n for key, n in counts.items() if n}


def start_journal(run_id: str) -> tuple[Any, str]:
    """The run's journal actor, on the driver's node (a worker node may be lost mid-run), with
    no CPU reserved; it dies with the driver. Returns its handle (keep it while the run lasts)
    and its name, by which the inference actors find it."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    name = f"spl-crashes-{run_id}"
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    journal = ray.remote(CrashJournal).options(
        num_cpus=0, name=name, scheduling_strategy=here, max_restarts=-1
    )
    return journal.remote(), name


def maybe_crash(key: str) -> None:
    """Fault injection: exit at once, as a segfault would, on keys named in the environment."""
    names = os.environ.get("SPL_FAULT_CRASH_KEYS")
    if names and key.split(PIECE_MARK)[0] in names.split(","):
        os._exit(139)
