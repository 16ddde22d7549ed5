"""Steady-state rate of a run from its items' finish times.

The slope of cumulative work against finish time, fitted by least squares over the items
after the first block and before the last one. A plain "work after the first block / time
since it ended" counts the work already in flight when the first block ended (the actor
batches windows across blocks), which inflates short runs; a slope is not moved by that offset.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np


def steady_rate(finished: list[datetime], work: list[float], skip: int) -> float | None:
    """Work units per second (items: work of 1 each; windows: the item's window count)."""
    order = np.argsort([t.timestamp() for t in finished])
    times = np.array([finished[i].timestamp() for i in order])
    done = np.cumsum([work[i] for i in order])
    keep = slice(skip, len(times) - skip)
    times, done = times[keep], done[keep]
    if len(np.unique(times)) < 3:
        return None
    slope = np.polyfit(times - times[0], done, 1)[0]
    return float(slope) if slope > 0 else None
