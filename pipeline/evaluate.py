"""Evaluation protocols, run through the restore pipeline for any number of engines.

`crops` (the paper's protocol, below) scores 256² crops; `archive` (pipeline/evaluate_archive.py)
stamps watermarks and objects on full-size photos and scores inside the hole.

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
import sys
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageOps

from spl_model.masks import random_mask
from spl_model.names import CLASSICAL_ENGINES

from . import evaluate_archive
from .config import RestoreConfig
from .ledger import latest_rows
from .progress import track
from .run import run_restore
from .storage import atomic_write, filesystem, read_bytes
from .training.data import list_images

BUCKETS = [(i / 10, (i + 1) / 10) for i in range(6)]
SCORE_SCHEMA = pa.schema(
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


PROTOCOLS = ("crops", "archive")
DEFAULT_ENGINES = ("default", "spl-small")  # names of the bundled model


@dataclass
class EvaluateConfig:
    images: str
    output: str
    engines: list[str] = field(default_factory=list)  # OpenCV names, or `default` (bundled)
    checkpoints: list[str] = field(default_factory=list)  # SPL weights, one engine each
    seed: int = 0
    limit: int | None = None  # at most this many photos
    batch_size: int = 8
    protocol: str = "crops"
    kinds: list[str] = field(default_factory=lambda: list(evaluate_archive.KINDS))
    max_side: int | None = None  # archive protocol: cap the photos' long side
    storage_options: dict[str, Any] = field(default_factory=dict)
    progress_bars: bool = True  # each step's progress on stderr (spl -q: none)


def bucket_name(low: float, high: float) -> str:
    return f"{round(low * 100)}-{round(high * 100)}%"


def build_pairs(config: EvaluateConfig) -> set[str]:
    """Write OUTPUT/inputs/pairs.parquet; returns the pairs' keys."""
    files = list_images(config.images, config.storage_options)[: config.limit]
    fs, _ = filesystem(config.images, config.storage_options)
    keys, images, masks = [], [], []
    for index, path in enumerate(
        track(files, "evaluate: cutting crops", show=config.progress_bars, unit="photos")
    ):
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
    if config.protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {config.protocol!r}")
    engines = _engines(config)
    out_fs, root = filesystem(config.output, config.storage_options)
    if config.protocol == "archive":
        items = evaluate_archive.build_archive_pairs(
            config.images, config.output, config.seed, config.kinds, config.limit,
            config.max_side, config.storage_options, show=config.progress_bars,
        )  # fmt: skip
        spec = evaluate_archive.restore_spec(config.output)
    else:
        keys = build_pairs(config)
        spec = {"images": f"{config.output.rstrip('/')}/inputs", "format": "parquet",
                "strategy": "resize", "output_format": "png"}  # fmt: skip
    results = []
    for number, (name, engine) in enumerate(engines, 1):
        engine_out = f"{config.output.rstrip('/')}/engines/{name}"
        if config.progress_bars:
            print(f"evaluate: engine {number}/{len(engines)}: {name}", file=sys.stderr)
        run_restore(
            RestoreConfig.from_dict(
                {
                    **spec,
                    "output": engine_out,
                    "batch_size": config.batch_size,
                    "overwrite": True,  # new pairs (seed, photos, limit) reuse the same keys
                    "storage_options": config.storage_options,
                    "progress_bars": config.progress_bars,
                    **engine,
                }
            )
        )
        if config.protocol == "crops":
            rows = latest_rows(engine_out, config.storage_options)
            results.append(_result_rows(name, rows, keys))
    if config.protocol == "archive":
        rows = evaluate_archive.score_engines(
            items, [name for name, _ in engines], config.images, config.output,
            config.max_side, config.storage_options, show=config.progress_bars,
        )  # fmt: skip
        table = pa.Table.from_pylist(rows, SCORE_SCHEMA)
        markdown = kind_table(table)
    else:
        table = pa.concat_tables(results)
        markdown = bucket_table(table)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write(
        out_fs, posixpath.join(root, "results", "results.parquet"), sink.getvalue().to_pybytes()
    )
    atomic_write(out_fs, posixpath.join(root, "table.md"), markdown.encode())
    return table, markdown


def kind_table(table: pa.Table) -> str:
    """Archive protocol: mean PSNR / SSIM inside the hole per (stamp kind, engine), and how the
    first model engine does against the better OpenCV engine of each item."""
    rows = table.to_pylist()
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    model = next((e for e in engines if e not in CLASSICAL_ENGINES), None)
    classical = [e for e in engines if e in CLASSICAL_ENGINES]
    compare = model is not None and bool(classical)
    header = "| stamp | " + " | ".join(f"{e} PSNR / SSIM" for e in engines)
    header += f" | {model} − best OpenCV (dB) | {model} wins |" if compare else " |"
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    kinds = list(dict.fromkeys(r["bucket"] for r in rows))
    for kind in [*kinds, "all"]:
        mine = [r for r in rows if kind in ("all", r["bucket"])]
        by = {(r["engine"], r["key"]): r for r in mine}
        keys = sorted({r["key"] for r in mine})
        cells = []
        for engine in engines:
            scores = [by[(engine, k)] for k in keys if (engine, k) in by]
            finite = [r["psnr"] for r in scores if np.isfinite(r["psnr"])]
            cells.append(
                f"{np.mean(finite):.2f} / {np.mean([r['ssim'] for r in scores]):.3f}"
                if scores else "–"
            )  # fmt: skip
        line = f"| {kind} | " + " | ".join(cells) + " |"
        if compare:
            pairs = [
                (by[(model, k)]["psnr"], max(by[(e, k)]["psnr"] for e in classical))
                for k in keys
                if (model, k) in by and all((e, k) in by for e in classical)
            ]
            gain = np.mean([a - b for a, b in pairs]) if pairs else float("nan")
            wins = sum(a > b for a, b in pairs)
            line += f" {gain:+.2f} | {wins} / {len(pairs)} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


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
    chosen: list[tuple[str, dict[str, Any]]] = []
    for name in config.engines:
        if name in DEFAULT_ENGINES:
            chosen.append((name, {"engine": "spl"}))  # no checkpoint: the bundled weights
        elif name in CLASSICAL_ENGINES:
            chosen.append((name, {"engine": name}))
        else:
            raise ValueError(
                f"unknown engine {name!r}; choose from {[*CLASSICAL_ENGINES, *DEFAULT_ENGINES]} "
                "(or pass SPL weights with --checkpoint)"
            )
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
        SCORE_SCHEMA,
    )


def _bucket_of(key: str) -> str:
    """The bucket folder of a pair's key (the pipeline prefixes keys with the shard name)."""
    found = re.search(r"(?:^|/)(\d+-\d+%)/", key)
    return found.group(1) if found else "unknown"


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()
