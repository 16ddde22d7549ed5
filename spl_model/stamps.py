"""Watermark-shaped and object-shaped defacements at full resolution, for evaluation and training.

A stamp is an opacity map `alpha` (float32 H×W in [0, 1]) and a colour: the stamped image is
J = a·W + (1 - a)·I with a = alpha·opacity (Dekel et al., CVPR 2017). Kinds:
- `text`: a line of text in a TrueType font (size a few % of the image height), in a corner or
  in the centre, white or dark;
- `logo`: a ring or rounded box with a short word inside (strokes a few px wide);
- `strokes`: thin scratches and lines across the photo;
- `blob`: an opaque object (filled polygon / ellipse cluster) of 2-6 % of the image.
The hole to restore is where alpha is visible, grown by `grow` px. Pure NumPy / Pillow / OpenCV;
fonts are files the caller names (`font_files`: the DejaVu and STIX fonts matplotlib ships).
"""

from __future__ import annotations

import importlib.util
import math
import string
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .masks import dilate

KINDS = ("text", "logo", "strokes", "blob")
WORDS = (
    "© ARCHIVE 1987",
    "PHOTO AGENCY",
    "© Stadtarchiv",
    "SAMPLE",
    "www.photo-library.org",
    "Collection Dupont · 1962",
    "PROOF ONLY",
    "© Press Pictures Ltd",
)


@dataclass(frozen=True)
class Stamp:
    kind: str
    alpha: np.ndarray  # float32 H×W in [0, 1]: where the mark is, before opacity
    color: tuple[int, int, int]
    opacity: float

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The stamped uint8 image."""
        a = (self.alpha * self.opacity)[..., None]
        out = a * np.asarray(self.color, np.float32) + (1.0 - a) * image.astype(np.float32)
        return np.rint(out).clip(0, 255).astype(np.uint8)

    def hole(self, grow: int = 2) -> np.ndarray:
        """The bool hole map: wherever the mark shows, grown by `grow` px."""
        return dilate((self.alpha * self.opacity) > 0.02, grow)


def font_files() -> list[Path]:
    """The TrueType text fonts that ship with matplotlib (a project dependency, so the same
    list on every machine and the same stamps for a seed): DejaVu Sans, Serif and Mono in their
    weights and slants, and STIX General (a Times-like serif)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return []
    ttf = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"
    fonts = sorted(ttf.glob("DejaVu*.ttf")) + sorted(ttf.glob("STIXGeneral*.ttf"))
    return [f for f in fonts if "Display" not in f.name]  # Display: a few glyphs only


def make_stamp(
    shape: tuple[int, int],
    kind: str,
    rng: np.random.Generator,
    fonts: list[Path] | None = None,
    opacity: float | None = None,
) -> Stamp:
    """A random stamp of `kind` for an image of `shape` (height, width)."""
    if kind not in KINDS:
        raise ValueError(f"unknown stamp kind {kind!r}; choose from {KINDS}")
    fonts = fonts if fonts is not None else font_files()
    if kind in ("text", "logo") and not fonts:
        raise ValueError("no TrueType font found for a text stamp")
    if kind == "text":
        alpha = _text(shape, rng, fonts)
    elif kind == "logo":
        alpha = _logo(shape, rng, fonts)
    elif kind == "strokes":
        alpha = _strokes(shape, rng)
    else:
        alpha = _blob(shape, rng)
    if kind == "blob":
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        opacity = 1.0
    else:
        light = rng.random() < 0.7
        color = (255, 255, 255) if light else (16, 16, 16)
        opacity = float(rng.uniform(0.6, 1.0)) if opacity is None else opacity
    return Stamp(kind, alpha, color, opacity)  # type: ignore[arg-type]


def _canvas(shape: tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    return canvas, ImageDraw.Draw(canvas)


def _place(rng: np.random.Generator, size: tuple[int, int], shape: tuple[int, int]) -> tuple:
    """Top-left of a `size` (w, h) mark: a corner (with a margin) or the centre."""
    height, width = shape
    w, h = size
    margin = int(0.03 * min(height, width))
    where = rng.choice(["tl", "tr", "bl", "br", "centre"])
    if where == "centre":
        return (width - w) // 2, (height - h) // 2
    x = margin if where[1] == "l" else width - w - margin
    y = margin if where[0] == "t" else height - h - margin
    return max(0, x), max(0, y)


def _font(fonts: list[Path], rng: np.random.Generator, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), max(8, px))


