"""Data layouts (pipeline/formats/): a sample converted into the other shard layout keeps its
image, mask, reference and other members, carries the item's stats, and reads back as the same
item; every layout reads a unit through the same call."""

from __future__ import annotations

import io
import tarfile

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import formats
from pipeline.formats.common import ReadContext
from pipeline.schema import ERROR, OK
from tests.pipeline import data


def _result(key: str, image: bytes | None, status: str = OK) -> dict:
    return {"key": key, "out_key": key.rsplit("/", 1)[-1], "status": status, "ext": "png",
            "data": image, "error_kind": None if status == OK else "input"}  # fmt: skip


def test_a_tar_sample_becomes_a_parquet_record_and_back(tmp_path):
    item = data.good_item(3)
    fs = fsspec.filesystem("file")
    src = tmp_path / "in.tar"
    with tarfile.open(src, "w") as tar:
        for name, blob in (("a.jpg", item["image"]), ("a.mask.png", item["mask"]),
                           ("a.gt.png", item["image"]), ("a.caption.txt", b"a dog")):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    webdataset, parquet = formats.layout("webdataset"), formats.layout("parquet")
    (sample,) = list(webdataset.samples(fs, str(src)))
    assert webdataset.is_item(sample)

    restored = b"\x89PNG restored"
    shard = parquet.Shard()
    shard.add(parquet.to_sample(sample, "webdataset", _result("in/a", restored)))
    (tmp_path / "out.parquet").write_bytes(shard.close())
    (record,) = list(parquet.samples(fs, str(tmp_path / "out.parquet")))
    assert record["image"] == restored and record["mask"] == item["mask"]
    assert record["reference"] == item["image"] and record["caption_txt"] == b"a dog"
    assert parquet.sample_status(record) == (OK, None)

    back = webdataset.Shard()
    back.add(webdataset.to_sample(record, "parquet", _result("in/a", None, ERROR)))
    (tmp_path / "back.tar").write_bytes(back.close())
    (key, members), = list(webdataset.samples(fs, str(tmp_path / "back.tar")))
    names = dict(members)
    assert key == "a" and names["a.png"] == restored  # not restored again: the record's image
    assert names["a.mask.png"] == item["mask"] and names["a.caption_txt"] == b"a dog"
    assert webdataset.sample_status((key, members)) == (ERROR, "input")


def test_every_layout_reads_a_unit_into_item_rows(tmp_path):
    item = data.good_item(4)
    (tmp_path / "x.jpg").write_bytes(item["image"])
    (tmp_path / "x.png").write_bytes(item["mask"])
    rows = {"key": ["k1", ""], "image": [item["image"], item["image"]],
            "mask": [item["mask"], item["mask"]]}  # fmt: skip
    pq.write_table(pa.table(rows), tmp_path / "s.parquet")
    context = ReadContext(options={}, retries=1, has_template=False)
    pair = {"kind": "pair", "key": "x", "image": str(tmp_path / "x.jpg"),
            "mask": str(tmp_path / "x.png"), "shard": None, "seq": None}  # fmt: skip
    (row,) = formats.layout("pairs").read_unit(pair, context)
    assert row["image_bytes"] == item["image"] and row["mask_bytes"] == item["mask"]
    shard = {"kind": "parquet", "key": "s", "image": str(tmp_path / "s.parquet")}
    first, second = formats.layout("parquet").read_unit(shard, context)
    assert first["key"] == "s/k1" and first["seq"] == 0 and first["mask_bytes"] == item["mask"]
    assert second["status"] == ERROR and "empty key" in second["error"]  # its own row, no loss
