"""Infer stage, the task side: a pool of inference actors (pipeline/stages/infer_actor.py) that
turn windows into predictions.

The device boundary of the pipeline. A restore task sends the actors only what the model reads
(the `key`, `windows` and `window_holes` columns of prepared rows, pipeline/stages/prepare.py)
and merges the predictions back into its rows: full-resolution pixels never leave the CPU task
that decoded them. A block's windows are split among the actors that are up (an item with more
windows than an actor's share is cut into pieces), each part to the least loaded; a part whose
actor died is sent once more, to another actor when there is one.
`start_pool` / `stop_pool` / `pool_facts` are the driver's side of the pool.
"""

from __future__ import annotations

import itertools
import logging
import random
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from ..crashes import PIECE_MARK, RESTARTS
from .infer_actor import HOLE_BYTES, PREDICTION_SCHEMA, WINDOW_BYTES, InferActor
from .settings import PoolSettings

log = logging.getLogger(__name__)
REQUEST_COLUMNS = ("key", "windows", "window_holes")
CALL_TRIES = 2  # a block whose actor died is sent once more, to another actor if there is one
READY_WAIT_S = 600  # how long a task waits for an inference actor to be up


@dataclass
class InferPool:
    """The run's inference actors (created by the driver), as the CPU tasks see them: handles
    plus one readiness reference each, so a task sends work only to actors that are up."""

    actors: list[Any]
    ready: list[Any]
    _dead: set[int] = field(default_factory=set, repr=False)
    _load: dict[int, int] = field(default_factory=dict, repr=False)  # this task's windows queued

    def submit(self, work: pa.Table) -> _Block:
        """Send the windows of the prepared rows that have them to the actors; returns at once.
        The windows are split among the actors that are up, in parts of about equal windows,
        so that a block of a few items, or of one, still keeps every actor busy."""
        rows = rows_to_infer(work)
        block = _Block(work, rows)
        if not rows:
            return block
        counts = pc.divide(pc.binary_length(work["windows"].take(rows)), WINDOW_BYTES)
        for part in split_windows(counts.to_pylist(), max(1, len(self._up()))):
            sent = _Sent(part)
            self._send(sent, _request(work, rows, part))
            block.parts.append(sent)
        return block

    def collect(self, block: _Block) -> pa.Table:
        """The infer stage's output: the sent rows with their `predictions`, `infer_ms`,
        `node` and `infer_bytes`, or with an error row each where their call failed. A call
        whose actor died is sent once more, to another actor when there is one."""
        if not block.parts:
            return merge_results(block.work, [], None)
        pieces = [piece for sent in block.parts for piece in sent.pieces]
        results = pa.concat_tables([self._result(sent) for sent in block.parts])
        return merge_results(block.work, block.rows, join_pieces(pieces, results))

    def _result(self, sent: _Sent) -> pa.Table:
        """One part's PREDICTION_SCHEMA rows, its error on each row if its call failed."""
        import ray

        result = None
        while sent.ref is not None:
            try:
                result = ray.get(sent.ref)
                break
            except ray.exceptions.RayActorError as exc:
                if not isinstance(exc, ray.exceptions.ActorUnavailableError):
                    self._dead.add(sent.actor)
                sent.error = f"inference worker lost (RayActorError): {_first_line(exc)}"
            except ray.exceptions.RayError as exc:
                sent.error = f"inference call failed: {type(exc).__name__}: {_first_line(exc)}"
                break
            if sent.tries >= CALL_TRIES:
                break
            self._send(sent, sent.request)
        self._unload(sent)
        if result is not None:
            return result
        n = len(sent.pieces)
        return pa.table(
            {"predictions": [None] * n, "infer_ms": [None] * n, "error": [sent.error] * n,
             "node": [None] * n},
            schema=PREDICTION_SCHEMA,
        )  # fmt: skip

    def _send(self, sent: _Sent, request: pa.Table) -> None:
        self._unload(sent)
        sent.request, sent.ref, sent.tries = request, None, sent.tries + 1
        actor = self._pick()
        if actor is None:
            sent.error = (
                "inference worker lost (RayActorError): no inference actor of this run is up "
                f"(none answered within {READY_WAIT_S} s)"
            )
            return
        resent = sent.tries > 1
        sent.actor, sent.ref = actor, self.actors[actor].infer.remote(request, resent)
        sent.windows = sum(piece.stop - piece.start for piece in sent.pieces)
        self._load[actor] = self._load.get(actor, 0) + sent.windows

    def _unload(self, sent: _Sent) -> None:
        if sent.actor is not None and sent.windows:
            self._load[sent.actor] -= sent.windows
            sent.windows = 0

    def _pick(self) -> int | None:
        """The actor up with the fewest of this task's windows queued, at random among equals,
        so that a task's calls in flight go to different actors; waits for one at most
        READY_WAIT_S."""
        ready = self._up(wait_s=READY_WAIT_S)
        if not ready:
            return None
        least = min(self._load.get(i, 0) for i in ready)
        return random.choice([i for i in ready if self._load.get(i, 0) == least])

    def _up(self, wait_s: float = 0.0) -> list[int]:
        """The actors up now (an actor whose constructor failed counts as dead); with
        `wait_s`, waits that long for one when none is."""
        import ray

        live = [i for i in range(len(self.actors)) if i not in self._dead]
        while live:
            refs = [self.ready[i] for i in live]
            up, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            if not up and wait_s > 0:
                up, _ = ray.wait(refs, num_returns=1, timeout=wait_s)
            if not up:
                return []
            for ref in up:
                try:
                    ray.get(ref, timeout=0)
                except Exception:
                    self._dead.add(live[refs.index(ref)])
            ready = [i for i in live if i not in self._dead and self.ready[i] in up]
            if ready or wait_s <= 0:
                return ready
            live = [i for i in live if i not in self._dead]
        return []


