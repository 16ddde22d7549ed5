"""A growing archive: replaced images and masks are redone, keys stay what they were whatever is
added beside them, and shards that changed are read again."""

from __future__ import annotations

import os
import time

import fsspec
import pytest

from pipeline import RestoreConfig, run_restore
from pipeline.ledger import load_history
from pipeline.schema import STATS_SCHEMA
from pipeline.work import dry_run
from tests.pipeline import data

SIZE = (64, 48)


@pytest.fixture
def archive(tmp_path):
    fs = fsspec.filesystem("file", auto_mkdir=True)
    items = {"a/one": data.good_item(1, SIZE), "a/two": data.good_item(2, SIZE, "JPEG")}
    data.write_pairs(fs, str(tmp_path / "img"), str(tmp_path / "mask"), items)
    spec = {
        "images": str(tmp_path / "img"),
        "masks": str(tmp_path / "mask"),
        "output": str(tmp_path / "out"),
        "engine": "opencv-telea",
        "progress_bars": False,
    }
    return tmp_path, fs, spec


def run(spec: dict) -> tuple[dict, dict[str, dict]]:
    summary = run_restore(RestoreConfig.from_dict(spec))
    rows = load_history(spec["output"], {}, columns=list(STATS_SCHEMA.names)).to_pylist()
    return summary, {r["key"]: r for r in rows if r["run_id"] == summary["run_id"]}


def replace(path, blob: bytes) -> None:
    """Write new bytes under the same name, with a later mtime (as an upload would)."""
    path.write_bytes(blob)
    later = time.time() + 5
    os.utime(path, (later, later))


def test_a_replaced_image_or_mask_is_restored_again(ray_local, archive):
    tmp, _, spec = archive
    first, rows = run(spec)
    assert first["counts"]["ok"] == 2 and all(r["input_version"] for r in rows.values())
    replace(tmp / "img" / "a" / "one.png", data.good_item(7, SIZE)["image"])
    second, rows = run(spec)
    assert second["counts"]["ok"] == 1 and second["counts"]["already_done"] == 1
    assert set(rows) == {"a/one"}
    replace(tmp / "mask" / "a" / "two.png", data.encode(data.box_mask(SIZE, (4, 4, 20, 20))))
    third, rows = run(spec)
    assert set(rows) == {"a/two"} and third["counts"]["already_done"] == 1
    assert run(spec)[0]["counts"]["already_done"] == 2  # nothing changed since


def test_a_file_added_beside_another_never_takes_its_key(ray_local, archive):
    tmp, _, spec = archive
    run(spec)
    # photo a/one.png was restored as key a/one; an a/one.jpg appears beside it
    (tmp / "img" / "a" / "one.jpg").write_bytes(data.good_item(9, SIZE, "JPEG")["image"])
    summary, rows = run(spec)
    assert summary["counts"]["already_done"] == 2  # a/one and a/two are not redone
    assert set(rows) == {"a/one.jpg"} and rows["a/one.jpg"]["status"] == "ok"
    assert rows["a/one.jpg"]["image_uri"].endswith("a/one.jpg")


def tar_shard(seed: int) -> bytes:
    item = data.good_item(seed, SIZE)
    return data.tar_shard([("x.png", item["image"]), ("x.mask.png", item["mask"])])


def two_shards(tmp_path) -> dict:
    """Shards s1 and s2 of one item each, restored as loose files: the job spec."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "s1.tar").write_bytes(tar_shard(1))
    (tmp_path / "in" / "s2.tar").write_bytes(tar_shard(2))
    return {
        "images": str(tmp_path / "in"),
        "output": str(tmp_path / "out"),
        "output_layout": "files",
        "engine": "opencv-telea",
        "progress_bars": False,
    }


def test_a_changed_shard_is_read_again_and_an_unchanged_one_is_not_redone(ray_local, tmp_path):
    spec = two_shards(tmp_path)
    assert run(spec)[0]["counts"]["ok"] == 2
    replace(tmp_path / "in" / "s2.tar", tar_shard(3))
    summary, rows = run(spec)
    assert set(rows) == {"s2/x"} and summary["counts"]["already_done"] == 1


def test_a_dry_run_says_what_a_run_would_do_and_writes_nothing(ray_local, archive):
    tmp, fs, spec = archive
    spec = {**spec, "images": str(tmp / "img"), "masks": str(tmp / "mask")}
    (tmp / "mask" / "a" / "two.png").unlink()  # a/two: an error the next run retries
    run(spec)
    data.write_pairs(fs, str(tmp / "img"), str(tmp / "mask"), {"b/new": data.good_item(5, SIZE)})
    (tmp / "mask" / "a" / "two.png").write_bytes(data.good_item(2, SIZE)["mask"])
    replace(tmp / "img" / "a" / "one.png", data.good_item(8, SIZE)["image"])
    before = sorted(p for p in (tmp / "out").rglob("*"))
    plan = dry_run(RestoreConfig.from_dict(spec))
    assert sorted(p for p in (tmp / "out").rglob("*")) == before
    assert {k: plan[k] for k in ("new", "changed", "retry")} == {"new": 1, "changed": 1, "retry": 1}
    assert plan["items_listed"] == 3
    summary, _ = run(spec)
    assert summary["plan"] == {"new": 1, "changed": 1, "retry": 1}
    assert summary["counts"]["ok"] == 3


def test_shards_whose_items_are_all_done_are_not_read_again(ray_local, tmp_path):
    spec = two_shards(tmp_path)
    first, _ = run(spec)
    assert first["shards"]["input_shards_done"] == 2
    plan = dry_run(RestoreConfig.from_dict(spec))
    assert plan["shards_to_read"] == 0 and plan["shards_published"] == 2
    second, rows = run(spec)
    assert second["counts"]["already_done"] == 2 and not rows
    assert second["plan"]["shards_to_read"] == 0
