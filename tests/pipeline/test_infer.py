"""The stages around the device boundary, without Ray: prepare -> infer (the actor) -> finish
restore exactly what `spl_model.Inpainter` restores, the actor fills model batches from many
items and calls, one failing item is isolated, and only windows cross to the actor."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pyarrow as pa
import pytest

import spl_model
from pipeline.crashes import LIMIT, CrashJournal
from pipeline.schema import WORK_SCHEMA, pack_bits, table, unpack_bits
from pipeline.stages.finish import finish_batch
from pipeline.stages.infer import (
    REQUEST_COLUMNS,
    Piece,
    join_pieces,
    merge_results,
    rows_to_infer,
    split_windows,
    start_pool,
    stop_pool,
)
from pipeline.stages.infer_actor import PREDICTION_SCHEMA, WINDOW_BYTES, InferActor
from pipeline.stages.prepare import needs_refine, prepare_batch, refine_batch
from pipeline.stages.restored import Restored
from pipeline.stages.settings import FinishSettings, PoolSettings, PrepareSettings


def photo(seed: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) % 255], -1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def items() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two far-apart holes, a narrow strip, a hole wider than the model (downscaled window),
    an image smaller than the model (upscaled), a thick hole seen coarse then refined beside
    a thin line tiled at native scale."""
    shapes_and_holes = [
        ((300, 400), [(40, 50, 80, 100), (220, 300, 260, 380)]),
        ((90, 500), [(30, 200, 60, 260)]),
        ((600, 450), [(100, 80, 500, 400)]),
        ((128, 96), [(50, 30, 80, 70)]),
        ((1200, 1300), [(500, 400, 780, 700), (100, 100, 106, 1200)]),
    ]
    out = []
    for seed, ((h, w), boxes) in enumerate(shapes_and_holes):
        hole = np.zeros((h, w), bool)
        for y0, x0, y1, x1 in boxes:
            hole[y0:y1, x0:x1] = True
        out.append((photo(seed, h, w), hole))
    return out


def decoded(pairs: list[tuple[np.ndarray, np.ndarray]]) -> pa.Table:
    """Rows as the decode stage leaves them."""
    return table(
        [
            {
                "key": f"k{i}",
                "pixels": image.tobytes(),
                "hole": pack_bits(hole),
                "height": image.shape[0],
                "width": image.shape[1],
            }
            for i, (image, hole) in enumerate(pairs)
        ],
        WORK_SCHEMA,
    )


def infer(actor: InferActor, prepared: pa.Table, dilate: int = 0) -> pa.Table:
    """The infer stage as `plan.restore_units` runs it: items with a coarse pass go twice."""
    while True:
        rows = rows_to_infer(prepared)
        request = prepared.select(list(REQUEST_COLUMNS)).take(rows)
        inferred = merge_results(prepared, rows, asyncio.run(actor.infer(request)))
        if not needs_refine(inferred):
            return inferred
        prepared = refine_batch(inferred, PrepareSettings("spl", dilate=dilate, prefill="telea"))


