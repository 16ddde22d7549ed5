"""Inputs named by an inventory instead of a listing: a Parquet table of keys, and an S3
Inventory (manifest.json + CSV data file, URL-encoded keys) on SeaweedFS."""

from __future__ import annotations

import json
from urllib.parse import quote

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import RestoreConfig, run_restore
from pipeline.ledger import load_history
from pipeline.schema import STATS_SCHEMA
from tests.pipeline import data

SIZE = (64, 48)


def restore(**spec) -> tuple[dict, dict[str, dict]]:
    summary = run_restore(
        RestoreConfig.from_dict({"engine": "opencv-telea", "progress_bars": False, **spec})
    )
    options = spec.get("storage_options", {})
    rows = load_history(spec["output"], options, columns=list(STATS_SCHEMA.names)).to_pylist()
    return summary, {r["key"]: r for r in rows}


def test_a_parquet_table_of_keys_names_the_images_to_restore(ray_local, tmp_path):
    fs = fsspec.filesystem("file", auto_mkdir=True)
    items = {name: data.good_item(i, SIZE) for i, name in enumerate(["a", "sub/b", "c"])}
    data.write_pairs(fs, str(tmp_path / "img"), str(tmp_path / "mask"), items)
    pq.write_table(  # c.png is on disk but not in the inventory
        pa.table({"key": ["a.png", "sub/b.png"], "size": [1, 2]}), tmp_path / "inventory.parquet"
    )
    summary, rows = restore(
        images=str(tmp_path / "img"),
        masks=str(tmp_path / "mask"),
        manifest=str(tmp_path / "inventory.parquet"),
        output=str(tmp_path / "out"),
    )
    assert summary["items_listed_up_front"] == 2 and set(rows) == {"a", "sub/b"}
    assert all(r["status"] == "ok" for r in rows.values())


def test_an_s3_inventory_manifest_and_its_csv_name_images_and_masks(
    ray_local, seaweedfs, s3_prefix
):
    s3 = seaweedfs.filesystem()
    root = s3_prefix.removeprefix("s3://")
    bucket, prefix = root.split("/", 1)
    items = {name: data.good_item(i, SIZE) for i, name in enumerate(["p one", "q/two"])}
    data.write_pairs(s3, f"{root}/img", f"{root}/mask", items)
    rows = []
    for path in sorted(s3.find(root)):
        info = s3.info(path)
        key = path.split("/", 1)[1]
        etag = info["ETag"].strip('"')
        rows.append(
            f'"{bucket}","{quote(key)}","{info["size"]}","2026-11-26T00:00:00.000Z","{etag}"'
        )
    s3.pipe_file(f"{root}/inventory/data/part-0.csv", ("\n".join(rows) + "\n").encode())
    manifest = {
        "sourceBucket": bucket,
        "destinationBucket": f"arn:aws:s3:::{bucket}",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
        "files": [{"key": f"{prefix}/inventory/data/part-0.csv", "size": 1, "MD5checksum": "x"}],
    }
    s3.pipe_file(f"{root}/inventory/manifest.json", json.dumps(manifest).encode())
    summary, rows = restore(
        images=f"{s3_prefix}/img",
        masks=f"{s3_prefix}/mask",
        manifest=f"{s3_prefix}/inventory/manifest.json",
        output=f"{s3_prefix}/out",
        storage_options=seaweedfs.storage_options,
    )
    assert summary["counts"]["ok"] == 2 and set(rows) == {"p one", "q/two"}
    etags = {s3.info(f"{root}/img/p one.png")["ETag"].strip('"')}
    assert rows["p one"]["input_version"].split("|")[0] in etags  # the inventory's ETag
