"""Decode + validate stage: encoded bytes in, RGB pixels + a hole map out (CPU tasks).

EXIF orientation is applied. The model sees RGB; the input's mode is remembered so that
the encode stage can write the result back in it (grayscale stays grayscale, alpha and CMYK
and 16-bit data are kept outside the hole). Problems become `error` rows with a reason a
user can act on; an empty mask becomes a `skipped` row.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image, ImageOps, UnidentifiedImageError

from spl_model.masks import MaskError, prepare_mask
from spl_model.metrics import mask_stats

from ..schema import ERROR, SKIPPED, each_row, pack_bits
from . import jpeg_region, metadata, png_pixels
from .settings import DecodeSettings
from .template import NotFound, Placement

# input mode -> the mode we write back (None: RGB, and no original pixels need carrying)
OUTPUT_MODES = {
    "RGB": "RGB",
    "L": "L",
    "1": "L",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "LA": "LA",
    "La": "LA",
    "PA": "RGBA",
    "CMYK": "CMYK",
    "I;16": "I;16",
    "I;16L": "I;16",
    "I;16B": "I;16",
    "I;16N": "I;16",
    "I": "I;16",
    "F": "L",
}
NEEDS_ORIGINAL = ("RGBA", "LA", "CMYK", "I;16")  # RGB cannot round-trip these exactly


class ItemError(Exception):
    """An item-level problem with a message meant for the user."""


def decode_batch(batch: pa.Table, settings: DecodeSettings) -> pa.Table:
    s = settings
    placement = Placement(s.template, s.anchor, s.offset, s.scale, s.search, s.min_score, s.alpha)

    def fail(row: dict[str, Any], exc: Exception) -> dict[str, Any]:
        if isinstance(exc, ItemError):
            return _fail(row, str(exc))
        return _fail(row, f"unexpected decode failure: {type(exc).__name__}: {exc}")

    return each_row(
        batch,
        lambda row: decode_row(
            row, placement, s.max_image_pixels, s.mask_orientation, s.keep_jpeg, s.keep_png
        ),
        fail,
    )


def _alpha_columns(alpha: np.ndarray, hole: np.ndarray) -> dict[str, Any]:
    """The placed opacity map inside the hole, cut to the box of its non-zero pixels."""
    alpha = np.where(hole, alpha, 0).astype(np.uint8)
    ys, xs = np.nonzero(alpha)
    if len(ys) == 0:
        return {}
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    return {"alpha": alpha[y0:y1, x0:x1].tobytes(), "alpha_box": [x0, y0, x1, y1]}


def decode_row(
    row: dict[str, Any],
    placement: Placement,
    max_image_pixels: int | None,
    mask_orientation: str = "display",
    keep_jpeg: bool = False,
    keep_png: bool = False,
) -> dict[str, Any]:
    source = row["image_bytes"]
    stored, fmt = open_image(source, "image", max_image_pixels, upright=False, load=False)
    icc, exif = stored.info.get("icc_profile"), stored.info.get("exif")
    if fmt == "PNG":  # not `stored.getexif()`, which decodes a PNG's pixels to look
        exif = metadata.png_exif(source)
        orientation = metadata.exif_orientation(exif)
    else:
        orientation = metadata.orientation_of(stored)
    hole = deferred = None
    shown = stored.size[::-1] if metadata.turned(orientation) else stored.size  # (W, H) upright
    if (keep_jpeg and fmt == "JPEG" and stored.mode == "RGB" and placement.template is None
            and not row.get("ref_bytes")):  # fmt: skip
        # written back as a JPEG: decoded later, only where the stages read it
        hole = _hole_of(row, shown[::-1], orientation, max_image_pixels, mask_orientation)
        deferred = jpeg_region.defer(source, hole, orientation)
    if deferred is not None:
        rgb, input_mode, out_mode, orig = None, "RGB", "RGB", None
        width, height = shown
    else:
        rgb, input_mode, out_mode, orig = _decode_pixels(source, fmt, stored, orientation)
        height, width = rgb.shape[:2]
    if placement.template is not None:
        try:
            hole, score, shift = placement.place(rgb)
        except MaskError as exc:
            raise ItemError(f"mask template does not fit this image: {exc}") from None
        except NotFound as exc:
            _fill(row, width, height, input_mode, fmt, out_mode)
            row.update(status=SKIPPED, error=str(exc), mask_score=exc.score)
            return row
        row.update(mask_score=score, mask_shift=shift)
        if placement.alpha is not None:
            row.update(_alpha_columns(placement.place_alpha((height, width), shift), hole))
    elif hole is None:
        hole = _hole_of(row, (height, width), orientation, max_image_pixels, mask_orientation)
    stats = mask_stats(hole)
    _fill(row, width, height, input_mode, fmt, out_mode)
    row.update(
        icc=icc,
        exif=exif if isinstance(exif, bytes) else None,
        orientation=orientation,
        input_bytes=len(source),
        hole_pixels=int(stats["hole_pixels"]),
        hole_ratio=float(stats["hole_ratio"]),
        regions=int(stats["regions"]),
        largest_region=int(stats["largest_region"]),
    )
    if not hole.any():
        row.update(status=SKIPPED, error="mask has no hole pixels: nothing to restore")
        return row
    if deferred is not None:
        row.update(deferred)
    else:
        row["pixels"] = np.ascontiguousarray(rgb)  # a column that wraps it (ARRAY_COLUMNS)
    row["hole"] = pack_bits(hole)
    row["orig"] = orig
    if fmt == "JPEG" or (fmt == "PNG" and keep_png):  # the sink copies a JPEG's DCT
        # coefficients (and the stages decode its deferred pixels from it), a PNG's
        # compressed rows, outside the hole
        row["image_bytes"] = source
    return row


def _decode_pixels(
    source: bytes, fmt: str, stored: Image.Image, orientation: int
) -> tuple[np.ndarray, str, str, bytes | None]:
    """(RGB pixels upright, input mode, mode to write back, original pixels where RGB cannot
    round-trip them)."""
    fast = _jpeg_rgb(source, fmt, stored)
    if fast is not None:  # an RGB JPEG, decoded straight into an array; upright as an array
        return metadata.to_display(fast, orientation), "RGB", "RGB", None
    png = _png_array(source, fmt, stored)
    if png is not None:  # a PNG, the same; grey made RGB, alpha kept aside
        png = metadata.to_display(png, orientation)
        if png.ndim == 2 or png.shape[2] == 2:
            rgb = np.repeat(png[..., :1] if png.ndim == 3 else png[..., None], 3, axis=2)
        else:
            rgb = np.ascontiguousarray(png[..., :3])
        orig = png.tobytes() if stored.mode in NEEDS_ORIGINAL else None
        return rgb, stored.mode, OUTPUT_MODES[stored.mode], orig
    _load(stored, "image")
    img = stored if orientation == 1 else _upright(stored, "image")  # no copy when upright
    wide = _wide_rgb(source, fmt, stored)
    if wide is not None:  # 48/64-bit RGB(A): the model sees the top 8 bits, the rest is kept
        wide = metadata.to_display(wide, orientation)
        mode = "RGBA;16" if wide.shape[2] == 4 else "RGB;16"
        return (wide[..., :3] >> 8).astype(np.uint8), mode, mode, wide.tobytes()
    rgb, out_mode, orig = to_rgb(img)
    return rgb, img.mode, out_mode, orig


def _hole_of(
    row: dict[str, Any],
    size: tuple[int, int],
    orientation: int,
    max_image_pixels: int | None,
    convention: str,
) -> np.ndarray:
    """The hole map of the row's mask, on the image as displayed."""
    data = row["mask_bytes"]
    mask_img, fmt = open_image(data, "mask", max_image_pixels, upright=False, load=False)
    pixels = _png_array(data, fmt, mask_img)
    if pixels is None:
        _load(mask_img, "mask")
        return _mask_hole(_upright(mask_img, "mask"), size, orientation, convention)
    pixels = metadata.to_display(pixels, metadata.exif_orientation(metadata.png_exif(data)))
    return _mask_hole(pixels, size, orientation, convention)


