"""Shard outputs: WebDataset in -> WebDataset out, Parquet in -> Parquet out, loose files ->
shards, read back by libraries we did not write (webdataset, pyarrow, DuckDB)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from pipeline import RestoreConfig, run_restore, shards
from pipeline.ledger import load_history
from pipeline.schema import STATS_SCHEMA
from tests.pipeline import corpus, data

SIZE = (96, 72)


def restore(**spec):
    spec.setdefault("engine", "opencv-telea")
    spec.setdefault("progress_bars", False)
    spec.setdefault("batch_size", 3)
    spec.setdefault("actors", "1")
    return run_restore(RestoreConfig.from_dict(spec))


def write_wds_shard(path: Path, seed: int, items: int = 4) -> list[dict]:
    """A shard written by webdataset's own ShardWriter: jpg + mask.png + json + txt per
    sample; the third sample has no mask (an error item); one sample is metadata only."""
    samples = []
    with wds.ShardWriter(str(path.parent / (path.stem + "-%d.tar")), maxcount=1000) as sink:
        for i in range(items):
            item = data.good_item(seed + i, SIZE, "JPEG")
            sample = {
                "__key__": f"{i:06d}",
                "jpg": item["image"],
                "mask.png": item["mask"],
                "json": json.dumps({"i": i}).encode(),
                "txt": f"caption {seed + i}".encode(),
            }
            if i == 2:
                del sample["mask.png"]
            sink.write(sample)
            samples.append(sample)
        meta = {"__key__": "zz-meta", "json": b'{"only": "metadata"}'}
        sink.write(meta)
        samples.append(meta)
    (path.parent / (path.stem + "-0.tar")).rename(path)
    return samples


def wds_samples(url: str) -> list[dict]:
    return list(wds.WebDataset(url, shardshuffle=False, empty_check=False))


def rows_of(out: Path) -> list[dict]:
    return load_history(str(out), {}, columns=list(STATS_SCHEMA.names)).to_pylist()


@pytest.fixture(scope="module")
def wds_run(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("wds")
    (root / "in").mkdir()
    inputs = {
        f"shard-{n:04d}": write_wds_shard(root / "in" / f"shard-{n:04d}.tar", 10 * n)
        for n in range(2)
    }
    summary = restore(images=str(root / "in"), output=str(root / "out"))
    return root, inputs, summary


def test_webdataset_in_gives_webdataset_out_that_webdataset_reads(wds_run):
    root, inputs, summary = wds_run
    assert summary["output_layout"] == "webdataset"
    assert summary["shards"]["published"] == 2 and not summary["shards"]["not_published"]
    for name, samples in inputs.items():
        out = wds_samples(str(root / "out" / "shards" / f"{name}.tar"))
        assert [s["__key__"] for s in out] == [s["__key__"] for s in samples]
        for original, restored in zip(samples, out, strict=True):
            for member in ("json", "txt", "mask.png"):  # other members pass through as they are
                assert restored.get(member) == original.get(member)
            if original["__key__"] == "zz-meta":
                assert "spl.json" not in restored and "jpg" not in restored
                continue
            stats = json.loads(restored["spl.json"])
            if "mask.png" in original:
                assert stats["status"] == "ok" and restored["jpg"] != original["jpg"]
                assert Image.open(io.BytesIO(restored["jpg"])).size == SIZE
            else:  # failed: keeps its original image, and says why
                assert stats["status"] == "error" and "no mask member" in stats["error"]
                assert restored["jpg"] == original["jpg"]


def test_shard_items_have_one_stats_row_each_pointing_into_the_shard(wds_run):
    root, _, summary = wds_run
    rows = rows_of(root / "out")
    assert len(rows) == 8 and summary["counts"]["ok"] == 6 and summary["counts"]["error"] == 2
    assert not (root / "out" / "images").exists()
    assert not list((root / "out").glob("parts/**/*.parquet"))  # parts gone once published
    for row in rows:
        assert row["shard"] in ("shard-0000", "shard-0001")
        if row["status"] == "ok":
            tar, member = row["output_uri"].split("#")
            samples = {f"{s['__key__']}.jpg" for s in wds_samples(tar) if "jpg" in s}
            assert member in samples


def test_a_rerun_reads_no_published_shard_and_a_new_shard_runs_alone(wds_run):
    root, _, _ = wds_run
    before = {p.name: p.read_bytes() for p in (root / "out" / "shards").glob("*.tar")}
    again = restore(images=str(root / "in"), output=str(root / "out"))
    assert again["counts"]["already_done"] == 8 and again["shards"]["already_published"] == 2
    assert again["counts"]["ok"] == again["counts"]["error"] == 0
    write_wds_shard(root / "in" / "shard-0002.tar", 50)
    grown = restore(images=str(root / "in"), output=str(root / "out"))
    assert grown["shards"]["already_published"] == 2 and grown["shards"]["published"] == 1
    assert grown["counts"]["already_done"] == 8 and grown["counts"]["ok"] == 3
    new_rows = [r for r in rows_of(root / "out") if r["run_id"] == grown["run_id"]]
    assert {r["shard"] for r in new_rows} == {"shard-0002"}
    kept = {p.name: p.read_bytes() for p in (root / "out" / "shards").glob("*.tar")}
    assert {name: kept[name] for name in before} == before  # published shards never rewritten


def test_an_interrupted_run_leaves_no_shard_and_the_next_run_publishes_it(
    ray_local, tmp_path, monkeypatch
):
    (tmp_path / "in").mkdir()
    samples = write_wds_shard(tmp_path / "in" / "only.tar", 70)
    # the driver dies before it publishes: the parts and the stats rows are there, no shard
    monkeypatch.setattr(shards.ShardPublisher, "finish", lambda self: {})
    monkeypatch.setattr(shards.ShardPublisher, "_start", lambda self, shard: None)
    first = restore(images=str(tmp_path / "in"), output=str(tmp_path / "out"))
    assert first["counts"]["ok"] == 3
    assert not (tmp_path / "out" / "shards").exists()
    assert list((tmp_path / "out" / "parts").glob("only/*/*.parquet"))
    monkeypatch.undo()
    second = restore(images=str(tmp_path / "in"), output=str(tmp_path / "out"))
    assert second["counts"]["already_done"] == 4 and second["counts"]["ok"] == 0
    assert second["shards"]["published"] == 1
    out = wds_samples(str(tmp_path / "out" / "shards" / "only.tar"))
    assert [s["__key__"] for s in out] == [s["__key__"] for s in samples]
    statuses = [json.loads(s["spl.json"])["status"] for s in out if "spl.json" in s]
    assert statuses == ["ok", "ok", "error", "ok"]
    assert not list((tmp_path / "out" / "parts").glob("**/*.parquet"))


def test_retrying_failures_republishes_with_earlier_items_kept(ray_local, tmp_path):
    (tmp_path / "in").mkdir()
    write_wds_shard(tmp_path / "in" / "s.tar", 80)
    spec = {"images": str(tmp_path / "in"), "output": str(tmp_path / "out")}
    restore(**spec)
    shard = tmp_path / "out" / "shards" / "s.tar"
    before = {s["__key__"]: s for s in wds_samples(str(shard))}
    retry = restore(**spec, retry_failed=True)
    assert retry["counts"]["error"] == 1 and retry["counts"]["already_done"] == 3
    after = {s["__key__"]: s for s in wds_samples(str(shard))}
    assert list(after) == list(before)
    for key in ("000000", "000001", "000003"):  # done before: taken from the published shard
        assert after[key]["jpg"] == before[key]["jpg"]
        assert after[key]["spl.json"] == before[key]["spl.json"]
    assert json.loads(after["000002"]["spl.json"])["run_id"] == retry["run_id"]


def test_parquet_in_gives_parquet_out_with_its_columns_that_duckdb_reads(ray_local, tmp_path):
    records = []
    for i in range(5):
        item = data.good_item(90 + i, SIZE, "PNG")
        records.append(
            {
                "key": f"k{i}",
                "image": item["image"],
                "mask": item["mask"],
                "caption": f"photo {i}",
                "score": i / 10,
            }
        )
    records[3]["image"] = b"not an image"
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "in" / "part-0.parquet")
    summary = restore(images=str(tmp_path / "in"), output=str(tmp_path / "out"))
    assert summary["output_layout"] == "parquet" and summary["shards"]["published"] == 1
    path = tmp_path / "out" / "shards" / "part-0.parquet"
    table = pq.read_table(path)
    assert table.schema.names[:5] == ["key", "image", "mask", "caption", "score"]
    out = table.to_pylist()
    assert [r["key"] for r in out] == [r["key"] for r in records]
    for original, row in zip(records, out, strict=True):
        assert (row["caption"], row["score"], row["mask"]) == (
            original["caption"],
            original["score"],
            original["mask"],
        )
        if original["key"] == "k3":
            assert row["spl_status"] == "error" and row["image"] == original["image"]
        else:
            assert row["spl_status"] == "ok" and row["image"] != original["image"]
            assert Image.open(io.BytesIO(row["image"])).size == SIZE
    counts = duckdb.sql(
        f"select spl_status, count(*) from read_parquet('{path}') group by 1 order by 1"
    ).fetchall()
    assert counts == [("error", 1), ("ok", 4)]


def test_loose_files_become_webdataset_shards_of_the_new_items_of_each_run(ray_local, tmp_path):
    import fsspec

    fs = fsspec.filesystem("file", auto_mkdir=True)
    items = {f"photos/p{i}.v1": data.good_item(100 + i, SIZE, "JPEG") for i in range(5)}
    data.write_pairs(fs, str(tmp_path / "img"), str(tmp_path / "mask"), items)
    spec = {
        "images": str(tmp_path / "img"),
        "masks": str(tmp_path / "mask"),
        "output": str(tmp_path / "out"),
        "output_layout": "webdataset",
        "shard_size": 2,
    }
    first = restore(**spec)
    assert first["shards"]["published"] == 3
    tars = sorted((tmp_path / "out" / "shards").glob("*.tar"))
    samples = [s for tar in tars for s in wds_samples(str(tar))]
    assert sorted(s["__key__"] for s in samples) == [f"photos/p{i}_v1" for i in range(5)]
    assert all(json.loads(s["spl.json"])["status"] == "ok" and "jpg" in s for s in samples)
    more = {"photos/p9": data.good_item(120, SIZE, "PNG")}
    data.write_pairs(fs, str(tmp_path / "img"), str(tmp_path / "mask"), more)
    second = restore(**spec)
    assert second["counts"]["already_done"] == 5 and second["shards"]["published"] == 1
    new = sorted(set((tmp_path / "out" / "shards").glob("*.tar")) - set(tars))
    assert [s["__key__"] for s in wds_samples(str(new[0]))] == ["photos/p9"]
    assert np.asarray(Image.open(io.BytesIO(wds_samples(str(new[0]))[0]["png"]))).shape[:2] == (
        SIZE[1],
        SIZE[0],
    )


def test_the_bad_input_corpus_loses_no_sample_and_writes_no_unsafe_name(ray_local, tmp_path):
    files, cases = corpus.webdataset_corpus()
    for rel, blob in files.items():
        (tmp_path / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / rel).write_bytes(blob)
    out = tmp_path / "out"
    summary = restore(
        images=str(tmp_path / "in" / "shards"), output=str(out), max_image_pixels=corpus.MAX_PIXELS
    )
    rows = {r["key"]: r for r in rows_of(out)}
    assert sorted(rows) == sorted(c.key for c in cases)  # one row per item, as with files
    assert all(rows[c.key]["status"] == c.status for c in cases)
    failed = {f["shard"]: f["reason"] for f in summary["shards"]["not_published"]}
    assert set(failed) == {"corrupt", "cut"}  # unreadable inputs are never half published
    inputs = sorted((tmp_path / "in" / "shards").rglob("*.tar"))
    published = 0
    for path in inputs:
        rel = path.relative_to(tmp_path / "in" / "shards")  # the same name under OUT/shards
        if str(rel.with_suffix("")) in failed:
            assert not (out / "shards" / rel).exists()
            continue
        published += 1
        restored = wds_samples(str(out / "shards" / rel))
        assert len(restored) == len(wds_samples(str(path)))
        with tarfile.open(out / "shards" / rel) as tar:
            for name in tar.getnames():
                assert not name.startswith("/") and ".." not in name.split("/"), name
    assert summary["shards"]["published"] == published
