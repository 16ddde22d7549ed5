"""Pictures of restored items for people to judge: the report's layers and `--concat` strips.

An item's pictures come from its stats row (`image_uri`, `mask_uri`, `output_uri`): the input
and the mask upright as the pipeline saw them, and the output. From them:
- `outline`: the hole's edge as an RGBA layer, drawn over the photo instead of a separate mask;
- `thumbnail_layers`: before, after and outline at a thumbnail's size;
- `zoom_layers`: the same around the hole at full size (1:1, up to `ZOOM_MAX` px a side);
- `strip`: before | mask | after side by side (IOPaint's `--concat`).
"""

from __future__ import annotations

import base64
import io
import posixpath
import re
import tarfile
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq
from PIL import Image, ImageOps

from spl_model.masks import dilate, hole_box, prepare_mask

from .ledger import latest_rows
from .storage import atomic_write, filesystem, read_bytes

OUTLINE_RGB = (255, 40, 150)  # magenta: seen on skies, foliage and skin alike
ZOOM_MAX = 1024  # px: a hole's full-size view larger than this is shown scaled down
ZOOM_MARGIN = 64  # px of the photo around the hole in the full-size view


@dataclass
class ItemPictures:
    before: np.ndarray | None  # RGB, upright
    hole: np.ndarray | None  # bool, the before's size (None: no mask, or one of another size)
    after: np.ndarray | None  # RGB


def load_item(row: dict[str, Any], so: dict[str, Any]) -> ItemPictures:
    """An item's pictures; a missing or unreadable one is None (a page never breaks on it)."""
    before = _rgb(row.get("image_uri"), so, upright=True)
    after = _rgb(row.get("output_uri"), so, upright=False)
    hole = None
    if row.get("mask_uri") and before is not None:
        try:
            with Image.open(io.BytesIO(fetch_item_bytes(row["mask_uri"], so))) as mask:
                gray = ImageOps.exif_transpose(mask)
                if gray.size == (before.shape[1], before.shape[0]):  # not a placed template
                    hole = prepare_mask(gray, before.shape[:2])
        except Exception:
            hole = None
    if after is not None and before is not None and after.shape != before.shape:
        before, hole = None, None  # resized output: nothing lines up with it
    return ItemPictures(before, hole, after)


def outline(hole: np.ndarray, width: int = 2) -> np.ndarray:
    """RGBA: the pixels just outside the hole in OUTLINE_RGB, the rest transparent."""
    edge = dilate(hole, width) & ~hole
    layer = np.zeros((*hole.shape, 4), np.uint8)
    layer[edge] = (*OUTLINE_RGB, 255)
    return layer


def thumbnail_layers(pictures: ItemPictures, size: int) -> dict[str, str]:
    """Data URIs of before / after / outline, each fitted into `size` x `size`."""
    layers: dict[str, str] = {}
    for name in ("before", "after"):
        image = getattr(pictures, name)
        if image is not None:
            layers[name] = data_uri(_fit(image, size), "JPEG")
    if pictures.hole is not None:
        small = _fit(pictures.hole.astype(np.uint8) * 255, size) > 0
        layers["outline"] = data_uri(outline(small), "PNG")
    return layers


def zoom_layers(pictures: ItemPictures) -> tuple[dict[str, str], str]:
    """Before / after / outline around the hole at full size (or scaled to ZOOM_MAX), and a
    caption that says which part of the photo it is and at what scale."""
    if pictures.after is None or pictures.hole is None or (box := hole_box(pictures.hole)) is None:
        return {}, ""
    h, w = pictures.hole.shape
    x0, y0, x1, y1 = box
    x0, y0 = max(0, x0 - ZOOM_MARGIN), max(0, y0 - ZOOM_MARGIN)
    x1, y1 = min(w, x1 + ZOOM_MARGIN), min(h, y1 + ZOOM_MARGIN)
    scale = min(1.0, ZOOM_MAX / max(x1 - x0, y1 - y0))
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))

    def cut(image: np.ndarray) -> np.ndarray:
        part = image[y0:y1, x0:x1]
        return part if scale == 1.0 else cv2.resize(part, size, interpolation=cv2.INTER_AREA)

    layers = {"after": data_uri(cut(pictures.after), "JPEG", quality=90)}
    if pictures.before is not None:
        layers["before"] = data_uri(cut(pictures.before), "JPEG", quality=90)
    hole = cut(pictures.hole.astype(np.uint8) * 255) > 127
    layers["outline"] = data_uri(outline(hole), "PNG")
    where = f"x {x0}-{x1}, y {y0}-{y1} of {w}x{h}"
    caption = f"{where}, full size" if scale == 1.0 else f"{where}, scaled to {100 * scale:.0f}%"
    return layers, caption


