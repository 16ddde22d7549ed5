"""The Inpainter: what users see when they hand it images and masks of any size and format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spl_model import Inpainter, MaskError


@pytest.fixture(scope="module")
def inpainter(small_model):
    return Inpainter(small_model, device="cpu", model_batch=8)


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic photo (gradients + texture), uint8 H×W×3."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([xx, yy, 0.5 * (xx + yy)], axis=2) * 200
    return np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)


def count_calls(model) -> list[int]:
    calls = [0]
    model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).any(axis=2)


def test_resize_at_256_reproduces_the_reference_evaluation(small_model):
    image = photo(256, 256, seed=1)
    mask = np.zeros((256, 256), np.uint8)
    mask[80:150, 30:200] = 255
    out = Inpainter(small_model, strategy="resize").inpaint([image], [mask])[0]
    # The release's eval_final.py inputs, built by hand:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().contiguous() / 255
    m = torch.from_numpy(mask > 127)[None, None].float()
    masked_512 = F.interpolate(x * (1.0 - m) + m, 512)
    with torch.no_grad():
        prediction, _ = small_model(x, m, masked_512, F.interpolate(m, 512))
    composite = prediction * m + x * (1 - m)
    want = np.rint(composite[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    hole = mask > 127
    np.testing.assert_array_equal(out[hole], want[hole])
    np.testing.assert_array_equal(out[~hole], image[~hole])


@pytest.mark.parametrize("strategy", ["crop", "resize"])
def test_pixels_outside_the_hole_are_bit_identical_on_a_large_non_square_image(inpainter, strategy):
    image = photo(700, 1300, seed=2)
    mask = np.zeros((700, 1300), np.uint8)
    mask[100:160, 200:330] = 255  # two distant holes and a thin scratch
    mask[500:620, 1000:1150] = 255
    mask[300:303, 40:900] = 255
    inpainter.strategy = strategy
    try:
        out, info = inpainter.inpaint_with_info([image], [mask])[0]
    finally:
        inpainter.strategy = "crop"
    hole = mask > 127
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~hole], image[~hole])
    assert changed(out, image)[hole].mean() > 0.5  # the holes were actually filled
    assert info["regions"] == 3 and info["hole_pixels"] == hole.sum()
    if strategy == "resize":
        assert info["crops"] == 1 and info["crop_scale"] == 1300 / 256
    else:  # the 860-px scratch is tiled at native scale, each box gets a window of its own
        assert info["crops"] >= 2 + 860 // 256


def test_nearby_regions_share_one_crop_and_crops_of_many_images_share_a_batch(small_model):
    calls = count_calls(small_model)
    inp = Inpainter(small_model, model_batch=8)
    images = [photo(400, 600, seed=s) for s in range(3)]
    mask = np.zeros((400, 600), np.uint8)
    mask[100:120, 100:140] = 255
    mask[125:140, 150:170] = 255  # 5-10 px away from the first: merged
    results = inp.inpaint_with_info(images, [mask] * 3)
    assert [info["crops"] for _, info in results] == [1, 1, 1]
    assert calls[0] == 1


def test_an_empty_mask_returns_the_image_without_running_the_model(small_model):
    calls = count_calls(small_model)
    image = photo(123, 77)
    out = Inpainter(small_model).inpaint([image], [np.zeros((123, 77), np.uint8)])[0]
    np.testing.assert_array_equal(out, image)
    assert calls[0] == 0


@pytest.mark.parametrize("strategy", ["crop", "resize"])
def test_a_full_mask_gives_a_defined_deterministic_result(inpainter, strategy):
    image = photo(180, 300)
    mask = np.full((180, 300), 255, np.uint8)
    inpainter.strategy = strategy
    try:
        first = inpainter.inpaint([image], [mask])[0]
        second = inpainter.inpaint([image], [mask])[0]
    finally:
        inpainter.strategy = "crop"
    assert first.shape == image.shape
    np.testing.assert_array_equal(first, second)


def test_tiny_and_extreme_aspect_images_are_handled(inpainter):
    strip = photo(10, 2000)
    strip_mask = np.zeros((10, 2000), np.uint8)
    strip_mask[3:7, 900:960] = 255
    dot = photo(1, 1)
    outs = inpainter.inpaint([strip, dot], [strip_mask, np.ones((1, 1), bool)])
    assert outs[0].shape == strip.shape and outs[1].shape == (1, 1, 3)
    np.testing.assert_array_equal(outs[0][strip_mask == 0], strip[strip_mask == 0])


def mask_variants() -> dict[str, object]:
    """The same 64×96 hole (rows 20-40, cols 30-70) in every format users hand in."""
    hole = np.zeros((64, 96), bool)
    hole[20:40, 30:70] = True
    gray = hole.astype(np.uint8) * 255
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[..., 3] = gray  # shape only in alpha, colour channels all black
    soft = np.zeros((64, 96), np.uint8)  # anti-aliased: a faint 1-px edge below the threshold
    soft[19:41, 29:71] = 100
    soft[20:40, 30:70] = 200
    palette = Image.fromarray(hole.astype(np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 255, 255])
    return {
        "L": Image.fromarray(gray, mode="L"),
        "1": Image.fromarray(gray, mode="L").convert("1"),
        "RGB": Image.fromarray(np.stack([gray] * 3, axis=2)),
        "RGBA-alpha": Image.fromarray(rgba, mode="RGBA"),
        "P": palette,
        "I;16": Image.fromarray(hole.astype(np.uint16) * 65535),
        "bool-array": hole,
        "zero-one-array": hole.astype(np.uint8),
        "half-size": Image.fromarray(gray[::2, ::2], mode="L"),
        "anti-aliased": Image.fromarray(soft, mode="L"),
    }


@pytest.mark.parametrize("name", list(mask_variants()))
def test_mask_formats_mean_the_same_hole(inpainter, name):
    image = photo(64, 96)
    out, info = inpainter.inpaint_with_info([image], [mask_variants()[name]])[0]
    assert info["hole_pixels"] == 20 * 40
    hole = np.zeros((64, 96), bool)
    hole[20:40, 30:70] = True
    np.testing.assert_array_equal(out[~hole], image[~hole])


def test_a_mask_of_another_aspect_ratio_is_refused(inpainter):
    with pytest.raises(MaskError, match="aspect ratios differ"):
        inpainter.inpaint([photo(64, 96)], [np.zeros((64, 64), np.uint8)])


def test_dilation_grows_the_filled_area_and_keeps_the_rest(small_model):
    image = photo(200, 200)
    mask = np.zeros((200, 200), np.uint8)
    mask[90:110, 90:110] = 255
    plain, info0 = Inpainter(small_model).inpaint_with_info([image], [mask])[0]
    grown, info4 = Inpainter(small_model, dilate=4).inpaint_with_info([image], [mask])[0]
    assert info4["hole_pixels"] > info0["hole_pixels"] == 400
    assert changed(grown, image)[86:114, 86:114].sum() > changed(plain, image).sum()
    assert not changed(grown, image)[:80].any()


@pytest.mark.parametrize("engine", ["opencv-telea", "opencv-ns"])
def test_classical_engines_fill_holes_behind_the_same_interface(engine):
    image = photo(240, 320)
    mask = np.zeros((240, 320), np.uint8)
    mask[100:130, 100:180] = 255
    inp = Inpainter(engine)
    assert inp.engine == engine and inp.model_id == engine
    out = inp.inpaint([image], [mask])[0]
    hole = mask > 0
    np.testing.assert_array_equal(out[~hole], image[~hole])
    # Diffusion from the border: the fill is close to the surrounding colours.
    assert np.abs(out[hole].astype(int).mean(0) - image[~hole].astype(int).mean(0)).max() < 40


def test_bad_arguments_fail_with_a_clear_message(small_model):
    with pytest.raises(ValueError, match="strategy must be one of"):
        Inpainter(small_model, strategy="tile")
    with pytest.raises(ValueError, match="images must be uint8"):
        Inpainter("opencv-telea").inpaint([np.zeros((4, 4), np.float32)], [np.zeros((4, 4))])


def test_the_model_sees_neighbouring_groups_holes_as_holes(small_model):
    """Two hole groups 100 px apart get two windows; each window's model input masks both."""
    seen: list[torch.Tensor] = []
    hook = small_model.register_forward_pre_hook(lambda _m, args: seen.append(args[1].clone()))
    try:
        image = photo(300, 400)
        mask = np.zeros((300, 400), np.uint8)
        mask[140:150, 100:110] = 255
        mask[140:150, 200:210] = 255
        info = Inpainter(small_model).inpaint_with_info([image], [mask])[0][1]
    finally:
        hook.remove()
    assert info["crops"] == 2
    holes_per_window = [int(m[i].sum()) for m in seen for i in range(m.shape[0])]
    assert len(holes_per_window) == 2 and all(n >= 200 * 0.8 for n in holes_per_window)


def test_a_context_below_one_still_fills_every_hole_pixel(small_model):
    image = photo(300, 300)
    mask = np.zeros((300, 300), np.uint8)
    mask[50:250, 50:250] = 255
    out = Inpainter(small_model, context=0.5, min_crop=32).inpaint([image], [mask])[0]
    assert changed(out, image)[mask > 0].mean() > 0.9
