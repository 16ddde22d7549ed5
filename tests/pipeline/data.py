"""Small synthetic inputs for the pipeline tests: images, masks, tar and Parquet shards."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def photo(seed: int, size: tuple[int, int] = (96, 72), mode: str = "RGB") -> Image.Image:
    """A smooth-ish test picture (gradients + noise), `size` = (width, height)."""
    width, height = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], -1)
    noise = rng.normal(0, 12, (height, width, 3))
    rgb = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
    return rgb if mode == "RGB" else rgb.convert(mode)


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """An L mask (255 = hole) with one box; default box in the middle; `box=()` is empty."""
    width, height = size
    arr = np.zeros((height, width), np.uint8)
    if box is None:
        box = (width // 4, height // 4, width // 2, height // 2)
    if box:
        x0, y0, x1, y1 = box
        arr[y0:y1, x0:x1] = 255
    return Image.fromarray(arr, "L")


def encode(img: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write_pairs(fs: Any, images: str, masks: str, items: dict[str, dict]) -> None:
    """items: relative key -> {"image": bytes, "mask": bytes | None, "ext": "jpg"}."""
    for key, item in items.items():
        fs.pipe_file(f"{images}/{key}.{item.get('ext', 'png')}", item["image"])
        if item.get("mask") is not None:
            fs.pipe_file(f"{masks}/{key}.png", item["mask"])


def tar_shard(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def parquet_shard(records: list[dict[str, Any]]) -> bytes:
    schema = pa.schema(
        [
            ("key", pa.string()),
            ("image", pa.binary()),
            ("mask", pa.binary()),
            ("reference", pa.binary()),
        ]
    )
    table = pa.table({name: [r.get(name) for r in records] for name in schema.names}, schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def good_item(seed: int, size: tuple[int, int] = (96, 72), fmt: str = "PNG") -> dict:
    ext = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tif"}[fmt]
    return {"image": encode(photo(seed, size), fmt), "mask": encode(box_mask(size)), "ext": ext}


def small_checkpoint(path: Any) -> str:
    """Random spl-small weights in the native format: the model path without trained weights."""
    import spl_model

    spl_model.save_generator(spl_model.build_generator("spl-small"), path)
    return str(path)


def png_with_every_filter(pixels: np.ndarray, compress_level: int = 6) -> bytes:
    """An 8-bit PNG (grey H×W or H×W×C) whose rows cycle through the five filter types (None,
    Sub, Up, Average, Paeth), written here by the PNG specification rather than a library."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    flat = pixels.reshape(pixels.shape[0], -1).astype(np.int64)
    rows = []
    for y, row in enumerate(flat):
        above = flat[y - 1] if y else np.zeros_like(row)
        kind = y % 5
        out = []
        for x, value in enumerate(row):
            a = row[x - channels] if x >= channels else 0
            b = above[x]
            c = above[x - channels] if x >= channels else 0
            p = a + b - c
            paeth = min((abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c))[2]
            out.append(value - (0, a, b, (a + b) // 2, paeth)[kind])
        rows.append(bytes([kind]) + bytes(v & 0xFF for v in out))
    color = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 8, color, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    body = zlib.compress(b"".join(rows), compress_level)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