@dataclass
class _Sent:
    """One call of a block to the infer stage: some of its windows, to one actor."""

    pieces: list[Piece]  # the windows in this call, by row
    request: pa.Table | None = None
    actor: int | None = None
    ref: Any = None
    windows: int = 0  # windows sent to `actor`, not collected yet
    tries: int = 0
    error: str | None = None


@dataclass
class _Block:
    """One block's calls to the infer stage."""

    work: pa.Table
    rows: list[int]  # the rows sent, in order: `Piece.row` counts in them
    parts: list[_Sent] = field(default_factory=list)


class Piece(NamedTuple):
    """Windows `start` to `stop` of the `row`-th row sent."""

    row: int
    start: int
    stop: int


def split_windows(counts: list[int], parts: int) -> list[list[Piece]]:
    """Rows of `counts` windows in at most `parts` groups of about equal windows, each group in
    row order. A row with more windows than a group's share is cut into near-equal pieces first;
    then the biggest piece goes first, to the group with the fewest windows yet."""
    parts = max(1, min(parts, sum(counts)))
    share = max(1, -(-sum(counts) // parts))
    pieces = []
    for row, count in enumerate(counts):
        cuts = max(1, -(-count // share))
        bounds = [count * k // cuts for k in range(cuts + 1)]
        pieces += [Piece(row, a, b) for a, b in itertools.pairwise(bounds)]
    groups: list[list[Piece]] = [[] for _ in range(min(parts, len(pieces)))]
    sizes = [0] * len(groups)
    for piece in sorted(pieces, key=lambda p: p.start - p.stop):
        least = sizes.index(min(sizes))
        groups[least].append(piece)
        sizes[least] += piece.stop - piece.start
    return [sorted(group) for group in groups]


def _request(work: pa.Table, rows: list[int], part: list[Piece]) -> pa.Table:
    """The REQUEST_COLUMNS of a part: a piece of a row has its own windows, and its own key
    (the item's, then PIECE_MARK and its first window), so that the crash journal tells the
    pieces of one item apart when two actors run them at once."""
    keys, windows, holes = [], [], []
    for row, start, stop in part:
        i, n = rows[row], stop - start
        key, data = work["key"][i].as_py(), work["windows"][i].as_buffer()
        whole = start == 0 and n * WINDOW_BYTES == data.size
        keys.append(key if whole else f"{key}{PIECE_MARK}{start}")
        windows.append(data.slice(start * WINDOW_BYTES, n * WINDOW_BYTES).to_pybytes())
        packed = work["window_holes"][i].as_buffer()
        holes.append(packed.slice(start * HOLE_BYTES, n * HOLE_BYTES).to_pybytes())
    return pa.table(
        {"key": keys, "windows": windows, "window_holes": holes},
        schema=work.select(list(REQUEST_COLUMNS)).schema,
    )


def join_pieces(pieces: list[Piece], results: pa.Table) -> pa.Table:
    """PREDICTION_SCHEMA rows of `pieces` (same order) as one row per row sent, in row order:
    its pieces' predictions in window order, their model time summed, the first error."""
    columns = {name: results[name].to_pylist() for name in PREDICTION_SCHEMA.names}
    joined: dict[int, dict[str, Any]] = {}
    for at in sorted(range(len(pieces)), key=lambda k: pieces[k]):
        row = joined.setdefault(
            pieces[at].row, {"predictions": [], "infer_ms": 0.0, "error": None, "node": None}
        )
        row["error"] = row["error"] or columns["error"][at]
        row["node"] = row["node"] or columns["node"][at]
        row["infer_ms"] += columns["infer_ms"][at] or 0.0
        row["predictions"].append(columns["predictions"][at] or b"")
    out = [joined[row] for row in sorted(joined)]
    for row in out:
        row["predictions"] = None if row["error"] else b"".join(row["predictions"])
    return pa.Table.from_pylist(out, schema=PREDICTION_SCHEMA)


def rows_to_infer(work: pa.Table) -> list[int]:
    """The prepared rows that go to the model: no status yet, and windows to infer."""
    statuses = work["status"].to_pylist()
    has_windows = work["windows"].is_valid().to_pylist()
    return [
        i for i, (status, has) in enumerate(zip(statuses, has_windows, strict=True))
        if not status and has
    ]  # fmt: skip


def merge_results(
    work: pa.Table, rows: list[int], result: pa.Table | None, error: str | None = None
) -> pa.Table:
    """Work rows with the infer results of `rows` (PREDICTION_SCHEMA, same order) set on them, or
    `error` on each of them; the windows sent are dropped, the paste maps stay."""
    n = work.num_rows
    status = work["status"].to_pylist()
    errors = work["error"].to_pylist()
    predictions = work["predictions"].to_pylist()  # rows not sent keep theirs
    infer_ms = work["infer_ms"].to_pylist()
    node = work["node"].to_pylist()
    sizes = work["infer_bytes"].to_pylist()
    sent = pc.add(
        pc.binary_length(work["windows"]).fill_null(0),
        pc.binary_length(work["window_holes"]).fill_null(0),
    ).to_pylist()
    if result is None:
        for i in rows:
            status[i], errors[i] = "error", error
    else:
        columns = {name: result[name].to_pylist() for name in PREDICTION_SCHEMA.names}
        for j, i in enumerate(rows):
            node[i] = columns["node"][j]
            if columns["error"][j]:
                status[i], errors[i] = "error", columns["error"][j]
                continue
            predictions[i] = columns["predictions"][j]
            # an item sent twice (coarse to fine) counts both calls
            infer_ms[i] = (infer_ms[i] or 0.0) + columns["infer_ms"][j]
            sizes[i] = (sizes[i] or 0) + sent[i] + len(predictions[i])
    updates = {
        "status": pa.array(status, pa.string()),
        "error": pa.array(errors, pa.string()),
        "predictions": pa.array(predictions, pa.large_binary()),
        "infer_ms": pa.array(infer_ms, pa.float64()),
        "node": pa.array(node, pa.string()),
        "infer_bytes": pa.array(sizes, pa.int64()),
        "windows": pa.nulls(n, pa.large_binary()),
        "window_holes": pa.nulls(n, pa.large_binary()),
    }
    for name, column in updates.items():
        work = work.set_column(work.schema.get_field_index(name), name, column)
    return work


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def start_pool(settings: PoolSettings, *, ready_timeout_s: float) -> InferPool:
    """Create `size[1]` actors and wait (at most `ready_timeout_s`) until `size[0]` are up.

    All of them are requested at once, so an autoscaler brings the nodes for the whole pool;
    tasks use each one as soon as it is up. An actor that cannot load its model fails the run
    here with its own message."""
    import ray

    remote = ray.remote(InferActor).options(
        num_cpus=settings.num_cpus,
        num_gpus=settings.num_gpus,
        max_restarts=RESTARTS,
        max_task_retries=RESTARTS,
        max_concurrency=256,
    )
    size = settings.size
    actors = [remote.remote(**settings.actor_kwargs()) for _ in range(size[1])]
    ready = [actor.ready.remote() for actor in actors]
    pool = InferPool(actors, ready)
    up, _ = ray.wait(ready, num_returns=size[0], timeout=ready_timeout_s)
    try:
        for ref in up:
            ray.get(ref)  # raises the constructor's error
    except Exception:
        stop_pool(pool)  # the others would hold their GPUs in a long-lived Ray
        raise
    if len(up) < size[0]:
        stop_pool(pool)
        raise TimeoutError(
            f"only {len(up)} of {size[0]} inference actor(s) started within "
            f"{ready_timeout_s:g} s: the cluster lacks the resources they ask for"
        )
    return pool


def pool_facts(pool: InferPool) -> list[dict[str, Any]]:
    """What each actor that came up reported (`InferActor.ready`): device, batch, compile and
    warm-up seconds. Actors still starting, or that failed to, are left out; this never
    raises (the run summary must not fail a run)."""
    import ray

    facts = []
    try:
        up, _ = ray.wait(pool.ready, num_returns=len(pool.ready), timeout=0)
    except Exception:
        log.warning("could not collect the inference actors' facts", exc_info=True)
        return facts
    for ref in up:
        try:
            facts.append(ray.get(ref))
        except Exception:  # an actor that failed to start reports nothing
            continue
    return facts


def stop_pool(pool: InferPool) -> None:
    import ray

    for actor in pool.actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:
            pass
