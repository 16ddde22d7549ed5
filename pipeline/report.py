"""One self-contained HTML page about a restore output: runs, errors, distributions, galleries.

Reads OUT/runs/*.json and the stats Parquet (columns only, never every image); fetches images
only for the gallery thumbnails: a seeded random sample of restored items and the worst items by
seam score. Images and plots are embedded as data URIs, so the file opens offline.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import posixpath
import random
import re
import tarfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from .ledger import latest_rows
from .storage import filesystem, read_bytes

log = logging.getLogger(__name__)
HISTOGRAMS = (
    ("hole_ratio", "hole ratio"),
    ("total_ms", "time per item (ms)"),
    ("seam_ratio", "seam ratio (≈1 invisible, higher = visible seam)"),
    ("fill_delta", "fill vs surroundings: colour difference (0-255)"),
    ("psnr", "PSNR (dB, against reference)"),
    ("ssim", "SSIM (against reference)"),
)


@dataclass
class ReportOptions:
    sample: int = 24  # random restored items in the sample gallery
    worst: int = 12  # items with the highest seam ratio
    thumb: int = 220  # thumbnail long side, px
    seed: int = 0
    storage_options: dict[str, Any] | None = None


def build_report(output: str, options: ReportOptions | None = None) -> str:
    """The HTML page for the restore output at `output`."""
    opts = options or ReportOptions()
    so = opts.storage_options or {}
    runs = _runs(output, so)
    stats = latest_rows(output, so)  # columns only: a million rows stay a few hundred MB
    ok = stats.filter(pc.equal(stats["status"], "ok"))
    rng = random.Random(opts.seed)
    sample = ok.take(sorted(rng.sample(range(ok.num_rows), min(opts.sample, ok.num_rows))))
    scored = ok.filter(pc.is_valid(ok["seam_ratio"]))
    order = pc.sort_indices(scored, sort_keys=[("seam_ratio", "descending")])
    worst = scored.take(order[: opts.worst])
    sections = [
        _runs_section(runs, stats),
        _errors_section(stats),
        _histograms_section(stats),
        _gallery("Random sample of restored items", sample.to_pylist(), opts, so, "sample"),
        _gallery("Worst items by seam ratio", worst.to_pylist(), opts, so, "worst"),
    ]
    title = f"spl-restore report: {html.escape(output)}"
    return PAGE.format(title=title, body="\n".join(sections))


def write_report(output: str, destination: str | None = None, options: ReportOptions | None = None):
    """Build the page and write it (default OUT/report.html); returns where it went."""
    opts = options or ReportOptions()
    page = build_report(output, opts).encode()
    target = destination or posixpath.join(output.rstrip("/"), "report.html")
    fs, path = filesystem(target, opts.storage_options)
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    fs.pipe_file(path, page)
    return target


def _runs(output: str, so: dict[str, Any]) -> list[dict[str, Any]]:
    fs, root = filesystem(output, so)
    folder = posixpath.join(root, "runs")
    if not fs.exists(folder):
        return []
    runs = []
    for path in sorted(fs.find(folder)):
        if path.endswith(".json"):
            try:
                runs.append(json.loads(read_bytes(fs, path)))
            except (ValueError, OSError) as exc:
                log.warning("unreadable run summary %s: %s", path, exc)
    return sorted(runs, key=lambda r: r.get("started_at", ""))


def _runs_section(runs: list[dict[str, Any]], stats: pa.Table) -> str:
    counts = {d["values"]: d["counts"] for d in pc.value_counts(stats["status"]).to_pylist()}
    current = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no items"
    lines = [
        "<h2>Runs</h2>",
        f"<p>Items in this output: <b>{stats.num_rows}</b> ({html.escape(current)}).</p>",
        "<table><tr><th>run</th><th>status</th><th>engine</th><th>model</th><th>listed</th>"
        "<th>ok</th><th>error</th><th>skipped</th><th>already done</th><th>wall</th>"
        "<th>images/s</th></tr>",
    ]
    for run in runs:
        counts = run.get("counts", {})
        lines.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    run.get("run_id"),
                    run.get("status"),
                    run.get("engine"),
                    str(run.get("model_id", ""))[:12],
                    counts.get("listed", ""),
                    counts.get("ok", ""),
                    counts.get("error", ""),
                    counts.get("skipped", ""),
                    counts.get("already_done", ""),
                    f"{run.get('wall_s', 0):.1f} s" if run.get("wall_s") is not None else "",
                    run.get("images_per_s", ""),
                )
            )
            + "</tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


def _errors_section(stats: pa.Table) -> str:
    errors = stats.filter(pc.equal(stats["status"], "error")).select(["key", "error"]).to_pylist()
    if not errors:
        return "<h2>Errors</h2><p>No errors.</p>"
    groups: dict[str, list[str]] = {}
    for r in errors:
        groups.setdefault(_error_kind(r.get("error") or ""), []).append(r["key"])
    lines = [
        "<h2>Errors</h2>",
        "<table><tr><th>count</th><th>message</th><th>example keys</th></tr>",
    ]
    for message, keys in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        examples = ", ".join(html.escape(k) for k in keys[:3])
        lines.append(
            f"<tr><td>{len(keys)}</td><td>{html.escape(message)}</td><td>{examples}</td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


def _error_kind(message: str) -> str:
    """Group messages that differ only in numbers, sizes or quoted names."""
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    return re.sub(r"\d+", "N", message)[:300]


def _histograms_section(stats: pa.Table) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    for column, label in HISTOGRAMS:
        if column not in stats.column_names:
            continue
        values = stats[column].drop_null().to_numpy().astype(float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=90)
        ax.hist(values, bins=min(40, max(5, int(np.sqrt(values.size)))), color="#3b6ea8")
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("items", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        figures.append(f'<img class="plot" alt="{html.escape(label)}" src="{uri}">')
    return "<h2>Distributions</h2>\n" + ("\n".join(figures) or "<p>No restored items yet.</p>")


def _gallery(
    title: str, rows: list[dict[str, Any]], opts: ReportOptions, so: dict[str, Any], kind: str
) -> str:
    cards = []
    for r in rows:
        cells = []
        for label, uri in (
            ("before", r.get("image_uri")),
            ("mask", r.get("mask_uri")),
            ("after", r.get("output_uri")),
        ):
            thumb = _thumbnail(uri, opts.thumb, so) if uri else None
            cells.append(
                f'<figure><img src="{thumb}" alt="{label}">'
                f"<figcaption>{label}</figcaption></figure>"
                if thumb
                else f'<figure class="missing"><span>{label}: unavailable</span></figure>'
            )
        facts = f"hole {100 * (r.get('hole_ratio') or 0):.1f}%"
        if r.get("seam_ratio") is not None:
            facts += f" · seam {r['seam_ratio']:.2f}"
        if r.get("psnr") is not None:
            facts += f" · PSNR {r['psnr']:.1f}"
        cards.append(
            f'<div class="card"><div class="key">{html.escape(r["key"])}</div>'
            f'<div class="row">{"".join(cells)}</div><div class="facts">{facts}</div></div>'
        )
    body = "\n".join(cards) or "<p>No items.</p>"
    return f'<h2>{html.escape(title)}</h2>\n<div class="gallery" id="{kind}">{body}</div>'


def _thumbnail(uri: str, size: int, so: dict[str, Any]) -> str | None:
    try:
        data = fetch_item_bytes(uri, so)
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at reduced scale
            thumb = img.convert("RGB")
            thumb.thumbnail((size, size))
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG", quality=80)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    except Exception as exc:  # a missing or unreadable input must not break the page
        log.info("no thumbnail for %s: %s", uri, exc)
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


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }}
th {{ background: #f2f2f2; }}
.plot {{ margin: 4px; border: 1px solid #ddd; }}
.gallery {{ display: flex; flex-wrap: wrap; gap: 12px; }}
.card {{ border: 1px solid #ddd; padding: 6px; border-radius: 4px; }}
.card .row {{ display: flex; gap: 4px; }}
.card figure {{ margin: 0; text-align: center; }}
.card img {{ max-width: 220px; max-height: 220px; display: block; }}
.card .key {{ font-family: monospace; font-size: 12px; max-width: 672px; overflow-wrap: anywhere; }}
.card .facts {{ font-size: 12px; color: #555; }}
.missing {{ width: 120px; height: 80px; background: #f6f6f6; display: flex; align-items: center;
  justify-content: center; font-size: 11px; color: #888; }}
</style></head>
<body><h1>{title}</h1>
{body}
<script>
window.addEventListener("load", () => {{
  const imgs = Array.from(document.images);
  document.body.dataset.images = String(imgs.length);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0);
  document.body.dataset.imagesOk = String(ok.length);
}});
</script>
</body></html>
"""
