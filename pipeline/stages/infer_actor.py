"""The inference actor: it holds the model and turns windows into predictions.

The device side of the infer stage (pipeline/stages/infer.py is the task side). An actor
receives only what the model reads (the `key`, `windows` and `window_holes` columns of prepared
rows) and returns uint8 predictions, nothing else. Windows of every request queued at an actor
fill its model batches (`model_batch`, independent of the I/O block), and the next batch is
launched before the current one is fetched, so on CUDA its copy and Python work overlap the
current batch's compute.

A batch that fails is retried key by key, so one bad item becomes one error. An item that
crashes the actor process is found through the run's crash journal (pipeline/crashes.py):
Ray restarts the actor and retries its calls, and the restarted actor runs the keys that were
in flight one at a time, giving a key that crashed `LIMIT` times an error instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import warnings
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

import spl_model

from ..crashes import CRASH_ERROR, LIMIT, maybe_crash
from ..model import build_inpainter
from ..schema import unpack_bits

log = logging.getLogger(__name__)
SIZE = spl_model.MODEL_SIZE  # the side of every window
WINDOW_BYTES = SIZE * SIZE * 3
HOLE_BYTES = SIZE * SIZE // 8  # a window's hole map, packed one bit a pixel
PREDICTION_SCHEMA = pa.schema(
    [
        ("predictions", pa.large_binary()),  # N*256*256*3 uint8, one per window of the row
        ("infer_ms", pa.float64()),
        ("error", pa.string()),
        ("node", pa.string()),
    ]
)


@dataclass
class _Request:
    """One `infer` call: its rows' windows, and their predictions as they come."""

    keys: list[str]
    windows: list[np.ndarray]  # per row: n×256×256×3 uint8
    holes: list[np.ndarray]  # per row: n×256×256 bool
    done: asyncio.Future
    loop: asyncio.AbstractEventLoop
    resent: bool = False  # sent again after its first actor died: its keys may be crashers
    predictions: list[np.ndarray] = field(default_factory=list)
    infer_ms: list[float] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    remaining: int = 0

    def __post_init__(self) -> None:
        self.predictions = [np.empty_like(w) for w in self.windows]
        self.infer_ms = [0.0] * len(self.keys)
        self.errors = [None] * len(self.keys)
        self.remaining = sum(len(w) for w in self.windows)
        if self.remaining == 0:
            self.done.set_result(None)

    def settle(self, count: int) -> None:
        self.remaining -= count
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(_resolve, self.done)


def _named_actor(name: str | None) -> Any:
    """The run's crash journal, looked up by name: a handle passed to the constructor would be
    an object-store argument, which Ray cannot promise to an actor that restarts."""
    if not name:
        return None
    import ray

    try:
        return ray.get_actor(name)
    except Exception as exc:  # no journal: items run unguarded, as when it is lost
        log.warning("crash journal %s not found (%s); going on without it", name, exc)
        return None


def _resolve(future: asyncio.Future) -> None:
    if not future.done():  # a call cancelled by its caller needs no answer
        future.set_result(None)


@dataclass(frozen=True)
class _Slot:
    """One window of one row of a request."""

    request: _Request
    row: int
    index: int

    @property
    def key(self) -> str:
        return self.request.keys[self.row]


