"""`spl train` on Ray Train (checkpoint, resume) and `spl evaluate` through the pipeline."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from skimage import data

from pipeline.evaluate import BUCKETS, EvaluateConfig, build_pairs, run_evaluation
from pipeline.training.data import make_sample
from pipeline.training.train import TrainConfig, read_latest, run_training
from spl_model import build_generator, load_generator, save_generator

TINY = dict(
    width=8, middle_blocks=1, dense_blocks=1, dense_layers=2, growth=8, recon_blocks=1,
    spade_hidden=8,
)  # fmt: skip


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in ("chelsea", "coffee", "astronaut"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_training_writes_native_checkpoints_and_resumes_where_it_stopped(
    ray_local, photos, tmp_path
):
    out = tmp_path / "train"
    config = dict(images=str(photos), output=str(out), model=TINY, batch_size=1, checkpoint_every=1)
    run_training(TrainConfig(steps=2, **config))
    first = read_latest(str(out))
    assert first["step"] == 2
    model = load_generator(out / "checkpoints" / "step-00000002" / "generator.safetensors")
    meta = model.spl_info["metadata"]
    assert meta["teacher"] == "efficientnet-lite0" and meta["step"] == 2
    assert model.config.teacher_channels == 40  # the prior head matches the teacher

    summary = run_training(TrainConfig(steps=3, **config))  # same OUTPUT: resumes at step 2
    assert summary["steps"] == 3
    final = load_generator(out / "generator.safetensors")
    assert final.spl_info["metadata"]["step"] == 3
    moved = any(
        not np.array_equal(a.numpy(), b.numpy())
        for a, b in zip(model.state_dict().values(), final.state_dict().values())
    )
    assert moved  # the resumed step trained the loaded weights further
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 3


def test_local_training_stops_at_its_time_limit_with_final_weights_and_validation(
    photos, tmp_path
):
    out = tmp_path / "local"
    config = TrainConfig(
        images=str(photos), output=str(out), model=TINY, launcher="local", prefill="telea",
        steps=10_000, time_limit_min=0.05, batch_size=1, loader_workers=0,
        val_images=str(photos), val_every=2, checkpoint_every=10_000, lr_schedule="cosine",
    )  # fmt: skip
    summary = run_training(config)
    assert 0 < summary["steps"] < 10_000  # stopped by the clock, not the step count
    final = load_generator(out / "generator.safetensors")
    assert final.config.prefill == "telea"
    assert final.spl_info["metadata"]["step"] == summary["steps"]
    lines = (out / "validation" / "log.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["step"] == summary["steps"]
    assert {"model_psnr_10-20%", "telea_psnr_20-30%", "model_ssim_20-30%"} <= set(last)
    grid = Image.open(out / "validation" / f"step-{last['step']:08d}.png")
    assert grid.size == (4 * 256, 6 * 256)  # masked | Telea | model | original, six pairs


def test_a_bad_training_option_is_refused_by_name(photos, tmp_path):
    with pytest.raises(ValueError, match="`prefill`"):
        TrainConfig(images=str(photos), output=str(tmp_path), prefill="lama")
    with pytest.raises(ValueError, match="`workers`"):
        TrainConfig(images=str(photos), output=str(tmp_path), launcher="local", workers=2)


def test_stamp_masks_train_on_native_scale_crops_with_watermark_shaped_holes():
    photo = data.astronaut()
    rng = np.random.default_rng(0)
    samples = [make_sample(photo, rng, (0.3, 0.4), stamp_masks=1.0) for _ in range(12)]
    for sample in samples:
        image, mask = sample["image"], sample["mask"].astype(bool)
        # a 256-px crop of the photo itself (maybe mirrored): no resize, strokes keep their width
        exact = []
        for crop in (image, np.ascontiguousarray(image[:, ::-1])):
            scores = cv2.matchTemplate(photo, crop, cv2.TM_SQDIFF)
            y, x = np.unravel_index(scores.argmin(), scores.shape)
            exact.append((photo[y : y + 256, x : x + 256] == crop).all())
        assert any(exact)
        assert 0 < mask.mean() < 0.3  # thin marks, not the 30-40 % free-form holes
    with pytest.raises(ValueError, match="`stamp_masks`"):
        TrainConfig(images="x", output="y", stamp_masks=1.5)


def test_evaluation_pairs_are_fixed_by_the_seed_and_fall_in_their_buckets(photos, tmp_path):
    def pairs(seed: int, name: str):
        build_pairs(EvaluateConfig(images=str(photos), output=str(tmp_path / name), seed=seed))
        return pq.read_table(tmp_path / name / "inputs" / "pairs.parquet")

    a, b, c = pairs(1, "a"), pairs(1, "b"), pairs(2, "c")
    assert a.num_rows == 3 * len(BUCKETS)
    assert a["mask"].to_pylist() == b["mask"].to_pylist()
    assert a["mask"].to_pylist() != c["mask"].to_pylist()
    for key, mask in zip(a["key"].to_pylist(), a["mask"].to_pylist()):
        low, high = (int(v) / 100 for v in key.split("/")[0].rstrip("%").split("-"))
        ratio = (np.asarray(Image.open(io.BytesIO(mask))) > 127).mean()
        assert low <= ratio <= high, key


def test_evaluation_scores_engines_side_by_side_per_bucket(ray_local, photos, tmp_path):
    checkpoint = tmp_path / "tiny.safetensors"
    save_generator(build_generator(TINY), checkpoint)
    out = tmp_path / "eval"
    config = EvaluateConfig(
        images=str(photos), output=str(out), engines=["opencv-telea", "opencv-ns"],
        checkpoints=[str(checkpoint)], limit=2,
    )  # fmt: skip
    table, markdown = run_evaluation(config)
    rows = pq.read_table(out / "results" / "results.parquet").to_pylist()
    assert len(rows) == table.num_rows == 3 * 2 * len(BUCKETS)
    assert {r["engine"] for r in rows} == {"opencv-telea", "opencv-ns", "spl-tiny"}
    assert all(r["psnr"] > 5 and 0 < r["ssim"] <= 1 and 0 <= r["l1"] < 1 for r in rows)
    lines = (out / "table.md").read_text().splitlines()
    assert lines == markdown.splitlines() and len(lines) == 2 + len(BUCKETS)
    telea = [r["psnr"] for r in rows if r["engine"] == "opencv-telea"]
    # Re-running into the same OUTPUT with another seed scores the new pairs, not the old rows.
    again, _ = run_evaluation(
        EvaluateConfig(
            images=str(photos), output=str(out), engines=["opencv-telea"], limit=1, seed=5
        )
    )
    assert again.num_rows == len(BUCKETS) and {r["engine"] for r in again.to_pylist()} == {
        "opencv-telea"
    }
    assert (
        again["psnr"].to_pylist() != [r["psnr"] for r in rows if r["engine"] == "opencv-telea"][:6]
    )
    by_bucket = {
        b: np.mean([r["psnr"] for r in rows if r["bucket"] == b and r["engine"] == "opencv-telea"])
        for b in ("0-10%", "50-60%")
    }
    assert len(telea) == 12 and by_bucket["0-10%"] > by_bucket["50-60%"]  # bigger holes score lower


def test_archive_protocol_stamps_full_size_photos_and_scores_inside_the_hole(
    ray_local, photos, tmp_path
):
    out = tmp_path / "archive"
    config = EvaluateConfig(
        images=str(photos), output=str(out), engines=["default", "opencv-telea"],
        protocol="archive", kinds=["text", "blob"], limit=2,
    )  # fmt: skip
    table, markdown = run_evaluation(config)
    rows = table.to_pylist()
    keys = {r["key"] for r in rows}
    assert len(rows) == 2 * 2 * 2 and {k.split("/")[0] for k in keys} == {"text", "blob"}
    assert {r["engine"] for r in rows} == {"default", "opencv-telea"}
    assert all(r["psnr"] > 10 and 0 < r["ssim"] <= 1 and 0 < r["hole_ratio"] < 0.1 for r in rows)
    # The stamped input is a JPEG at the photo's full size; each engine's output keeps it.
    for key in keys:
        stamped = Image.open(out / "inputs" / "archive" / "images" / f"{key}.jpg")
        source = Image.open(photos / f"{key.split('_', 1)[1]}.jpg")
        restored = Image.open(out / "engines" / "default" / "images" / f"{key}.jpg")
        assert stamped.size == source.size == restored.size
        strip = Image.open(out / "crops" / f"{key}.png")  # input, two engines, clean
        assert strip.height >= 4 * 22
    lines = markdown.splitlines()
    assert lines[2].startswith("| text |") and lines[-1].startswith("| all |")
    assert "default − best OpenCV" in lines[0] and (out / "table.md").read_text() == markdown
