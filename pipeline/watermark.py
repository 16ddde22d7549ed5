"""`spl watermark detect`: estimate the watermark an archive's images share, from a sample.

1. List the input as a restore job would (pairs, WebDataset, Parquet) and draw a seeded sample
   of items; Ray tasks read and decode them (EXIF orientation applied) to luminance.
2. Group the sample by pixel size; each group with at least `min_group` images is estimated
   (`spl_model.watermark.estimate`). Sizes too rare for a group of their own are pooled by
   aspect ratio, resized to a common size (a mark placed relative to the image).
3. The strongest estimate gives the template; its placement (anchor, offset, scale) is read off
   the box, pixel-fixed when the groups of different sizes agree on the offset in pixels,
   relative otherwise. Nothing consistent: a plain sentence, and no template is written.
Outputs in OUTPUT: template.png (white = hole), alpha.png (estimated opacity), placement.yaml
(a job-spec fragment for `spl restore --config`: template, placement, the mark's colour, and
the opacity map for de-blending as a commented, opt-in line), preview.png, detection.json.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import yaml
from PIL import Image, ImageDraw

from spl_model.watermark import Estimate, estimate, locate

from .config import ConfigError, RestoreConfig
from .ray_init import ensure_ray
from .stages.decode import ItemError, open_image
from .stages.read import read_units
from .stages.settings import ReadSettings
from .storage import atomic_write, filesystem, full_url
from .work import list_units

log = logging.getLogger(__name__)
SEARCH_PX = 8


@dataclass
class DetectConfig:
    images: str
    output: str
    sample: int = 400
    min_group: int = 16
    seed: int = 0
    format: str = "auto"
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if int(self.sample) < 2 or int(self.min_group) < 2:
            raise ConfigError("`sample` and `min_group` must be at least 2")


@dataclass
class Detection:
    found: bool
    message: str
    placement: dict[str, Any] = field(default_factory=dict)
    template: bytes = b""
    groups: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def detect_watermark(
    config: DetectConfig, progress: Callable[[int, int], None] | None = None
) -> Detection:
    """Sample, estimate and write the outputs; see the module docstring.

    `progress(done, total)` is called as the sample's read tasks finish."""
    start = time.time()
    images = sample_images(config, progress)
    if len(images) < config.min_group:
        raise ConfigError(
            f"only {len(images)} readable images sampled from {config.images!r}; the estimate "
            f"needs at least `min_group`={config.min_group}"
        )
    estimates = _estimate_groups(images, config.min_group)
    found = [e for e in estimates if e.found]
    groups = [_group_summary(e) for e in estimates]
    if not found:
        reasons = "; ".join(f"{g['size'][1]}x{g['size'][0]}: {g['reason']}" for g in groups)
        message = (
            f"no consistent watermark in {len(images)} sampled images ({reasons}); "
            "no template written"
        )
        detection = Detection(False, message, groups=groups, seconds=time.time() - start)
    else:
        best = max(found, key=lambda e: e.strength * np.sqrt(e.images))
        placement = _placement(best, found)
        template = _png(best.mask.astype(np.uint8) * 255)
        x0, y0, x1, y1 = best.box
        message = (
            f"watermark found in {len(found)} of {len(estimates)} size group(s) of "
            f"{len(images)} sampled images: {x1 - x0}x{y1 - y0} px at {placement['mask_anchor']}"
            f" offset {placement['mask_offset']}"
        )
        detection = Detection(True, message, placement, template, groups, time.time() - start)
        _write(config, detection, best, images)
    fs, root = filesystem(config.output, config.storage_options)
    report = {"found": detection.found, "message": detection.message,
              "placement": detection.placement, "groups": groups,
              "sampled": len(images), "seconds": round(detection.seconds, 2)}  # fmt: skip
    blob = json.dumps(report, indent=1).encode()
    atomic_write(fs, posixpath.join(root, "detection.json"), blob)
    log.info("%s (%.1f s)", detection.message, detection.seconds)
    return detection