class InferActor:
    """The model in one Ray actor (async: requests queue while the model runs in a thread)."""

    def __init__(
        self,
        model: str,
        *,
        expected_model_id: str | None = None,
        threads: int | None = None,
        journal: str | None = None,
        model_batch: int | None = None,
        **inpainter_kwargs: Any,
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()  # set again in the model thread (per thread)
        start = time.perf_counter()
        self.inpainter = build_inpainter(model, model_batch=model_batch, **inpainter_kwargs)
        if self.inpainter.model is None:
            raise ValueError(f"{model} is not a model: classical engines run in the CPU stages")
        if expected_model_id and self.inpainter.model_id != expected_model_id:
            raise RuntimeError(
                f"the model loaded by this worker has id {self.inpainter.model_id}, but the run "
                f"was planned with {expected_model_id}: the checkpoint changed during the run"
            )
        self.model_batch = self.inpainter.model_batch
        self.inpainter.warm_up()  # compiles (when asked) before the actor says it is ready
        self.journal = _named_actor(journal)
        self.node, restarted = current_node()
        self.suspects = restarted  # after a crash, in-flight keys run alone (crash journal)
        self.open: Counter[str] = Counter()  # batches in flight per key
        self.queue: deque[_Slot] = deque()
        self.alone: deque[list[_Slot]] = deque()  # batches to run by themselves, first
        self.wake = threading.Condition()
        threading.Thread(target=self._loop, name="infer-loop", daemon=True).start()
        self.load_s = time.perf_counter() - start - (self.inpainter.warmup_s or 0.0)
        log.info(
            "model %s on %s (%s), model batch %d, loaded in %.1fs, %s",
            self.inpainter.model_id[:12],
            self.inpainter.device,
            self.inpainter.precision,
            self.model_batch,
            self.load_s,
            f"compiled in {self.inpainter.warmup_s:.1f}s" if self.inpainter.compiled else "eager",
        )

    async def ready(self) -> dict[str, Any]:
        """Resolves once the model is loaded (and compiled): what this actor runs, where."""
        return {
            "node": self.node or "",
            "device": str(self.inpainter.device),
            "precision": self.inpainter.precision,
            "model_batch": self.model_batch,
            "compiled": self.inpainter.compiled,
            "load_s": round(self.load_s, 3),
            "warmup_s": round(self.inpainter.warmup_s or 0.0, 3),
        }

    async def infer(self, batch: pa.Table, resent: bool = False) -> pa.Table:
        """`key`, `windows`, `window_holes` rows in; PREDICTION_SCHEMA rows out, same order.
        `resent`: the call's first actor died with it, so its keys are checked for crashes."""
        keys = batch["key"].to_pylist()
        windows, holes = [], []
        for data, packed in zip(
            batch["windows"].to_pylist(), batch["window_holes"].to_pylist(), strict=True
        ):
            w = np.frombuffer(data, np.uint8).reshape(-1, SIZE, SIZE, 3)
            windows.append(w)
            holes.append(unpack_bits(packed, len(w), SIZE, SIZE))
        loop = asyncio.get_running_loop()
        request = _Request(keys, windows, holes, loop.create_future(), loop, resent)
        with self.wake:
            for row, w in enumerate(windows):
                self.queue.extend(_Slot(request, row, i) for i in range(len(w)))
            self.wake.notify()
        await request.done
        return pa.table(
            {
                "predictions": [
                    None if err else p.tobytes()
                    for p, err in zip(request.predictions, request.errors, strict=True)
                ],
                "infer_ms": request.infer_ms,
                "error": request.errors,
                "node": [self.node] * len(keys),
            },
            schema=PREDICTION_SCHEMA,
        )

    # ---- the model thread ------------------------------------------------------------------

    def _loop(self) -> None:
        """Launch the next batch before fetching the current one (two in flight)."""
        import torch

        torch.set_num_threads(self.threads)  # per thread under OpenMP: not inherited
        try:
            self._run_loop()
        except BaseException:  # never leave calls waiting on a dead thread: Ray restarts us
            log.exception("the model thread failed; exiting so that Ray restarts this actor")
            os._exit(70)

    def _run_loop(self) -> None:
        in_flight: deque[tuple[list[_Slot], Any, float]] = deque()
        while True:
            batch, alone = self._take(wait=not in_flight)
            if alone:  # a suspect runs with nothing else in flight, so a crash names it
                while in_flight:
                    self._fetch(*in_flight.popleft())
            if batch:
                in_flight.append(self._launch(batch))
            if in_flight and (len(in_flight) == 2 or not batch or alone):
                self._fetch(*in_flight.popleft())

    def _take(self, wait: bool) -> tuple[list[_Slot], bool]:
        """Up to `model_batch` queued windows (of rows not failed yet), and whether they must
        run alone; waits for one if asked."""
        with self.wake:
            while wait and not self.queue and not self.alone:
                self.wake.wait()
            if self.alone:
                return self._live(self.alone.popleft()), True
            batch: list[_Slot] = []
            while self.queue and len(batch) < self.model_batch:
                batch.extend(self._live([self.queue.popleft()]))
        if batch and (self.suspects or any(slot.request.resent for slot in batch)):
            batch = self._isolate(batch)
        return batch, False

    @staticmethod
    def _live(slots: list[_Slot]) -> list[_Slot]:
        """The slots whose row has not failed yet; the others are settled here."""
        live = []
        for slot in slots:
            if slot.request.errors[slot.row] is None:
                live.append(slot)
            else:
                slot.request.settle(1)
        return live

    def _isolate(self, batch: list[_Slot]) -> list[_Slot]:
        """After a restart: keys whose try never ended (their actor died) run alone, and a key
        that crashed it `LIMIT` times gets an error instead. Keys in flight here are not
        suspects (their try is this actor's own)."""
        keys = sorted({s.key for s in batch} - set(self.open))
        crashed = (self._journal("crashes", keys) or {}) if keys else {}
        if not crashed:
            return batch
        by_key: dict[str, list[_Slot]] = {}
        for slot in batch:
            if slot.key in crashed:
                by_key.setdefault(slot.key, []).append(slot)
        for key, slots in by_key.items():
            if crashed[key] >= LIMIT:
                self._fail(slots, CRASH_ERROR.format(n=crashed[key]))
            else:
                with self.wake:
                    self.alone.append(slots)
        return [slot for slot in batch if slot.key not in crashed]

    def _launch(self, batch: list[_Slot]) -> tuple[list[_Slot], Any, float]:
        """(batch, what `Inpainter.launch` returned or the exception it raised, and its start
        time, or its duration where the launch computed it at once, as on the CPU)."""
        start = time.perf_counter()
        try:
            keys = sorted({slot.key for slot in batch})
            self._begin(keys)
            for key in keys:
                maybe_crash(key)
            windows = np.stack([s.request.windows[s.row][s.index] for s in batch])
            holes = np.stack([s.request.holes[s.row][s.index] for s in batch])
            launched = self.inpainter.launch(windows, holes)
            if launched[1] is None:  # computed already (CPU): it can no longer crash the actor
                self._end(keys)
                return batch, launched, time.perf_counter() - start
            return batch, launched, start
        except Exception as exc:
            return batch, exc, start

    def _fetch(self, batch: list[_Slot], launched: Any, started: float) -> None:
        try:
            if isinstance(launched, Exception):
                raise launched
            predictions = self.inpainter.fetch(launched)
            if predictions.shape != (len(batch), SIZE, SIZE, 3):
                raise ValueError(f"the model returned {predictions.shape} for {len(batch)} windows")
        except Exception as exc:
            self._exit_if_device_lost(exc)
            self._retry_alone(batch, exc)
            return
        elapsed = time.perf_counter() - started if launched[1] is not None else started
        per_window = elapsed * 1e3 / len(batch)
        for slot, prediction in zip(batch, predictions, strict=True):
            request = slot.request
            request.predictions[slot.row][slot.index] = prediction
            request.infer_ms[slot.row] += per_window
            request.settle(1)
        self._end(sorted({slot.key for slot in batch}))

    def _exit_if_device_lost(self, exc: Exception) -> None:
        """A CUDA error other than out-of-memory leaves the context unusable (every later call
        fails too, and an asynchronous one may name the wrong batch): exit, so that Ray
        restarts the actor and the crash journal finds the items in flight."""
        text = str(exc)
        on_cuda = self.inpainter.device.type == "cuda"
        if on_cuda and "CUDA error" in text and "out of memory" not in text:
            log.error("device error, restarting this actor: %s", text.splitlines()[0])
            os._exit(70)

    def _retry_alone(self, batch: list[_Slot], exc: Exception) -> None:
        """A failed batch: each key's windows again by themselves; a key alone gets the error."""
        keys = {slot.key for slot in batch}
        self._end(sorted(keys))  # an exception is not a crash
        if len(keys) == 1:
            self._fail(batch, f"inpainting failed: {type(exc).__name__}: {exc}")
            return
        log.warning("model batch of %d keys failed (%s); retrying key by key", len(keys), exc)
        by_key: dict[str, list[_Slot]] = {}
        for slot in batch:
            by_key.setdefault(slot.key, []).append(slot)
        with self.wake:
            self.alone.extend(by_key.values())

    def _fail(self, slots: list[_Slot], message: str) -> None:
        for slot in slots:
            if slot.request.errors[slot.row] is None:
                slot.request.errors[slot.row] = message
            slot.request.settle(1)

    def _begin(self, keys: list[str]) -> None:
        """Tell the journal about keys not in flight here yet (a key whose windows span two
        batches in flight is one try, not two)."""
        new = [key for key in keys if not self.open[key]]
        self.open.update(keys)
        if new:
            self._journal("begin", new)

    def _end(self, keys: list[str]) -> None:
        ended = []
        for key in keys:
            if self.open[key]:
                self.open[key] -= 1
                if not self.open[key]:
                    del self.open[key]
                    ended.append(key)
        if ended:
            self._journal("end", ended, wait=False)

    def _journal(self, method: str, keys: list[str], wait: bool = True) -> Any:
        """Call the crash journal; without one (or once it is lost), items run unguarded."""
        if self.journal is None:
            return None
        try:
            ref = getattr(self.journal, method).remote(keys)
            # a future, not ray.get: Ray warns on the terminal about any ray.get in an async
            # actor's process, though this runs in the model thread, not the event loop
            return ref.future().result(timeout=60) if wait else None
        except Exception as exc:
            log.warning("crash journal unavailable (%s); going on without it", exc)
            self.journal = None
            return None


def current_node() -> tuple[str | None, bool]:
    """This worker's node id, and whether Ray restarted this actor after it died."""
    try:
        import ray

        if not ray.is_initialized():
            return None, False
        context = ray.get_runtime_context()
        with warnings.catch_warnings():  # Ray 2.60 reads its own deprecated `actor_id` here
            warnings.simplefilter("ignore", DeprecationWarning)
            restarted = bool(context.get_actor_id() and context.was_current_actor_reconstructed)
        return context.get_node_id(), restarted
    except Exception:
        return None, False


# ---- the pool, from the driver and from the CPU tasks -------------------------------------