@pytest.mark.parametrize(("strategy", "dilate"), [("crop", 0), ("crop", 3), ("resize", 0)])
def test_the_stages_restore_exactly_what_the_inpainter_restores(model_file, strategy, dilate):
    pairs = items()
    settings = PrepareSettings("spl", strategy, dilate, prefill="telea")
    prepared = prepare_batch(decoded(pairs), settings)
    actor = InferActor(model_file, device="cpu", model_batch=64)
    finished = finish_batch(infer(actor, prepared, dilate), FinishSettings("spl"))
    inpainter = spl_model.Inpainter(
        model_file, device="cpu", strategy=strategy, dilate=dilate, model_batch=64
    )
    want = inpainter.inpaint_with_info([p[0] for p in pairs], [p[1] for p in pairs])
    for row, (image, _), (expected, info) in zip(finished.to_pylist(), pairs, want, strict=True):
        h, w = image.shape[:2]
        item = Restored.of(row)  # the finish stage passes on the restored box only
        restored = item.region()
        np.testing.assert_array_equal(restored, expected)
        np.testing.assert_array_equal(item.changed(), np.any(restored != image, axis=2))
        x0, y0, x1, y1 = item.box  # the box holds every hole pixel, not the whole image
        assert (y1 - y0) * (x1 - x0) < h * w or min(h, w) < 256
        assert row["crops"] == info["crops"] and row["crop_scale"] == info["crop_scale"]
        # only the windows and their holes went to the actor (all passes), predictions came back
        n = row["crops"]
        assert row["infer_bytes"] == n * (2 * WINDOW_BYTES + 256 * 256 // 8)
    assert finished.column("predictions").null_count == finished.num_rows  # payloads dropped
    if strategy == "crop":  # the last item's thick hole went coarse, then fine, and was pasted
        assert prepared["refine"].to_pylist() == [False] * 4 + [True]
        assert finished.to_pylist()[-1]["crops"] >= 2 + 1100 // 256
    sent = prepared.select(list(REQUEST_COLUMNS)).nbytes  # the first pass
    assert sent <= 1.2 * sum(row["crops"] for row in finished.to_pylist()) * WINDOW_BYTES


def windows_request(counts: list[int], seed: int = 0, marker: int | None = None) -> pa.Table:
    """An infer request of rows with `counts` random windows each (`marker`: the row whose
    windows are all sevens)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate(counts):
        w = rng.integers(0, 255, (n, 256, 256, 3), np.uint8)
        if i == marker:
            w[:] = 7
        holes = np.zeros((n, 256, 256), bool)
        holes[:, 64:128, 96:160] = True
        packed = pack_bits(holes)
        rows.append({"key": f"r{seed}-{i}", "windows": w.tobytes(), "window_holes": packed})
    return table(rows, WORK_SCHEMA).select(list(REQUEST_COLUMNS))


def assert_predictions(
    request: pa.Table, result: pa.Table, inpainter: spl_model.Inpainter, levels: int
) -> None:
    """Each row's predictions are what `inpainter` predicts for its windows, within `levels`."""
    for data, packed, got in zip(
        request["windows"].to_pylist(),
        request["window_holes"].to_pylist(),
        result["predictions"].to_pylist(),
        strict=True,
    ):
        w = np.frombuffer(data, np.uint8).reshape(-1, 256, 256, 3)
        want = inpainter.infer(w, unpack_bits(packed, len(w), 256, 256))
        got = np.frombuffer(got, np.uint8).reshape(want.shape)
        assert np.abs(got.astype(int) - want).max() <= levels


def test_model_batches_fill_from_many_rows_and_calls(model_file):
    actor = InferActor(model_file, device="cpu", model_batch=5)
    sizes: list[int] = []
    gate = threading.Event()
    launch = actor.inpainter.launch

    def recording(windows, holes):
        sizes.append(len(windows))
        if len(sizes) == 1:
            gate.wait(30)  # the model is busy while more calls arrive
        return launch(windows, holes)

    actor.inpainter.launch = recording

    async def calls():
        first = asyncio.ensure_future(actor.infer(windows_request([1], seed=1)))
        while not sizes:
            await asyncio.sleep(0.01)
        more = [
            asyncio.ensure_future(actor.infer(windows_request([2, 2], seed=2))),
            asyncio.ensure_future(actor.infer(windows_request([1, 1, 1], seed=3))),
        ]
        while len(actor.queue) < 7:
            await asyncio.sleep(0.01)
        gate.set()
        return await asyncio.gather(first, *more)

    results = asyncio.run(calls())
    assert sizes == [1, 5, 2]  # 7 queued windows of 5 rows of 2 calls: batches of 5, then 2
    assert [r.num_rows for r in results] == [1, 2, 3]
    alone = spl_model.Inpainter(model_file, device="cpu")
    for request, result in zip(
        [windows_request([1], 1), windows_request([2, 2], 2), windows_request([1, 1, 1], 3)],
        results,
        strict=True,
    ):
        assert_predictions(request, result, alone, levels=1)  # batch-mates do not matter


def test_a_compiled_actor_warms_up_before_it_is_ready_and_serves_partial_batches(model_file):
    actor = InferActor(model_file, device="cpu", model_batch=3, compile=True)
    facts = asyncio.run(actor.ready())
    assert facts["compiled"] and facts["warmup_s"] > 0 and facts["model_batch"] == 3
    request = windows_request([2, 3], seed=4)  # 5 windows: a batch of 3, then 2 padded to 3
    result = asyncio.run(actor.infer(request))
    eager = spl_model.Inpainter(model_file, device="cpu", compile=False)
    assert_predictions(request, result, eager, levels=2)


def test_a_failing_item_gets_its_own_error_and_its_batch_mates_are_restored(model_file):
    actor = InferActor(model_file, device="cpu", model_batch=8)
    launch = actor.inpainter.launch

    def fragile(windows, holes):
        if any((w == 7).all() for w in windows):
            raise RuntimeError("this window breaks the model")
        return launch(windows, holes)

    actor.inpainter.launch = fragile
    result = asyncio.run(actor.infer(windows_request([1, 2, 1], seed=4, marker=1))).to_pylist()
    assert [r["error"] is None for r in result] == [True, False, True]
    assert "inpainting failed: RuntimeError: this window breaks" in result[1]["error"]
    assert result[1]["predictions"] is None
    assert all(len(r["predictions"]) == n * WINDOW_BYTES for r, n in zip(result, [1, 0, 1]) if n)


def test_the_crash_journal_counts_every_try_that_never_ended():
    """An item whose windows span two batches: finishing one of them must not wipe out the
    crash of the other, so the item reaches the limit and gets its error row."""
    journal = CrashJournal()
    journal.begin(["k", "innocent"])  # the actor dies with both in flight
    assert journal.crashes(["k", "innocent", "other"]) == {"k": 1, "innocent": 1}
    journal.begin(["k"])  # restarted actor: k's first window alone, fine
    journal.end(["k"])
    journal.begin(["innocent"])
    journal.end(["innocent"])
    journal.begin(["k"])  # k's second window kills the actor again
    assert journal.crashes(["k", "innocent"]) == {"k": 2, "innocent": 1}
    assert journal.crashes(["k"])["k"] >= LIMIT


def test_a_block_is_split_among_the_actors_and_merged_back_in_order(ray_local, model_file):
    """Three items, and one item alone (its two windows run on two actors at once): the
    restored rows equal one actor's."""
    settings = PoolSettings(
        (2, 2), num_cpus=0.25, num_gpus=0, model=model_file, device="cpu", threads=1
    )
    pool = start_pool(settings, ready_timeout_s=120)
    try:
        for block_items in (items()[:3], items()[:1]):
            prepared = prepare_batch(decoded(block_items), PrepareSettings("spl", prefill="telea"))
            block = pool.submit(prepared)
            assert {sent.actor for sent in block.parts} == {0, 1}  # both actors work on it
            inferred = pool.collect(block)
            assert set(pool._load.values()) == {0}  # nothing of this task is queued any more
            rows = list(range(len(block_items)))
            alone = merge_results(prepared, rows, asyncio.run(
                InferActor(model_file, device="cpu").infer(prepared.select(list(REQUEST_COLUMNS)))
            ))  # fmt: skip
            for column in ("status", "predictions", "crops", "infer_bytes"):
                assert inferred[column].to_pylist() == alone[column].to_pylist(), column
    finally:
        stop_pool(pool)


def test_windows_are_split_into_parts_of_about_equal_windows_cutting_big_items():
    def windows(parts):
        return [[(p.row, p.start, p.stop) for p in part] for part in parts]

    assert windows(split_windows([2, 1, 1], 2)) == [[(0, 0, 2)], [(1, 0, 1), (2, 0, 1)]]
    assert windows(split_windows([2, 2, 2], 4)) == [[(0, 0, 2)], [(1, 0, 2)], [(2, 0, 2)]]
    assert windows(split_windows([1, 9], 1)) == [[(0, 0, 1), (1, 0, 9)]]  # one actor: no cuts
    assert windows(split_windows([7], 2)) == [[(0, 3, 7)], [(0, 0, 3)]]  # one item, two actors
    assert windows(split_windows([0, 3], 2)) == [[(1, 1, 3)], [(0, 0, 0), (1, 0, 1)]]


def test_a_piece_of_an_item_that_fails_fails_its_whole_item():
    pieces = [Piece(0, 2, 3), Piece(1, 0, 1), Piece(0, 0, 2)]
    results = pa.table(
        {"predictions": [b"c", b"x", b"ab"], "infer_ms": [1.0, 2.0, 3.0],
         "error": [None, None, None], "node": ["n1", "n2", "n2"]},
        schema=PREDICTION_SCHEMA,
    )  # fmt: skip
    joined = join_pieces(pieces, results).to_pylist()
    assert [r["predictions"] for r in joined] == [b"abc", b"x"]  # in window order
    assert [r["infer_ms"] for r in joined] == [4.0, 2.0]
    failed = results.set_column(2, "error", pa.array([None, None, "inference worker lost"]))
    joined = join_pieces(pieces, failed).to_pylist()
    assert joined[0]["error"] == "inference worker lost" and joined[0]["predictions"] is None
    assert joined[1]["predictions"] == b"x"


def test_an_actor_that_loads_other_weights_than_planned_fails_the_pool_at_once(
    ray_local, model_file
):
    with pytest.raises(Exception, match="the checkpoint changed during the run"):
        settings = PoolSettings(
            (1, 1), num_cpus=0.5, num_gpus=0, model=model_file, expected_model_id="0" * 64,
            device="cpu",
        )  # fmt: skip
        start_pool(settings, ready_timeout_s=120)
    import ray._private.state as state

    alive = [a for a in state.actors().values() if "InferActor" in a.get("ActorClassName", "")]
    assert all(a.get("State") == "DEAD" for a in alive)
