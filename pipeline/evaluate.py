"""The paper's evaluation protocol, run through the restore pipeline for any number of engines.

1. Every photo under IMAGES is centre-cropped to a square and resized to 256² (as the release's
   test loader does); for each hole-ratio bucket (0-10%, ..., 50-60%) a free-form mask is drawn
   from a generator seeded by (seed, photo index, bucket): the same pairs on every run.
2. The pairs go into one Parquet shard (OUTPUT/inputs/pairs.parquet: key, image, mask,
   reference), so every engine sees identical inputs.
3. Each engine runs as an ordinary restore job (strategy `resize`, PNG output) into
   OUTPUT/engines/<name>/, which computes PSNR / SSIM / L1 of the composite against the
   reference (`spl_model.metrics`).
4. Per-image rows go to OUTPUT/results/results.parquet, bucket means to OUTPUT/table.md.
"""

from __future__ import annotations

import io
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageOps

from spl_model.masks import random_mask

from .config import RestoreConfig
from .ledger import latest_rows
from .run import run_restore
from .storage import atomic_write, filesystem, read_bytes
from .training.data import list_images

BUCKETS = [(i / 10, (i + 1) / 10) for i in range(6)]
RESULT_SCHEMA = pa.schema(
    [
        ("engine", pa.string()),
        ("key", pa.string()),
        ("bucket", pa.string()),
        ("hole_ratio", pa.float64()),
        ("psnr", pa.float64()),
        ("ssim", pa.float64()),
        ("l1", pa.float64()),
    ]
)


@dataclass
class EvaluateConfig:
    images: str
    output: str
    engines: list[str] = field(default_factory=list)  # OpenCV engine names
    checkpoints: list[str] = field(default_factory=list)  # SPL weights, one engine each
    seed: int = 0
    limit: int | None = None  # at most this many photos
    batch_size: int = 8
    storage_options: dict[str, Any] = field(default_factory=dict)


def bucket_name(low: float, high: float) -> str:
    return f"{round(low * 100)}-{round(high * 100)}%"


def build_pairs(config: EvaluateConfig) -> set[str]:
    """Write OUTPUT/inputs/pairs.parquet; returns the pairs' keys."""
    files = list_images(config.images, config.storage_options)[: config.limit]
    fs, _ = filesystem(config.images, config.storage_options)
    keys, images, masks = [], [], []
    for index, path in enumerate(files):
        with Image.open(io.BytesIO(read_bytes(fs, path))) as img:
            photo = ImageOps.fit(ImageOps.exif_transpose(img).convert("RGB"), (256, 256))
        photo_png = _png(photo)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(path).stem)
        for b, (low, high) in enumerate(BUCKETS):
            rng = np.random.default_rng([config.seed, index, b])
            hole = random_mask(256, 256, rng, (low, high))
            keys.append(f"{bucket_name(low, high)}/{index:05d}_{stem}")
            images.append(photo_png)
            masks.append(_png(Image.fromarray(hole.astype(np.uint8) * 255)))
    table = pa.table({"key": keys, "image": images, "mask": masks, "reference": images})
    out_fs, root = filesystem(config.output, config.storage_options)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write(
        out_fs, posixpath.join(root, "inputs", "pairs.parquet"), sink.getvalue().to_pybytes()
    )
    return set(keys)


def run_evaluation(config: EvaluateConfig) -> tuple[pa.Table, str]:
    """Run every engine on the same pairs; returns (per-image rows, Markdown table)."""
    if not (config.engines or config.checkpoints):
        raise ValueError("name at least one --engine or --checkpoint to evaluate")
    keys = build_pairs(config)
    out_fs, root = filesystem(config.output, config.storage_options)
    results = []
    for name, spec in _engines(config):
        engine_out = f"{config.output.rstrip('/')}/engines/{name}"
        run_restore(
            RestoreConfig.from_dict(
                {
                    "images": f"{config.output.rstrip('/')}/inputs",
                    "format": "parquet",
                    "output": engine_out,
                    "strategy": "resize",
                    "output_format": "png",
                    "batch_size": config.batch_size,
                    "overwrite": True,  # new pairs (seed, photos, limit) reuse the same keys
                    "storage_options": config.storage_options,
                    **spec,
                }
            )
        )
        rows = latest_rows(engine_out, config.storage_options)
        results.append(_result_rows(name, rows, keys))
    table = pa.concat_tables(results)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write(
        out_fs, posixpath.join(root, "results", "results.parquet"), sink.getvalue().to_pybytes()
    )
    markdown = bucket_table(table)
    atomic_write(out_fs, posixpath.join(root, "table.md"), markdown.encode())
    return table, markdown


def bucket_table(table: pa.Table) -> str:
    """Mean PSNR / SSIM / L1 per (bucket, engine) as a Markdown table."""
    rows = table.to_pylist()
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    lines = [
        "| hole ratio | " + " | ".join(f"{e} PSNR / SSIM / L1" for e in engines) + " | images |",
        "| --- | " + " | ".join("---" for _ in engines) + " | --- |",
    ]
    for low, high in BUCKETS:
        name = bucket_name(low, high)
        cells, count = [], 0
        for engine in engines:
            mine = [r for r in rows if r["bucket"] == name and r["engine"] == engine]
            mine = [r for r in mine if r["psnr"] is not None]
            count = max(count, len(mine))
            if not mine:
                cells.append("–")
                continue
            finite = [r["psnr"] for r in mine if np.isfinite(r["psnr"])]
            cells.append(
                f"{np.mean(finite):.2f} / {np.mean([r['ssim'] for r in mine]):.4f} / "
                f"{np.mean([r['l1'] for r in mine]):.4f}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {count} |")
    return "\n".join(lines) + "\n"


def _engines(config: EvaluateConfig) -> list[tuple[str, dict[str, Any]]]:
    chosen: list[tuple[str, dict[str, Any]]] = [(e, {"engine": e}) for e in config.engines]
    for checkpoint in config.checkpoints:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(checkpoint.split("?")[0]).stem)
        chosen.append((f"spl-{stem}", {"engine": "spl", "checkpoint": checkpoint}))
    names = [name for name, _ in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"engine names must differ, got {names}")
    return chosen


def _result_rows(engine: str, stats: pa.Table, keys: set[str]) -> pa.Table:
    """This run's pairs only (the pipeline prefixes keys with the shard name `pairs/`)."""
    rows = [
        r
        for r in stats.to_pylist()
        if r["status"] == "ok" and r["key"].removeprefix("pairs/") in keys
    ]
    return pa.table(
        {
            "engine": [engine] * len(rows),
            "key": [r["key"] for r in rows],
            "bucket": [_bucket_of(r["key"]) for r in rows],
            "hole_ratio": [r["hole_ratio"] for r in rows],
            "psnr": [r["psnr"] for r in rows],
            "ssim": [r["ssim"] for r in rows],
            "l1": [r["l1"] for r in rows],
        },
        RESULT_SCHEMA,
    )


def _bucket_of(key: str) -> str:
    """The bucket folder of a pair's key (the pipeline prefixes keys with the shard name)."""
    found = re.search(r"(?:^|/)(\d+-\d+%)/", key)
    return found.group(1) if found else "unknown"


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()