def _text(shape: tuple[int, int], rng: np.random.Generator, fonts: list[Path]) -> np.ndarray:
    height, width = shape
    canvas, draw = _canvas(shape)
    word = WORDS[int(rng.integers(len(WORDS)))]
    font = _font(fonts, rng, int(rng.uniform(0.03, 0.06) * height))
    left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
    while right - left > 0.9 * width and font.size > 8:
        font = font.font_variant(size=int(font.size * 0.8))
        left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
    x, y = _place(rng, (right - left, bottom - top), shape)
    draw.text((x - left, y - top), word, fill=255, font=font)
    return np.asarray(canvas, np.float32) / 255


def _logo(shape: tuple[int, int], rng: np.random.Generator, fonts: list[Path]) -> np.ndarray:
    height, width = shape
    canvas, draw = _canvas(shape)
    side = int(rng.uniform(0.08, 0.16) * min(height, width))
    stroke = max(2, side // 18)
    x, y = _place(rng, (side, side), shape)
    if rng.random() < 0.5:
        draw.ellipse((x, y, x + side, y + side), outline=255, width=stroke)
    else:
        draw.rounded_rectangle((x, y, x + side, y + side), side // 6, outline=255, width=stroke)
    word = ("PA", "AR", "©", "SPL", "KM")[int(rng.integers(5))]
    font = _font(fonts, rng, side // 3)
    draw.text((x + side // 2, y + side // 2), word, fill=255, font=font, anchor="mm")
    return np.asarray(canvas, np.float32) / 255


def _strokes(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    height, width = shape
    canvas = np.zeros(shape, np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        thickness = int(rng.integers(2, 7))
        for _ in range(int(rng.integers(2, 5))):
            angle = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(0.05, 0.25) * max(height, width)
            nx = float(np.clip(x + length * math.cos(angle), 0, width - 1))
            ny = float(np.clip(y + length * math.sin(angle), 0, height - 1))
            cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), 255, thickness, cv2.LINE_AA)
            x, y = nx, ny
    return canvas.astype(np.float32) / 255


def _blob(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    height, width = shape
    target = rng.uniform(0.02, 0.06) * height * width
    radius = math.sqrt(target / math.pi)
    cx = float(rng.uniform(radius, max(radius + 1, width - radius)))
    cy = float(rng.uniform(radius, max(radius + 1, height - radius)))
    canvas = np.zeros(shape, np.uint8)
    angles = np.sort(rng.uniform(0, 2 * math.pi, 9))
    radii = radius * rng.uniform(0.7, 1.25, 9)
    points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 255)
    return canvas.astype(np.float32) / 255


def _random_text(rng: np.random.Generator) -> str:
    """A caption-like line of random words (training draws these, so that it never sees the
    evaluation's `WORDS`): capitals, small letters or digits, sometimes a © or a dot between."""
    alphabets = (string.ascii_uppercase, string.ascii_lowercase, string.digits)
    words = []
    for _ in range(int(rng.integers(1, 4))):
        letters = alphabets[int(rng.choice(3, p=[0.45, 0.4, 0.15]))]
        words.append("".join(rng.choice(list(letters), int(rng.integers(2, 10)))))
    if rng.random() < 0.3:
        words.insert(0, "©")
    return (" · " if rng.random() < 0.2 else " ").join(words)


def tile_mask(size: int, rng: np.random.Generator, fonts: list[Path] | None = None) -> np.ndarray:
    """A size×size bool hole shaped like what a native-scale tile of an archive photo sees of a
    watermark (for training): part of a line of random words (letters 24-128 px high), of a logo
    ring or box with its strokes, or a few thin scratches; grown by 2 px as the evaluation's masks
    are."""
    fonts = fonts if fonts is not None else font_files()
    canvas, draw = _canvas((size, size))
    kind = rng.choice(["text", "logo", "strokes"], p=[0.6, 0.2, 0.2])
    if kind == "strokes" or not fonts:
        return Stamp("strokes", _strokes((size, size), rng), (255, 255, 255), 1.0).hole(2)
    if kind == "text":
        font = _font(fonts, rng, int(rng.uniform(24, 128)))
        word = _random_text(rng)
        left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
        x = int(rng.uniform(-(right - left) + size / 2, size / 2))  # the line runs across
        y = int(rng.uniform(0, max(1, size - (bottom - top))))
        draw.text((x - left, y - top), word, fill=255, font=font)
    else:
        side = int(rng.uniform(0.6, 1.6) * size)
        stroke = max(2, side // 18)
        x, y = (int(rng.uniform(-side / 2, size / 2)) for _ in range(2))
        draw.ellipse((x, y, x + side, y + side), outline=255, width=stroke)
    alpha = np.asarray(canvas, np.float32) / 255
    if not alpha.any():  # the draw fell outside: a scratch instead
        alpha = _strokes((size, size), rng)
    return Stamp(str(kind), alpha, (255, 255, 255), 1.0).hole(2)