def _mask_hole(
    mask: Image.Image | np.ndarray, size: tuple[int, int], orientation: int, convention: str
) -> np.ndarray:
    """The hole map of a mask. Masks are drawn on the image as displayed (EXIF orientation
    applied; `mask_orientation: display`) or on its stored pixels (`stored`: the image's
    orientation is applied to the mask too). A mask whose shape only fits the other
    convention is an error that says so."""
    turn = metadata.TRANSPOSE.get(orientation)
    oriented = _turned(mask, orientation) if convention == "stored" else mask
    try:
        return prepare_mask(oriented, size)
    except MaskError as exc:
        other = "display" if convention == "stored" else "stored"
        if turn is not None:
            try:
                prepare_mask(mask if convention == "stored" else _turned(mask, orientation), size)
            except MaskError:
                pass
            else:
                raise ItemError(
                    f"mask does not fit the image: {exc}; it fits the image with "
                    f"`mask_orientation: {other}` (this image has EXIF orientation "
                    f"{orientation}, and masks are read as drawn on the "
                    f"{'stored pixels' if convention == 'stored' else 'displayed image'})"
                ) from None
        raise ItemError(f"mask does not fit the image: {exc}") from None


# (colour type, bit depth) -> Pillow's mode, of the PNGs `png_pixels` decodes itself
PNG_MODES = {(0, 1): "1", (0, 8): "L", (4, 8): "LA", (2, 8): "RGB", (6, 8): "RGBA"}


def _png_array(data: bytes, fmt: str, img: Image.Image) -> np.ndarray | None:
    """A PNG's pixels in stored order as `png_pixels` decodes them (the same values as
    Pillow's, in an array shaped by Pillow's mode), for the modes it reads; None for every
    other image, and for a file it cannot read (Pillow then decodes it, or says why not)."""
    if fmt != "PNG" or len(data) < 29 or PNG_MODES.get((data[25], data[24])) != img.mode:
        return None
    return png_pixels.decode(data)