def strip(pictures: ItemPictures, height: int = 512) -> np.ndarray | None:
    """before | mask | after at one height (white hole on black for the mask panel)."""
    if pictures.before is None or pictures.after is None or pictures.hole is None:
        return None
    h, w = pictures.after.shape[:2]
    scale = min(1.0, height / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    mask = np.repeat(pictures.hole[..., None].astype(np.uint8) * 255, 3, axis=2)
    panels = [
        cv2.resize(p, size, interpolation=cv2.INTER_AREA) if scale < 1 else p
        for p in (pictures.before, mask, pictures.after)
    ]
    gap = np.full((size[1], 8, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)


def write_strips(
    output: str,
    run_id: str,
    destination: str,
    limit: int,
    so: dict[str, Any] | None = None,
) -> int:
    """`strip`s of up to `limit` items restored by run `run_id` (first by key), as
    DESTINATION/<key>.jpg; returns how many were written."""
    import pyarrow.compute as pc

    so = so or {}
    rows = latest_rows(output, so)
    if rows.num_rows == 0:
        return 0
    mine = rows.filter(pc.and_(pc.equal(rows["run_id"], run_id), pc.equal(rows["status"], "ok")))
    fs, root = filesystem(destination, so)
    written = 0
    for row in mine.slice(0, limit).to_pylist():
        picture = strip(load_item(row, so))
        if picture is None:
            continue
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="JPEG", quality=90)
        atomic_write(fs, f"{root.rstrip('/')}/{_strip_name(row['key'])}", buffer.getvalue())
        written += 1
    return written


def _strip_name(key: str) -> str:
    """`key` as a relative .jpg path that cannot leave the destination (no `..`, no root)."""
    parts = [re.sub(r"[^\w.-]", "_", p) for p in key.split("/") if p not in ("", ".", "..")]
    stem = posixpath.splitext("/".join(parts))[0] if parts else ""
    return f"{stem or 'item'}.jpg"


def data_uri(image: np.ndarray, fmt: str, quality: int = 82) -> str:
    buffer = io.BytesIO()
    options = {"quality": quality} if fmt == "JPEG" else {"optimize": True}
    Image.fromarray(image).save(buffer, format=fmt, **options)
    mime = "jpeg" if fmt == "JPEG" else "png"
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )


def _rgb(uri: str | None, so: dict[str, Any], upright: bool) -> np.ndarray | None:
    if not uri:
        return None
    try:
        with Image.open(io.BytesIO(fetch_item_bytes(uri, so))) as img:
            return np.asarray((ImageOps.exif_transpose(img) if upright else img).convert("RGB"))
    except Exception:
        return None


def fetch_item_bytes(uri: str, so: dict[str, Any]) -> bytes:
    """Bytes behind a stats row's URI.

    Plain URLs, `shard.tar#member` (WebDataset), `file.parquet#row=N[/mask]` and
    `file.parquet#key=K` (Parquet).
    """
    base, _, fragment = uri.partition("#")
    fs, path = filesystem(base, so)
    if not fragment:
        return read_bytes(fs, path)
    if fragment.startswith("key="):
        with fs.open(path, "rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(columns=["key", "image"]):
                for record in batch.to_pylist():
                    if record["key"] == fragment[4:]:
                        return record["image"]
        raise KeyError(f"{uri}: no such key")
    found = re.fullmatch(r"row=(\d+)(/mask)?", fragment)
    if found:
        index, column = int(found.group(1)), "mask" if found.group(2) else "image"
        with fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            for group in range(parquet.num_row_groups):
                rows = parquet.metadata.row_group(group).num_rows
                if index < rows:
                    return parquet.read_row_group(group, columns=[column])[column][index].as_py()
                index -= rows
        raise KeyError(f"{uri}: no such row")
    with fs.open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r|*") as tar:
        for member in tar:
            if member.name == fragment and member.isfile():
                extracted = tar.extractfile(member)
                if extracted is not None:
                    return extracted.read()
    raise KeyError(f"{uri}: no such tar member")