def sample_images(
    config: DetectConfig, progress: Callable[[int, int], None] | None = None
) -> list[np.ndarray]:
    """A seeded sample of the input's items as luminance arrays, read and decoded in Ray tasks."""
    import ray

    probe = RestoreConfig.from_dict(
        {"images": config.images, "output": config.output, "format": config.format,
         "mask_template": "unused", "storage_options": config.storage_options}
    )  # fmt: skip
    units = [u for u in list_units(probe).units if u["kind"] != "invalid"]
    rng = random.Random(config.seed)
    rng.shuffle(units)
    if units and units[0]["kind"] == "pair":
        units = units[: config.sample]
    tasks = min(len(units), 16)
    chunks = [units[i::tasks] for i in range(tasks)]
    ensure_ray()  # local unless RAY_ADDRESS names a cluster
    task = ray.remote(_read_gray)
    per_task = -(-config.sample // max(len(chunks), 1)) + 1
    refs = [task.remote(chunk, config.storage_options, per_task) for chunk in chunks]
    images: list[np.ndarray] = []
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        images += ray.get(ready[0])
        if progress is not None:
            progress(len(refs) - len(pending), len(refs))
    return images[: config.sample]


def _read_gray(
    units: list[dict[str, Any]], storage_options: dict[str, Any], limit: int
) -> list[np.ndarray]:
    arrays = []
    table = pa.Table.from_pylist(units)
    for block in read_units(table, ReadSettings(storage_options, io_retries=3, batch_size=16)):
        for row in block.to_pylist():
            if row.get("status") or not row.get("image_bytes"):
                continue
            try:
                img, _ = open_image(row["image_bytes"], "image", 200_000_000)
            except ItemError:
                continue
            arrays.append(np.asarray(img.convert("L")))
            if len(arrays) >= limit:
                return arrays
    return arrays


def _estimate_groups(images: list[np.ndarray], min_group: int) -> list[Estimate]:
    by_size: dict[tuple[int, int], list[np.ndarray]] = {}
    for image in images:
        by_size.setdefault(image.shape[:2], []).append(image)
    estimates, rest = [], []
    for group in by_size.values():
        if len(group) >= min_group:
            estimates.append(estimate(group))
        else:
            rest += group
    by_aspect: dict[float, list[np.ndarray]] = {}
    for image in rest:
        by_aspect.setdefault(round(image.shape[1] / image.shape[0], 2), []).append(image)
    for group in by_aspect.values():
        if len(group) >= min_group:
            h, w = max(i.shape[:2] for i in group)
            resized = [np.asarray(Image.fromarray(i).resize((w, h), Image.Resampling.BILINEAR))
                       for i in group]  # fmt: skip
            found = estimate(resized)
            found.reason = found.reason or "pooled by aspect ratio"
            estimates.append(found)
    if not estimates:
        sizes = ", ".join(f"{w}x{h}: {len(g)}" for (h, w), g in by_size.items())
        estimates.append(Estimate(False, f"no size with {min_group}+ images ({sizes})",
                                  images[0].shape[:2], len(images)))  # fmt: skip
    return estimates


def _placement(best: Estimate, found: list[Estimate]) -> dict[str, Any]:
    """Anchor, offset and scale of the template as `spl restore` spec keys."""
    height, width = best.size
    x0, _, x1, _ = best.box
    anchor, dx, dy = _anchor_offset(best)
    others = [_anchor_offset(e) for e in found if e.size != best.size]
    disagree = any(abs(ox - dx) > 3 or abs(oy - dy) > 3 for _, ox, oy in others)
    relative = disagree or "pooled" in best.reason
    if relative:
        offset = f"{100 * dx / width:.2f}%,{100 * dy / height:.2f}%"
        scale: float | None = round((x1 - x0) / width, 5)
    else:
        offset, scale = f"{dx},{dy}", None
    return {"mask_anchor": anchor, "mask_offset": offset, "mask_scale": scale,
            "mask_search": SEARCH_PX, "mark_color": best.color}  # fmt: skip


def _axis(low: int, high: int, size: int, names: tuple[str, str]) -> tuple[str, int]:
    centre = (low + high) / 2
    if centre < size / 3:
        return names[0], low
    if centre > 2 * size / 3:
        return names[1], size - high
    return "", low - (size - (high - low)) // 2


def _anchor_offset(e: Estimate) -> tuple[str, int, int]:
    """The anchor nearest to the estimate's box, and the box's (x, y) offset from it in px."""
    x0, y0, x1, y1 = e.box
    horizontal, dx = _axis(x0, x1, e.size[1], ("left", "right"))
    vertical, dy = _axis(y0, y1, e.size[0], ("top", "bottom"))
    return "-".join(p for p in (vertical, horizontal) if p) or "center", dx, dy


def _group_summary(e: Estimate) -> dict[str, Any]:
    return {"size": list(e.size), "images": e.images, "found": e.found, "reason": e.reason,
            "strength": round(e.strength, 3), "box": list(e.box) if e.found else None}  # fmt: skip


def _write(config: DetectConfig, detection: Detection, best: Estimate, images: list) -> None:
    fs, root = filesystem(config.output, config.storage_options)
    template_path = posixpath.join(root, "template.png")
    atomic_write(fs, template_path, detection.template)
    alpha = np.rint(best.alpha * 255).astype(np.uint8)
    alpha_path = posixpath.join(root, "alpha.png")
    atomic_write(fs, alpha_path, _png(alpha))
    spec = {"mask_template": full_url(fs, template_path),
            **{k: v for k, v in detection.placement.items() if v is not None}}  # fmt: skip
    opt_in = (  # de-blending measured better on textured photos, worse on smooth ones
        "# De-blend the light parts of the mark instead of filling them (README, 'De-blending'):\n"
        f"# mask_alpha: {full_url(fs, alpha_path)}\n"
    )
    placement = yaml.safe_dump(spec) + opt_in
    atomic_write(fs, posixpath.join(root, "placement.yaml"), placement.encode())
    atomic_write(fs, posixpath.join(root, "preview.png"), preview(best, images))


def preview(best: Estimate, images: list[np.ndarray], samples: int = 6) -> bytes:
    """The estimate (opacity, enlarged) above sample images with the located outline in red."""
    x0, y0, x1, y1 = best.box
    tile = 320
    alpha = Image.fromarray(np.rint(best.alpha / max(float(best.alpha.max()), 1e-6) * 255)
                            .astype(np.uint8)).convert("RGB")  # fmt: skip
    alpha = alpha.resize((tile, max(1, round(tile * alpha.height / alpha.width))),
                         Image.Resampling.NEAREST)  # fmt: skip
    same = [i for i in images if i.shape[:2] == best.size][:samples]
    shots = []
    for image in same:
        dx, dy, score = locate(image, best.alpha, (x0, y0), SEARCH_PX)
        rgb = Image.fromarray(image).convert("RGB")
        draw = ImageDraw.Draw(rgb)
        draw.rectangle((x0 + dx - 1, y0 + dy - 1, x1 + dx, y1 + dy), outline=(255, 0, 0), width=2)
        draw.text((4, 4), f"score {score:.2f} shift {dx},{dy}", fill=(255, 0, 0))
        rgb.thumbnail((tile, tile))
        shots.append(rgb)
    columns = 3
    rows = (len(shots) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile, alpha.height + rows * tile), "white")
    sheet.paste(alpha, (0, 0))
    for i, shot in enumerate(shots):
        sheet.paste(shot, ((i % columns) * tile, alpha.height + (i // columns) * tile))
    return _png(sheet)


def _png(image: np.ndarray | Image.Image) -> bytes:
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, "PNG")
    return buffer.getvalue()


def resolve_auto_template(config: RestoreConfig) -> RestoreConfig:
    """`mask_template: auto`: detect the watermark on a sample of the job's own images into
    OUT/watermark/, then run with that template, its placement and a per-image search."""
    import dataclasses

    out = config.output.rstrip("/") + "/watermark"
    detection = detect_watermark(
        DetectConfig(images=config.images, output=out, format=config.format,
                     storage_options=config.storage_options)
    )  # fmt: skip
    if not detection.found:
        raise ConfigError(f"`mask_template` auto: {detection.message}")
    placement = detection.placement
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    fields.update(placement, mask_template=out + "/template.png")
    fields["mask_search"] = config.mask_search or placement["mask_search"]
    return RestoreConfig.from_dict(fields)  # validated again, like any spec
