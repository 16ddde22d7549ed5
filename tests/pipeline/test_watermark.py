"""`spl watermark detect` and `--mask-template auto` through the pipeline, on a stamped archive
where the truth is known (tests/watermarks.py)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from pipeline import RestoreConfig, run_restore
from pipeline.config import ConfigError
from pipeline.stages.template import place_template
from pipeline.watermark import DetectConfig, detect_watermark
from spl_model.metrics import psnr
from tests.watermarks import natural_crops, stamp

RESTORED = 30  # images of one size restored end to end (the model runs on CPU here)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    stamped = stamp(150)
    root = tmp_path_factory.mktemp("stamped")
    for i, image in enumerate(stamped.images):
        Image.fromarray(image).save(root / f"{i:03d}.png")
    return root, stamped


def test_detection_writes_a_template_that_fits_every_size(ray_local, archive, tmp_path):
    root, stamped = archive
    out = tmp_path / "detect"
    detection = detect_watermark(DetectConfig(images=str(root), output=str(out)))
    assert detection.found, detection.message
    spec = yaml.safe_load((out / "placement.yaml").read_text())
    assert spec["mask_anchor"] == "bottom-right" and "mask_scale" not in spec  # fixed pixels
    for name in ("template.png", "alpha.png", "preview.png", "detection.json"):
        assert (out / name).stat().st_size > 0
    template = (out / "template.png").read_bytes()
    offset = tuple(spec["mask_offset"].split(","))
    for i in range(3):  # one image of each size, not jittered
        i = next(j for j in range(i, 150, 3) if stamped.shifts[j] == (0, 0))
        hole = place_template(template, stamped.masks[i].shape, "bottom-right", offset)
        truth = stamped.masks[i]
        assert (hole & truth).sum() / (hole | truth).sum() >= 0.85


def test_auto_template_restores_every_image_better_than_the_stamped_input(
    ray_local, archive, tmp_path
):
    root, stamped = archive
    subset = tmp_path / "subset"
    subset.mkdir()
    chosen = list(range(1, 150, 3))[:RESTORED]  # all 256x256; about a third jittered
    for i in chosen:
        (subset / f"{i:03d}.png").write_bytes((root / f"{i:03d}.png").read_bytes())
    out = tmp_path / "out"
    summary = run_restore(RestoreConfig.from_dict(
        {"images": str(subset), "mask_template": "auto", "output": str(out),
         "progress_bars": False, "batch_size": 8}
    ))  # fmt: skip
    assert summary["counts"]["ok"] == RESTORED, summary["counts"]
    assert (out / "watermark" / "template.png").exists()
    rows = {r["key"]: r for r in pq.read_table(out / "stats").to_pylist()}
    assert sum(stamped.shifts[i] != (0, 0) for i in chosen) >= 5
    for i in chosen:
        row = rows[f"{i:03d}"]
        dx, dy = (int(v) for v in row["mask_shift"].split(","))
        assert max(abs(dx - stamped.shifts[i][0]), abs(dy - stamped.shifts[i][1])) <= 2
        assert row["mask_score"] > 0.3
        restored = np.asarray(Image.open(out / "images" / f"{i:03d}.png").convert("RGB"))
        original = stamped.originals[i]
        assert psnr(restored, original) > psnr(stamped.images[i], original), i


def test_an_archive_without_a_watermark_gets_no_template_and_no_blind_fill(ray_local, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    for i, image in enumerate(natural_crops(48, seed=4)):
        Image.fromarray(image).save(clean / f"{i:02d}.jpg", quality=92)
    detection = detect_watermark(DetectConfig(images=str(clean), output=str(tmp_path / "det")))
    assert not detection.found and "no consistent watermark" in detection.message
    assert not (tmp_path / "det" / "template.png").exists()
    with pytest.raises(ConfigError, match="no consistent watermark"):
        run_restore(RestoreConfig.from_dict(
            {"images": str(clean), "mask_template": "auto", "output": str(tmp_path / "out")}
        ))  # fmt: skip


def test_a_light_mark_is_de_blended_with_the_detected_opacity(ray_local, archive, tmp_path):
    """The 45 %-opaque logo: restoring with the placement's `mask_alpha` recovers the photo
    under the mark better than filling the whole mark, and writes nothing outside the hole."""
    root, stamped = archive
    detect_watermark(DetectConfig(images=str(root), output=str(tmp_path / "det")))
    placement = (tmp_path / "det" / "placement.yaml").read_text()
    spec = yaml.safe_load(placement)
    assert spec["mark_color"] == "white" and "mask_alpha" not in spec  # opt-in: a comment
    assert f"# mask_alpha: {tmp_path / 'det' / 'alpha.png'}" in placement
    spec["mask_alpha"] = str(tmp_path / "det" / "alpha.png")
    subset = tmp_path / "subset"
    subset.mkdir()
    chosen = [i for i in range(1, 150, 3) if stamped.shifts[i] == (0, 0)][:12]
    for i in chosen:
        (subset / f"{i:03d}.png").write_bytes((root / f"{i:03d}.png").read_bytes())
    template = (tmp_path / "det" / "template.png").read_bytes()
    offset = tuple(spec["mask_offset"].split(","))
    scores = {}
    for name, extra in (("fill", {"mask_alpha": None}), ("deblend", {})):
        out = tmp_path / name
        summary = run_restore(RestoreConfig.from_dict(
            {**spec, **extra, "images": str(subset), "output": str(out), "batch_size": 12,
             "engine": "opencv-telea", "progress_bars": False, "mask_search": 0}
        ))  # fmt: skip
        assert summary["counts"]["ok"] == len(chosen), summary["counts"]
        scores[name] = []
        for i in chosen:
            restored = np.asarray(Image.open(out / "images" / f"{i:03d}.png").convert("RGB"))
            placed = place_template(template, restored.shape[:2], "bottom-right", offset)
            np.testing.assert_array_equal(restored[~placed], stamped.images[i][~placed])
            hole = stamped.masks[i]
            scores[name].append(psnr(restored[hole], stamped.originals[i][hole]))
    assert np.mean(scores["deblend"]) > np.mean(scores["fill"]) + 1.0, scores



def test_an_opacity_map_of_another_size_than_its_template_is_refused(ray_local, tmp_path):
    photos = tmp_path / "in"
    photos.mkdir()
    Image.fromarray(natural_crops(1)[0]).save(photos / "a.png")
    Image.fromarray(np.full((30, 120), 255, np.uint8)).save(tmp_path / "wm.png")
    Image.fromarray(np.full((30, 40), 128, np.uint8)).save(tmp_path / "alpha.png")
    with pytest.raises(ConfigError, match=r"mask_alpha.*40x30 but the mask template is 120x30"):
        run_restore(RestoreConfig.from_dict(
            {"images": str(photos), "mask_template": str(tmp_path / "wm.png"),
             "mask_anchor": "bottom-right", "mask_alpha": str(tmp_path / "alpha.png"),
             "output": str(tmp_path / "out"), "engine": "opencv-telea"}
        ))  # fmt: skip
