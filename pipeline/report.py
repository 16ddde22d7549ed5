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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .ledger import latest_rows
from .previews import load_item, thumbnail_layers, zoom_layers
from .storage import filesystem, read_bytes

log = logging.getLogger(__name__)
HISTOGRAMS = (
    ("hole_ratio", "hole ratio"),
    ("total_ms", "time per item (ms)"),
    ("seam_ratio", "seam ratio (step at the hole's edge / step around it)"),
    ("fill_delta", "fill vs surroundings: colour difference (0-255)"),
    ("fill_texture", "fill texture (its spread / the surroundings')"),
    ("psnr", "PSNR (dB, against reference)"),
    ("ssim", "SSIM (against reference)"),
)
# Where to look, from bench/quality_thresholds.py (17 photos, none of the evaluation set, 4 stamp
# kinds each, every hole filled 5 ways): these lines flag 4 % of the true pixels and 10 % of Telea's
# fills, and 98-100 % of flat fills, fills 25 levels too bright and marks left in place.
THRESHOLDS: dict[str, tuple[tuple[str, float, str], ...]] = {
    "seam_ratio": ((">", 1.5, "a visible seam at the hole's edge"),),
    "fill_delta": ((">", 10.0, "a colour cast, a foreign object or the mark left in"),),
    "fill_texture": (
        ("<", 0.5, "a flat or smeared fill"),
        (">", 2.0, "busier than around it: the mark left in?"),
    ),
}


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
    sections = [
        _runs_section(runs, stats),
        _errors_section(stats),
        _histograms_section(stats),
        OUTLINE_SWITCH,
        *_galleries(ok, opts, so),
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

    figures, notes = [], []
    for column, label in HISTOGRAMS:
        if column not in stats.column_names:
            continue
        values = stats[column].drop_null().to_numpy().astype(float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=90)
        ax.hist(values, bins=min(40, max(5, int(np.sqrt(values.size)))), color="#3b6ea8")
        for op, line, meaning in THRESHOLDS.get(column, ()):
            flagged = int(crosses(values, op, line).sum())
            ax.axvline(line, color="#d62728", linestyle="--", linewidth=1)
            notes.append(
                f"<li><b>{html.escape(label.split(' (')[0])} {html.escape(op)} {line:g}</b> "
                f"({html.escape(meaning)}): <b>{flagged}</b> of {values.size} items</li>"
            )
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("items", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        figures.append(f'<img class="plot" alt="{html.escape(label)}" src="{uri}">')
    if not figures:
        return "<h2>Distributions</h2>\n<p>No restored items yet.</p>"
    advice = ""
    if notes:
        advice = (
            '<p>Dashed lines: where to look. Good fills (the true pixels, OpenCV\'s) mostly stay '
            "on the quiet side of each; items across one are worth a look (the highest seam "
            'ratios are in the first gallery below).</p><ul class="thresholds">'
            + "".join(notes)
            + "</ul>"
        )
    return "<h2>Distributions</h2>\n" + "\n".join(figures) + advice


def crosses(values: np.ndarray, op: str, line: float) -> np.ndarray:
    """Which values are past a THRESHOLDS line (`op` is ">" or "<")."""
    return values > line if op == ">" else values < line


def _galleries(ok: pa.Table, opts: ReportOptions, so: dict[str, Any]) -> list[str]:
    """The items with the highest seam ratio, and a random sample of the others; one gallery
    of every item when they all fit, so that nothing is shown twice."""
    scored = ok.filter(pc.is_valid(ok["seam_ratio"]))
    order = pc.sort_indices(scored, sort_keys=[("seam_ratio", "descending")])
    if ok.num_rows <= opts.sample + opts.worst:
        unscored = ok.filter(pc.is_null(ok["seam_ratio"])).to_pylist()
        rows = scored.take(order).to_pylist() + unscored
        title = f"All {ok.num_rows} restored items, highest seam ratio first"
        return [_gallery(title, rows, opts, so, "all")]
    worst = scored.take(order[: opts.worst])
    others = ok.filter(pc.invert(pc.is_in(ok["key"], worst["key"])))
    rng = random.Random(opts.seed)
    picked = sorted(rng.sample(range(others.num_rows), min(opts.sample, others.num_rows)))
    return [
        _gallery("Highest seam ratio", worst.to_pylist(), opts, so, "worst"),
        _gallery("Random sample of the other restored items", others.take(picked).to_pylist(),
                 opts, so, "sample"),
    ]  # fmt: skip


def _gallery(
    title: str, rows: list[dict[str, Any]], opts: ReportOptions, so: dict[str, Any], kind: str
) -> str:
    cards = [_card(row, f"{kind}-{i}", opts, so) for i, row in enumerate(rows)]
    body = "\n".join(cards) or "<p>No items.</p>"
    return f'<h2>{html.escape(title)}</h2>\n<div class="gallery" id="{kind}">{body}</div>'


def _card(row: dict[str, Any], ident: str, opts: ReportOptions, so: dict[str, Any]) -> str:
    """One item: after over before with a slider between them, the hole outlined; a click opens
    the hole at full size (also reached by the page address #full=<ident>)."""
    pictures = load_item(row, so)
    facts = f"hole {100 * (row.get('hole_ratio') or 0):.1f}%"
    for column, label, digits in (("seam_ratio", "seam", 2), ("fill_delta", "fill Δ", 1),
                                  ("psnr", "PSNR", 1)):  # fmt: skip
        if row.get(column) is not None:
            facts += f" · {label} {row[column]:.{digits}f}"
    key = f'<div class="key">{html.escape(row["key"])}</div>'
    facts = f'<div class="facts">{facts}</div>'
    if pictures.after is None:
        missing = '<div class="missing">output unavailable</div>'
        return f'<div class="card" id="{ident}">{key}{missing}{facts}</div>'
    thumbs = _frame(thumbnail_layers(pictures, opts.thumb), pictures.after.shape)
    zoom, caption = zoom_layers(pictures)
    full = ""
    if zoom:
        full = (
            f'<template class="full"><div class="key">{html.escape(row["key"])}</div>'
            f'{_frame(zoom, None)}<div class="facts">{html.escape(caption)}</div></template>'
        )
    return f'<div class="card" id="{ident}">{key}{thumbs}{facts}{full}</div>'


def _frame(layers: dict[str, str], shape: tuple[int, ...] | None) -> str:
    """Stacked before / after / outline images and the slider that moves the line between
    before (left) and after (right)."""
    ratio = f' style="aspect-ratio: {shape[1]} / {shape[0]}"' if shape else ""
    images = "".join(
        f'<img class="{name}" alt="{name}" src="{layers[name]}">'
        for name in ("before", "after", "outline")
        if name in layers
    )
    slider = (
        '<input class="slider" type="range" min="0" max="100" value="50" '
        'aria-label="before (left) | after (right)">'
        if "before" in layers
        else ""
    )
    return f'<div class="frame"{ratio}>{images}</div>{slider}'


OUTLINE_SWITCH = (
    '<p class="switch"><label><input type="checkbox" id="outlines" checked> outline the hole'
    "</label> · drag a picture's slider to compare before (left) and after (right); click a "
    "picture to see its hole at full size</p>"
)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }}
th {{ background: #f2f2f2; }}
.plot {{ margin: 4px; border: 1px solid #ddd; }}
.thresholds li {{ margin: 2px 0; }}
.gallery {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr));
  gap: 14px; align-items: start; }}
.card {{ border: 1px solid #ddd; padding: 6px; border-radius: 4px; background: #fff; }}
.card .key {{ font-family: monospace; font-size: 12px; overflow-wrap: anywhere; }}
.card .facts {{ font-size: 12px; color: #555; }}
.frame {{ position: relative; width: 100%; background: #111; cursor: zoom-in; --at: 50%; }}
.frame img {{ position: absolute; inset: 0; width: 100%; height: 100%; display: block; }}
.frame img.after {{ clip-path: inset(0 0 0 var(--at)); }}
.frame:has(img.before)::after {{ content: ""; position: absolute; top: 0; bottom: 0;
  left: var(--at); width: 2px; margin-left: -1px; background: #fff; opacity: .8; }}
body.no-outlines img.outline {{ display: none; }}
.slider {{ width: 100%; margin: 4px 0 0; }}
.missing {{ height: 80px; background: #f6f6f6; display: flex; align-items: center;
  justify-content: center; font-size: 11px; color: #888; }}
dialog {{ max-width: 96vw; max-height: 96vh; overflow: auto; padding: 10px;
  border: 1px solid #888; }}
dialog .frame {{ cursor: default; max-width: 92vw; }}
dialog .frame img {{ image-rendering: pixelated; }}
dialog .close {{ float: right; }}
</style></head>
<body><h1>{title}</h1>
{body}
<dialog id="viewer"><button class="close" aria-label="close">close</button><div></div></dialog>
<script>
function slide(input) {{
  input.previousElementSibling.style.setProperty("--at", input.value + "%");
}}
document.addEventListener("input", e => {{
  if (e.target.classList.contains("slider")) slide(e.target);
  if (e.target.id === "outlines") document.body.classList.toggle("no-outlines", !e.target.checked);
}});
const viewer = document.getElementById("viewer");
function openFull(card) {{
  const full = card && card.querySelector("template.full");
  if (!full) return;
  const body = viewer.querySelector("div");
  body.replaceChildren(full.content.cloneNode(true));
  const frame = body.querySelector(".frame"), img = frame.querySelector("img");
  const size = () => {{  // whole pixels: 1:1, or magnified 2-4x when small, never blurred
    const w = img.naturalWidth, h = img.naturalHeight;
    const k = Math.max(1, Math.min(4, Math.floor(Math.min(
      0.9 * innerWidth / w, 0.8 * innerHeight / h))));
    frame.style.width = k * w + "px";
    frame.style.aspectRatio = w + " / " + h;
    if (k > 1) body.querySelector(".facts").append(` · shown at ${{k}}x`);
  }};
  if (img.complete) size(); else img.addEventListener("load", size);
  viewer.showModal();
  history.replaceState(null, "", "#full=" + card.id);  // a link to this view
}}
document.addEventListener("click", e => {{
  if (e.target.closest(".close")) {{ viewer.close(); history.replaceState(null, "", "#"); return; }}
  const frame = e.target.closest(".gallery .frame");
  if (frame) openFull(frame.closest(".card"));
}});
window.addEventListener("load", () => {{
  const imgs = Array.from(document.images);
  document.body.dataset.images = String(imgs.length);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0);
  document.body.dataset.imagesOk = String(ok.length);
  const asked = location.hash.match(/^#full=(.+)$/);
  if (asked) openFull(document.getElementById(asked[1]));
}});
</script>
</body></html>
"""
