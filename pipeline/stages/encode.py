"""Encode stage: the model's RGB back into the input's mode, then into bytes of a format.

Pixels the model did not change are taken from the original (so alpha, CMYK and 16-bit data
survive exactly outside the hole); changed pixels are converted from RGB.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from . import metadata

# output format -> (Pillow format, modes it can store)
FORMATS = {
    "jpg": ("JPEG", ("L", "RGB", "CMYK")),
    "png": ("PNG", ("L", "LA", "RGB", "RGBA", "I;16")),
    "webp": ("WEBP", ("RGB", "RGBA")),
    "tiff": ("TIFF", ("L", "LA", "RGB", "RGBA", "CMYK", "I;16")),
}
EXT_ALIASES = {"jpeg": "jpg", "tif": "tiff"}
FALLBACK_MODE = {"LA": "RGBA", "I;16": "L", "CMYK": "RGB"}
WIDE_MODES = {"RGB;16": 3, "RGBA;16": 4}  # 16 bits per channel, kept as uint16 arrays


def output_ext(output_format: str, input_ext: str | None) -> tuple[str, str]:
    """(file extension to write, key of FORMATS). `same` keeps the input's spelling (.jpeg)."""
    if output_format != "same":
        return output_format, output_format
    ext = (input_ext or "png").lower()
    kind = EXT_ALIASES.get(ext, ext)
    if kind not in FORMATS:  # e.g. bmp: written as PNG
        return "png", "png"
    return ext, kind


def compose(
    restored: np.ndarray,
    changed: np.ndarray,
    mode: str,
    orig: bytes | memoryview | None,
) -> Image.Image | np.ndarray:
    """The restored image in `mode`; unchanged pixels come from `orig` when it is given.
    16-bit RGB(A) (`RGB;16`, `RGBA;16`), which Pillow cannot hold, comes back as a uint16
    array: changed pixels are the model's 8 bits scaled to 16, every other value is kept."""
    height, width = restored.shape[:2]
    if mode in WIDE_MODES:
        wide = np.frombuffer(orig, np.uint16).reshape(height, width, WIDE_MODES[mode]).copy()
        wide[changed, :3] = restored[changed].astype(np.uint16) * 257
        return wide
    rgb = Image.fromarray(restored, "RGB")
    if mode == "RGB":
        return rgb
    if mode == "L":
        return rgb.convert("L")  # exact where R=G=B, i.e. wherever the model kept the gray input
    if mode == "I;16":
        wide = np.frombuffer(orig, np.uint16).reshape(height, width).copy()
        gray = np.asarray(rgb.convert("L")).astype(np.uint16) * 257
        wide[changed] = gray[changed]
        return Image.frombytes("I;16", (width, height), wide.astype("<u2").tobytes())
    base = Image.frombytes(mode, (width, height), orig)
    if mode in ("RGBA", "LA"):  # colour from the model, alpha always from the original
        color = rgb if mode == "RGBA" else rgb.convert("L")
        bands = [*color.split(), base.getchannel("A")]
        merged = Image.merge(mode, bands)
        base.paste(merged, mask=Image.fromarray(changed.astype(np.uint8) * 255, "L"))
        return base
    base.paste(rgb.convert(mode), mask=Image.fromarray(changed.astype(np.uint8) * 255, "L"))
    return base


def encode(
    img: Image.Image | np.ndarray,
    kind: str,
    quality: int,
    icc: bytes | None = None,
    exif: bytes | None = None,
) -> tuple[bytes, str]:
    """(file bytes, mode written). Modes a format cannot hold fall back (CMYK->RGB in PNG,
    16-bit RGB to 8 bits in JPEG and WebP)."""
    if isinstance(img, np.ndarray):
        mode = "RGBA;16" if img.shape[2] == 4 else "RGB;16"
        if kind in ("png", "tiff"):
            return _encode_wide(img, kind, icc), mode
        img = Image.fromarray((img >> 8).astype(np.uint8), mode.split(";")[0])
    pil_format, modes = FORMATS[kind]
    if img.mode not in modes:
        icc = None  # the profile describes the old colour space (e.g. CMYK), not the new one
        fallback = FALLBACK_MODE.get(img.mode, "RGB")
        if fallback not in modes:
            fallback = "RGBA" if "A" in img.mode and "RGBA" in modes else "RGB"
        if img.mode == "I;16" and fallback in ("L", "RGB"):
            img = Image.fromarray((np.asarray(img) >> 8).astype(np.uint8), "L")
        img = img.convert(fallback)
    options: dict = {}
    if kind in ("jpg", "webp"):
        options["quality"] = quality
    if kind == "tiff":
        options["compression"] = "tiff_lzw"
    if icc and img.mode != "I;16":
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    buffer = io.BytesIO()
    try:
        img.save(buffer, format=pil_format, **options)
    except (OSError, ValueError, TypeError):  # e.g. an ICC profile this mode cannot carry
        buffer = io.BytesIO()
        options.pop("icc_profile", None)
        options.pop("exif", None)
        img.save(buffer, format=pil_format, **options)
    return buffer.getvalue(), img.mode


def _encode_wide(wide: np.ndarray, kind: str, icc: bytes | None) -> bytes:
    """16-bit RGB(A) as PNG or TIFF (OpenCV writes them; Pillow cannot), ICC kept in PNG."""
    import cv2

    code = cv2.COLOR_RGB2BGR if wide.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
    ok, data = cv2.imencode(f".{'png' if kind == 'png' else 'tiff'}", cv2.cvtColor(wide, code))
    if not ok:
        raise ValueError(f"OpenCV could not write 16-bit {kind}")
    return metadata.png_with_icc(data.tobytes(), icc) if kind == "png" else data.tobytes()
