"""End-to-end runs on a local Ray, against SeaweedFS (through s3fs) and local paths."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline import ConfigError, RestoreConfig, run_restore
from pipeline.ledger import load_history
from pipeline.schema import STATS_SCHEMA
from tests.pipeline import data

SIZE = (96, 72)


def restore(**spec):
    spec.setdefault("engine", "opencv-telea")
    spec.setdefault("progress_bars", False)
    spec.setdefault("batch_size", 4)
    spec.setdefault("actors", "1")
    return run_restore(RestoreConfig.from_dict(spec))


def stats_rows(out: str, options: dict) -> list[dict]:
    return load_history(out, options, columns=list(STATS_SCHEMA.names)).to_pylist()


def check_summary(summary: dict) -> None:
    counts = summary["counts"]
    assert summary["status"] == "finished"
    assert counts["listed"] == sum(counts[s] for s in ("ok", "error", "skipped", "already_done"))


@pytest.fixture
def s3(seaweedfs):
    return seaweedfs.filesystem()


def test_pairs_on_s3_every_item_one_row_then_resume_and_retry_failed(
    ray_local, seaweedfs, s3, s3_prefix
):
    images, masks, out = f"{s3_prefix}/in/images", f"{s3_prefix}/in/masks", f"{s3_prefix}/out"
    bare = lambda url: url.removeprefix("s3://")  # noqa: E731
    items = {
        "a/good1": data.good_item(1, SIZE, "PNG"),
        "a/b/good2": data.good_item(2, SIZE, "JPEG"),
        "good3": data.good_item(3, SIZE, "WEBP"),
        "good4": data.good_item(4, SIZE, "TIFF"),
        "bad/corrupt": {**data.good_item(5, SIZE, "JPEG"), "image": b"\xff\xd8garbage"},
        "bad/nomask": {**data.good_item(6, SIZE), "mask": None},
        "bad/aspect": {**data.good_item(7, SIZE), "mask": data.encode(data.box_mask((40, 40)))},
        "empty": {**data.good_item(8, SIZE), "mask": data.encode(data.box_mask(SIZE, ()))},
    }
    data.write_pairs(s3, bare(images), bare(masks), items)
    s3.pipe_file(f"{bare(masks)}/orphan.png", data.encode(data.box_mask(SIZE)))
    opts = seaweedfs.storage_options
    spec = dict(images=images, masks=masks, output=out, storage_options=opts)

    first = restore(**spec)
    check_summary(first)
    assert first["counts"] == {"listed": 8, "ok": 4, "error": 3, "skipped": 1, "already_done": 0}
    assert first["orphan_masks"] == 1
    rows = stats_rows(out, opts)
    assert sorted(r["key"] for r in rows) == sorted(items)  # exactly one row per item
    by_key = {r["key"]: r for r in rows}
    assert "not an image" in by_key["bad/corrupt"]["error"]
    assert "no mask for this image" in by_key["bad/nomask"]["error"]
    assert "aspect" in by_key["bad/aspect"]["error"]
    assert by_key["empty"]["status"] == "skipped"
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["model_id"] == "opencv-telea" and r["hole_pixels"] > 0 for r in ok)
    assert all(r["infer_ms"] >= 0 and r["total_ms"] > 0 and r["seam_ratio"] > 0 for r in ok)
    # outputs keep relative keys and input formats, and nothing lands outside OUT
    written = sorted(p.removeprefix(f"{bare(out)}/images/") for p in s3.find(f"{bare(out)}/images"))
    assert written == ["a/b/good2.jpg", "a/good1.png", "good3.webp", "good4.tif"]
    assert Image.open(io.BytesIO(s3.cat_file(f"{bare(out)}/images/good3.webp"))).format == "WEBP"
    everything = s3.find(bare(s3_prefix))
    assert all(p.startswith((bare(images), bare(masks), bare(out))) for p in everything)
    # the stats files have exactly the documented schema
    stats_file = s3.find(f"{bare(out)}/stats")[0]
    with s3.open(stats_file, "rb") as handle:
        assert pq.read_schema(handle).names == STATS_SCHEMA.names
    # the run summary: config without credentials, model id, versions, counts
    text = s3.cat_file(f"{bare(out)}/runs/{first['run_id']}.json").decode()
    summary = json.loads(text)
    assert "spl-test-secret" not in text and "spl-test-key" not in text
    assert summary["model_id"] == "opencv-telea" and "ray" in summary["versions"]
    assert summary["counts"] == first["counts"] and summary["images_per_s"] > 0

    # same job again: everything done but the missing mask (transient: it may still come)
    second = restore(**spec)
    check_summary(second)
    assert second["counts"]["already_done"] == 7 and second["counts"]["error"] == 1
    assert second["stats_rows"] == 1 and len(stats_rows(out, opts)) == 9

    # fix one broken item, add a new one, retry failed: only errors and new items run
    s3.pipe_file(f"{bare(images)}/bad/corrupt.jpg", data.good_item(5, SIZE, "JPEG")["image"])
    data.write_pairs(s3, bare(images), bare(masks), {"new/one": data.good_item(9, SIZE)})
    third = restore(**spec, retry_failed=True)
    check_summary(third)
    assert third["counts"] == {"listed": 9, "ok": 2, "error": 2, "skipped": 0, "already_done": 5}
    rows = stats_rows(out, opts)
    ok_per_key: dict[str, int] = {}
    for row in rows:
        ok_per_key[row["key"]] = ok_per_key.get(row["key"], 0) + (row["status"] == "ok")
    assert ok_per_key["bad/corrupt"] == 1 and ok_per_key["new/one"] == 1
    assert max(ok_per_key.values()) == 1  # every item restored once


def test_webdataset_on_s3_keys_stay_under_out(ray_local, seaweedfs, s3, s3_prefix):
    root = s3_prefix.removeprefix("s3://")
    items = [data.good_item(i, SIZE) for i in range(4)]
    s3.pipe_file(
        f"{root}/shards/part-0.tar",
        data.tar_shard(
            [
                ("x0.png", items[0]["image"]),
                ("x0.mask.png", items[0]["mask"]),
                ("../../../escape.png", items[1]["image"]),
                ("../../../escape.mask.png", items[1]["mask"]),
                ("nomask.png", items[2]["image"]),
            ]
        ),
    )
    s3.pipe_file(
        f"{root}/shards/part-1.tar",
        data.tar_shard(
            [
                ("/abs/y.jpg", data.encode(data.photo(3, SIZE), "JPEG")),
                ("/abs/y.mask.png", items[3]["mask"]),
            ]
        ),
    )
    out = f"{s3_prefix}/out"
    summary = restore(
        images=f"{s3_prefix}/shards",
        output=out,
        format="auto",
        output_layout="files",
        storage_options=seaweedfs.storage_options,
    )
    check_summary(summary)
    assert summary["layout"] == "webdataset"
    assert summary["counts"] == {"listed": 4, "ok": 3, "error": 1, "skipped": 0, "already_done": 0}
    written = sorted(p.removeprefix(f"{root}/out/images/") for p in s3.find(f"{root}/out/images"))
    assert written == ["part-0/__/__/__/escape.png", "part-0/x0.png", "part-1/abs/y.jpg"]
    assert all(p.startswith((f"{root}/shards", f"{root}/out/")) for p in s3.find(root))
    # a re-run reads the shards again but redoes nothing
    again = restore(
        images=f"{s3_prefix}/shards",
        output=out,
        output_layout="files",
        storage_options=seaweedfs.storage_options,
    )
    assert again["counts"]["already_done"] == 4 and again["stats_rows"] == 0
    # WebDataset out (the default for shards): one shard per input shard, safe member names
    shards = restore(
        images=f"{s3_prefix}/shards", output=f"{out}-wds", storage_options=seaweedfs.storage_options
    )
    assert shards["shards"]["published"] == 2 and shards["counts"]["ok"] == 3
    found = sorted(p.removeprefix(f"{root}/out-wds/") for p in s3.find(f"{root}/out-wds"))
    assert [p for p in found if not p.startswith(("stats/", "runs/"))] == [
        "published/part-0.json",
        "published/part-1.json",
        "shards/part-0.tar",
        "shards/part-1.tar",
    ]  # the parts are gone
    with tarfile.open(fileobj=io.BytesIO(s3.cat_file(f"{root}/out-wds/shards/part-0.tar"))) as tar:
        assert tar.getnames() == [
            "x0.png",
            "x0.mask.png",
            "x0.spl.json",
            "__/__/__/escape.png",
            "__/__/__/escape.mask.png",
            "__/__/__/escape.spl.json",
            "nomask.png",
            "nomask.spl.json",
        ]


def test_parquet_on_s3_with_reference_images(ray_local, seaweedfs, s3, s3_prefix):
    root = s3_prefix.removeprefix("s3://")
    records = []
    for i in range(3):
        clean = data.photo(20 + i, SIZE)
        records.append(
            {
                "key": f"img/{i}",
                "image": data.encode(clean),
                "mask": data.encode(data.box_mask(SIZE)),
                "reference": data.encode(clean),
            }
        )
    records.append({"key": "img/nomask", "image": data.encode(data.photo(9, SIZE)), "mask": b""})
    s3.pipe_file(f"{root}/pq/shard-0.parquet", data.parquet_shard(records))
    out = f"{s3_prefix}/out"
    summary = restore(
        images=f"{s3_prefix}/pq",
        output=out,
        output_format="jpg",
        output_layout="files",
        storage_options=seaweedfs.storage_options,
    )
    check_summary(summary)
    assert summary["layout"] == "parquet" and summary["items_listed_up_front"] == 4
    assert summary["counts"] == {"listed": 4, "ok": 3, "error": 1, "skipped": 0, "already_done": 0}
    rows = {r["key"]: r for r in stats_rows(out, seaweedfs.storage_options)}
    for i in range(3):
        row = rows[f"shard-0/img/{i}"]
        assert row["output_uri"].endswith(f"/out/images/shard-0/img/{i}.jpg")
        assert 15 < row["psnr"] < 60 and 0 < row["ssim"] <= 1 and 0 <= row["l1"] < 0.2
    assert "mask" in rows["shard-0/img/nomask"]["error"]


def test_mask_template_on_s3(ray_local, seaweedfs, s3, s3_prefix):
    root = s3_prefix.removeprefix("s3://")
    for i, size in enumerate([(96, 72), (192, 144), (120, 60)]):
        s3.pipe_file(f"{root}/photos/p{i}.png", data.encode(data.photo(30 + i, size)))
    s3.pipe_file(f"{root}/wm.png", data.encode(data.box_mask((20, 10), (0, 0, 20, 10))))
    out = f"{s3_prefix}/out"
    summary = restore(
        images=f"{s3_prefix}/photos",
        mask_template=f"{s3_prefix}/wm.png",
        mask_anchor="bottom-right",
        mask_offset="2%,2%",
        mask_scale=0.25,
        output=out,
        storage_options=seaweedfs.storage_options,
    )
    check_summary(summary)
    assert summary["counts"]["ok"] == 3
    rows = {r["key"]: r for r in stats_rows(out, seaweedfs.storage_options)}
    # the watermark scales with the image width: 4x the pixels at 2x the size
    assert rows["p1"]["hole_pixels"] == 4 * rows["p0"]["hole_pixels"] > 0
    restored = np.asarray(Image.open(io.BytesIO(s3.cat_file(f"{root}/out/images/p0.png"))))
    original = np.asarray(data.photo(30, (96, 72)))
    changed = np.argwhere(np.any(restored != original, axis=2))
    assert changed[:, 0].min() >= 72 // 2 and changed[:, 1].min() >= 96 // 2  # bottom-right


def test_local_paths_incremental_and_overwrite(ray_local, tmp_path):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    for i in range(3):
        item = data.good_item(40 + i, SIZE)
        for folder, blob in ((images, item["image"]), (masks, item["mask"])):
            (folder / "day1").mkdir(parents=True, exist_ok=True)
            (folder / "day1" / f"{i}.png").write_bytes(blob)
    spec = dict(images=str(images), masks=str(masks), output=str(out), output_format="webp")
    first = restore(**spec)
    assert first["counts"]["ok"] == 3
    assert sorted(p.name for p in (out / "images" / "day1").iterdir()) == [
        "0.webp",
        "1.webp",
        "2.webp",
    ]
    for i in range(2):  # the archive grows
        item = data.good_item(50 + i, SIZE)
        (images / "day2").mkdir(exist_ok=True)
        (masks / "day2").mkdir(exist_ok=True)
        (images / "day2" / f"{i}.png").write_bytes(item["image"])
        (masks / "day2" / f"{i}.png").write_bytes(item["mask"])
    second = restore(**spec)
    assert second["counts"] == {"listed": 5, "ok": 2, "error": 0, "skipped": 0, "already_done": 3}
    third = restore(**spec, overwrite=True)
    assert third["counts"]["ok"] == 5 and third["counts"]["already_done"] == 0
    rows = stats_rows(str(out), {})
    assert len(rows) == 10 and len({(r["run_id"], r["key"]) for r in rows}) == 10
    assert not [p for p in out.rglob(".*")]  # no temp files left behind


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> tuple[str, str]:
    """Random-weight `spl-small` generator in the native format: (path, sha256)."""
    import spl_model

    path = tmp_path_factory.mktemp("weights") / "spl-small.safetensors"
    sha = spl_model.save_generator(spl_model.build_generator("spl-small"), path)
    return str(path), sha


def test_spl_checkpoint_from_s3_runs_with_its_model_id(
    ray_local, seaweedfs, s3, s3_prefix, small_checkpoint
):
    local, sha = small_checkpoint
    root = s3_prefix.removeprefix("s3://")
    s3.put_file(local, f"{root}/weights/spl-small.safetensors")
    items = {f"p{i}": data.good_item(60 + i, (80, 64)) for i in range(3)}
    data.write_pairs(s3, f"{root}/in/images", f"{root}/in/masks", items)
    out = f"{s3_prefix}/out"
    summary = restore(
        images=f"{s3_prefix}/in/images",
        masks=f"{s3_prefix}/in/masks",
        output=out,
        engine=None,
        checkpoint=f"{s3_prefix}/weights/spl-small.safetensors",
        storage_options=seaweedfs.storage_options,
        actors="1",
        batch_size=2,
        model_batch=1,
        compile=True,
    )
    check_summary(summary)
    assert summary["engine"] == "spl" and summary["model_id"] == sha
    assert summary["counts"]["ok"] == 3
    (actor,) = summary["inference_actors"]  # compiled and warmed up before it took work
    assert actor["compiled"] and actor["warmup_s"] > 0 and actor["model_batch"] == 1
    rows = stats_rows(out, seaweedfs.storage_options)
    assert {(r["engine"], r["model_id"]) for r in rows} == {("spl", sha)}


def test_unusable_checkpoint_fails_before_any_work(ray_local, tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(data.good_item(1, SIZE)["image"])
    with pytest.raises(ConfigError, match="checkpoint"):
        restore(
            images=str(tmp_path / "in"),
            mask_template=str(tmp_path / "in" / "a.png"),
            output=str(tmp_path / "out"),
            engine=None,
            checkpoint=str(bad),
        )
    assert not (tmp_path / "out").exists()