def _turned(mask: Image.Image | np.ndarray, orientation: int) -> Image.Image | np.ndarray:
    """A mask drawn on stored pixels, turned as an image of that orientation is shown."""
    if isinstance(mask, np.ndarray):
        return metadata.to_display(mask, orientation)
    turn = metadata.TRANSPOSE.get(orientation)
    return mask if turn is None else mask.transpose(turn)


def _wide_rgb(data: bytes, fmt: str, img: Image.Image) -> np.ndarray | None:
    """16-bit-per-channel RGB(A) PNG or TIFF as an H x W x 3|4 uint16 array in stored order
    (Pillow opens these as 8-bit); None for every other image."""
    if fmt == "PNG":
        wide = data[24:25] == b"\x10" and data[25:26] in (b"\x02", b"\x06")
    elif fmt == "TIFF":
        bits = getattr(img, "tag_v2", {}).get(258) or ()
        wide = len(bits) >= 3 and all(b == 16 for b in bits)
    else:
        return None
    if not wide:
        return None
    import cv2

    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16 or array.ndim != 3 or array.shape[2] not in (3, 4):
        return None
    code = cv2.COLOR_BGR2RGB if array.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
    return cv2.cvtColor(array, code)


def _fill(
    row: dict[str, Any], width: int, height: int, mode: str, fmt: str, out_mode: str
) -> None:
    row.update(
        image_bytes=None,
        mask_bytes=None,
        width=width,
        height=height,
        input_mode=mode,
        input_format=fmt,
        input_ext=row.get("input_ext") or _ext_of(fmt),
        orig_mode=out_mode,
    )


def open_image(
    data: bytes | None, what: str, max_pixels: int | None, upright: bool = True, load: bool = True
) -> tuple[Image.Image, str]:
    """Open, size-check and fully decode (only the header when `load` is False; then `upright`
    must be False too); EXIF orientation applied unless `upright` is False.
    Returns (image, format)."""
    if not data:
        raise ItemError(f"the {what} is empty (0 bytes)")
    Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, before decoding pixels
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format or "unknown"
    except UnidentifiedImageError:
        raise ItemError(
            f"the {what} is not an image Pillow can read (supported: JPEG, PNG, WebP, TIFF, BMP, "
            "GIF); the file may be corrupt or of another type"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ItemError(f"the {what} is corrupt or truncated: {exc}") from None
    if max_pixels is not None and img.width * img.height > max_pixels:
        raise ItemError(
            f"the {what} has {img.width}x{img.height} pixels, more than max_image_pixels="
            f"{max_pixels}; raise `max_image_pixels` in the job if you trust this input"
        )
    if img.width == 0 or img.height == 0:
        raise ItemError(f"the {what} has no pixels ({img.width}x{img.height})")
    if load:
        _load(img, what)
    if upright:
        img = _upright(img, what)
    return img, fmt


def _load(img: Image.Image, what: str) -> None:
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ItemError(f"the {what} is corrupt or truncated: {exc}") from None


def _upright(img: Image.Image, what: str) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ItemError(f"the {what} is corrupt or truncated: {exc}") from None


def _jpeg_rgb(data: bytes, fmt: str, img: Image.Image) -> np.ndarray | None:
    """A colour JPEG's pixels in stored order, decoded by OpenCV straight into an array: the
    same pixels as Pillow's (both libjpeg-turbo, accurate IDCT, smooth chroma upsampling;
    checked on baseline, progressive, restart-marker and 4:4:4 / 4:2:2 / 4:2:0 files) at half
    the cost, since Pillow's RGB array is a copy of its 4-byte-per-pixel image (95 against
    49 ms at 12 MP). None for any other image, and for a file OpenCV cannot read (Pillow then
    decodes it, or says why it cannot)."""
    if fmt != "JPEG" or img.mode != "RGB":
        return None
    import cv2

    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if array is None or array.shape != (img.height, img.width, 3):
        return None
    return array


def to_rgb(img: Image.Image) -> tuple[np.ndarray, str, bytes | None]:
    """(RGB uint8 array for the model, mode to write back, raw original pixels if needed)."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    out_mode = OUTPUT_MODES.get(mode, "RGB")
    if mode in ("RGBa", "La", "PA"):
        img = img.convert("RGBA" if mode != "La" else "LA")
    if mode.startswith("I"):
        wide = np.asarray(img).astype(np.int64).clip(0, 65535).astype(np.uint16)
        gray = (wide >> 8).astype(np.uint8)
        rgb = np.repeat(gray[..., None], 3, axis=2)
        return rgb, out_mode, wide.tobytes()
    if mode == "F":
        gray = np.asarray(img).clip(0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2), out_mode, None
    orig = img.tobytes() if out_mode in NEEDS_ORIGINAL else None
    if out_mode in NEEDS_ORIGINAL and img.mode != out_mode:
        orig = img.convert(out_mode).tobytes()
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB")), out_mode, orig


def _ext_of(fmt: str) -> str:
    return {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tiff", "BMP": "bmp"}.get(
        fmt, "png"
    )


def _fail(row: dict[str, Any], message: str) -> dict[str, Any]:
    row.update(status=ERROR, error=message, image_bytes=None, mask_bytes=None, ref_bytes=None)
    row.setdefault("t_start", time.time())
    return row
