"""The partitioned plan: listing and ledger cut into many partitions give every file the key
and the verdict one listing of the whole archive gives it, and leave nothing behind in OUT."""

from __future__ import annotations

import pytest

from pipeline import RestoreConfig, run_restore
from pipeline import planner as plan
from pipeline.formats.common import Found
from pipeline.formats.pairs import key_family, pair_units
from pipeline.storage import filesystem
from pipeline.work import dry_run, find_work, list_units
from tests.pipeline import data

# names chosen to collide: two extensions of one stem, a stem that is another's key with its
# extension, a backslash that sanitises to a folder, a literal `~2`, folders at two depths
NAMES = [
    "a.jpg", "a.png", "b.png", "x.png.jpg", "x.png", "x.jpg", "c\\d.png", "c/d.png", "c/d~2.png",
    "e~2.png", "e.png", "sub/deep/f.webp", "sub/g.png", "sub/g.tif", "h.png",
]  # fmt: skip


def archive(tmp_path, names: list[str]) -> RestoreConfig:
    item = data.good_item(3, (32, 24))
    for name in names:
        path = tmp_path / "img" / name
        if path.exists():  # files already there stay as they are
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item["image"])
        mask = tmp_path / "mask" / name.rsplit(".", 1)[0]
        mask.parent.mkdir(parents=True, exist_ok=True)
        mask.with_name(mask.name + ".png").write_bytes(item["mask"])
    return RestoreConfig.from_dict(
        {
            "images": str(tmp_path / "img"),
            "masks": str(tmp_path / "mask"),
            "output": str(tmp_path / "out"),
            "engine": "opencv-telea",
            "progress_bars": False,
        }
    )


def planned(config: RestoreConfig) -> dict[str, str]:
    work = find_work(config, run_id="t")
    try:
        return {row["image"]: row["key"] for row in work.units_table().to_pylist()}
    finally:
        work.scratch.remove()


def one_listing(config: RestoreConfig) -> dict[str, str]:
    """image URL -> key as one pairing of the whole archive at once gives them."""
    (fs, root), (mfs, mroot) = filesystem(config.images), filesystem(config.masks)
    images = {path: Found("", None) for path in sorted(fs.find(root))}
    masks = {path: Found("", None) for path in mfs.find(mroot)}
    units, _ = pair_units(config, fs, images, root, mfs, mroot, masks, {})
    return {u["image"]: u["key"] for u in units}


def test_keys_families_hold_every_key_a_file_can_get():
    for stem in ("x", "x.png", "x~2", "x.png~3", "x~2.png", "a\\x"):
        assert key_family(stem) == key_family("x") or stem == "a\\x"
    assert key_family("a\\x") == key_family("a/x.jpg") == "a/x"
    assert key_family("e~2") == key_family("e") and key_family("photo~v2") == "photo~v2"


def test_many_partitions_give_the_keys_of_one_listing(tmp_path, monkeypatch):
    config = archive(tmp_path, NAMES)
    whole = one_listing(config)
    assert {u["image"]: u["key"] for u in list_units(config).units} == whole
    monkeypatch.setattr(plan, "ROWS_PER_REDUCE", 1)  # one reduce task per partition range
    monkeypatch.setattr(plan, "FLUSH_ROWS", 4)  # map files of many row groups per partition
    assert planned(config) == whole
    assert len(set(whole.values())) == len(NAMES)


def test_the_plan_prices_each_item_by_its_listed_bytes(tmp_path, monkeypatch):
    config = archive(tmp_path, NAMES)
    monkeypatch.setattr(plan, "ROWS_PER_REDUCE", 1)
    work = find_work(config, run_id="t")
    try:
        units = work.units_table().to_pylist()
    finally:
        work.scratch.remove()
    on_disk = {str(p): p.stat().st_size for p in (tmp_path / "img").rglob("*") if p.is_file()}
    assert sorted(u["size"] for u in units) == sorted(on_disk.values())
    # what the task sizing reads: never fewer pixels than the 32x24 items hold
    assert work.pixels_to_run >= work.to_run * 32 * 24 > 0


@pytest.mark.usefixtures("ray_local")
def test_a_growing_archive_keeps_its_keys_across_partitions(tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "ROWS_PER_REDUCE", 1)
    config = archive(tmp_path, NAMES[:6])
    first = run_restore(config)
    assert first["counts"]["ok"] == 6
    keys = planned_all(config)
    archive(tmp_path, NAMES)  # the rest arrives beside the first files
    plan_now = dry_run(config)
    assert plan_now["new"] == len(NAMES) - 6 and plan_now["already_done_ok"] == 6
    second = run_restore(config)
    assert second["counts"]["ok"] == len(NAMES) - 6
    after = planned_all(config)
    assert {image: after[image] for image in keys} == keys  # old files keep their keys
    assert len(set(after.values())) == len(NAMES)
    assert not (tmp_path / "out" / "_plan").exists()  # the plan's files are gone


def planned_all(config: RestoreConfig) -> dict[str, str]:
    """Image -> key of every listed file, whether done or not (overwrite: nothing is done)."""
    return planned(RestoreConfig.from_dict({**config.to_dict(), "overwrite": True}))
