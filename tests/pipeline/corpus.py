"""The bad-input corpus of issue 7, generated on the fly (no binary blobs in the repo).

Each case is one input item mixed with good items in a real run. `webdataset_corpus` builds
tar shards (image and mask oddities, hostile keys, duplicates, empty and corrupt shards);
`parquet_corpus` builds Parquet shards (keys as arbitrary strings, empty, corrupt, missing
columns). Both return the files to write under the input folder and the expected outcome of
every case: its stats key, status and words its message must contain. docs/BAD-INPUT.md is
the user-facing table of the same cases.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from tests.pipeline import data

SIZE = (48, 36)  # width, height of the ordinary corpus images
BOX = (12, 9, 30, 24)  # the hole of the ordinary mask
MAX_PIXELS = 250_000  # the corpus runs with this `max_image_pixels` (20000x10 still fits)
LONG_SEGMENT = "L" * 300  # over the 255-byte segment limit of file systems


@dataclass
class Case:
    """One corpus item: the stats key it must get, its status, words of its message."""

    name: str
    key: str
    status: str
    words: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def png(img: Image.Image, **options) -> bytes:
    return data.encode(img, "PNG", **options)


def mask_png(size: tuple[int, int] = SIZE, box: tuple[int, int, int, int] | None = BOX) -> bytes:
    return png(data.box_mask(size, box))


def photo(seed: int, size: tuple[int, int] = SIZE, mode: str = "RGB") -> Image.Image:
    return data.photo(seed, size, mode)


def truncated(blob: bytes, keep: float = 0.6) -> bytes:
    return blob[: int(len(blob) * keep)]


def bomb_png(width: int, height: int) -> bytes:
    """A 1-bit all-black PNG: a few hundred bytes that decode to width*height pixels."""
    return png(Image.new("1", (width, height), 0), optimize=True)


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels and whose data is one empty block:
    what a hostile archive would use to make a decoder allocate gigabytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def exif_rotated_jpeg(seed: int) -> tuple[bytes, Image.Image]:
    """A 64x48 JPEG tagged orientation 6 (display rotated 90° clockwise): (bytes, upright)."""
    stored = photo(seed, (64, 48))
    exif = Image.Exif()
    exif[0x0112] = 6
    blob = data.encode(stored, "JPEG", exif=exif.tobytes(), quality=95)
    return blob, stored.transpose(Image.Transpose.ROTATE_270)


def animated(fmt: str) -> bytes:
    """Two frames: solid red, then solid blue (GIF or lossless WebP)."""
    frames = [Image.new("RGB", SIZE, (220, 20, 20)), Image.new("RGB", SIZE, (20, 20, 220))]
    buffer = io.BytesIO()
    options = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(
        buffer, format=fmt, save_all=True, append_images=frames[1:], duration=100, **options
    )
    return buffer.getvalue()


def palette_with_transparency() -> bytes:
    img = photo(7).quantize(16)
    return png(img, transparency=0)


def sixteen_bit() -> bytes:
    gray = np.asarray(photo(8).convert("L")).astype(np.uint16) * 257 + 5
    return png(Image.frombytes("I;16", SIZE, gray.astype("<u2").tobytes()))


def soft_mask() -> tuple[bytes, int]:
    """An anti-aliased mask (a box with a linear ramp): (PNG bytes, pixels over 127)."""
    yy, xx = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    dist = np.maximum(np.abs(xx - 24) / 12, np.abs(yy - 18) / 9)
    arr = (np.clip(1.5 - dist, 0, 1) * 255).astype(np.uint8)
    return png(Image.fromarray(arr, "L")), int((arr > 127).sum())


def alpha_only_mask() -> bytes:
    """RGBA, colour all black, the hole drawn in alpha only."""
    arr = np.zeros((SIZE[1], SIZE[0], 4), np.uint8)
    x0, y0, x1, y1 = BOX
    arr[y0:y1, x0:x1, 3] = 255
    return png(Image.fromarray(arr, "RGBA"))


BOX_PIXELS = (BOX[2] - BOX[0]) * (BOX[3] - BOX[1])


def webdataset_corpus() -> tuple[dict[str, bytes], list[Case]]:
    """Tar shards under `shards/` and the expected row of every item."""
    good = lambda seed: png(photo(seed))  # noqa: E731
    mask = mask_png()
    cases: list[Case] = []
    members: list[tuple[str, bytes]] = []

    def add(name: str, sample: str, image: bytes | None, msk: bytes | None, ext: str, *outcome):
        if image is not None:
            members.append((f"{sample}.{ext}", image))
        if msk is not None:
            members.append((f"{sample}.mask.png", msk))
        key, status, *words = outcome
        cases.append(Case(name, f"corpus/{key}", status, tuple(words)))

    jpeg = data.encode(photo(2), "JPEG", quality=90)
    rotated, upright = exif_rotated_jpeg(3)
    soft, soft_pixels = soft_mask()
    add("good neighbour 1", "good1", good(1), mask, "png", "good1", "ok")
    add("zero-byte image", "zero", b"", mask, "jpg", "zero", "error", "empty (0 bytes)")
    add("truncated JPEG", "trunc_jpeg", truncated(jpeg), mask, "jpg",
        "trunc_jpeg", "error", "corrupt or truncated")  # fmt: skip
    add("truncated PNG", "trunc_png", truncated(good(4)), mask, "png",
        "trunc_png", "error", "corrupt or truncated")  # fmt: skip
    add("random bytes as .jpg", "random", np.random.default_rng(0).bytes(2048), mask, "jpg",
        "random", "error", "not an image Pillow can read")  # fmt: skip
    html = b"<!DOCTYPE html><html><body><h1>503 Service Unavailable</h1></body></html>\n"
    add("HTML error page as .jpg", "html", html, mask, "jpg",
        "html", "error", "not an image Pillow can read")  # fmt: skip
    add("decompression bomb (1000x1000 > max_image_pixels)", "bomb", bomb_png(1000, 1000),
        mask_png((1000, 1000)), "png",
        "bomb", "error", "1000x1000", f"max_image_pixels={MAX_PIXELS}")  # fmt: skip
    add("1x1 image, whole-image hole", "tiny", png(photo(5, (1, 1))),
        mask_png((1, 1), (0, 0, 1, 1)), "png", "tiny", "ok")  # fmt: skip
    add("20000x10 image", "wide", png(photo(6, (20000, 10))),
        mask_png((20000, 10), (9000, 2, 9100, 8)), "png", "wide", "ok")  # fmt: skip
    add("16-bit grayscale PNG", "gray16", sixteen_bit(), mask, "png", "gray16", "ok")
    add("CMYK JPEG", "cmyk", data.encode(photo(9, mode="CMYK"), "JPEG", quality=95), mask,
        "jpg", "cmyk", "ok")  # fmt: skip
    add("palette PNG with transparency", "palette", palette_with_transparency(), mask, "png",
        "palette", "ok")  # fmt: skip
    add("grayscale JPEG", "gray", data.encode(photo(10, mode="L"), "JPEG"), mask, "jpg",
        "gray", "ok")  # fmt: skip
    add("EXIF-rotated JPEG (orientation 6)", "exif", rotated,
        mask_png((48, 64), (6, 10, 20, 30)), "jpg", "exif", "ok")  # fmt: skip
    add("animated GIF", "anim_gif", animated("GIF"), mask, "gif", "anim_gif", "ok")
    add("animated WebP", "anim_webp", animated("WEBP"), mask, "webp", "anim_webp", "ok")
    add("mask of half the size (same aspect)", "mask_half", good(11), mask_png((24, 18),
        (6, 4, 15, 12)), "png", "mask_half", "ok")  # fmt: skip
    add("mask of another aspect ratio", "mask_aspect", good(12), mask_png((40, 40)), "png",
        "mask_aspect", "error", "mask does not fit", "aspect ratios differ")  # fmt: skip
    add("missing mask", "nomask", good(13), None, "png", "nomask", "error", "no mask member")
    add("all-zero mask", "mask_zero", good(14), mask_png(SIZE, ()), "png",
        "mask_zero", "skipped", "no hole pixels")  # fmt: skip
    add("all-one mask", "mask_full", good(15), mask_png(SIZE, (0, 0, *SIZE)), "png",
        "mask_full", "ok")  # fmt: skip
    add("anti-aliased mask", "mask_soft", good(16), soft, "png", "mask_soft", "ok")
    cases[-1].extra["hole_pixels"] = soft_pixels
    add("mask drawn in alpha only", "mask_alpha", good(17), alpha_only_mask(), "png",
        "mask_alpha", "ok")  # fmt: skip
    cases[-1].extra["hole_pixels"] = BOX_PIXELS
    add("key with spaces", "with space", good(18), mask, "png", "with space", "ok")
    add("unicode key", "ünïcødé/写真", good(19), mask, "png", "ünïcødé/写真", "ok")
    add("key with ..", "../up", good(20), mask, "png", "__/up", "ok")
    add("key with a/../../b", "a/../../b", good(21), mask, "png", "a/__/__/b", "ok")
    add("key with leading /", "/lead", good(22), mask, "png", "lead", "ok")
    long_ok = "/".join(["d" * 150] * 4)
    add("very long key (4 x 150 chars)", long_ok, good(23), mask, "png", long_ok, "ok")
    add("key segment over 255 bytes", LONG_SEGMENT, good(24), mask, "png", LONG_SEGMENT,
        "error", "longer than 255 bytes")  # fmt: skip
    add("key with a backslash (a\\b)", "back\\slash", good(28), mask, "png", "back/slash", "ok")
    add("key that sanitises to an existing key (a/b)", "back/slash", good(29), mask, "png",
        "back/slash~2", "ok")  # fmt: skip
    add("duplicate key in one shard (first)", "dup", good(25), mask, "png", "dup", "ok")
    add("good neighbour 2", "good2", good(26), mask, "png", "good2", "ok")
    add("duplicate key in one shard (second)", "dup", good(27), mask, "png", "dup~2", "ok")
    files = {"shards/corpus.tar": data.tar_shard(members)}

    # the same sample key in two shards: two items, told apart by their shard
    for shard in ("s1", "s2"):
        files[f"shards/{shard}.tar"] = data.tar_shard([("x.png", good(30)), ("x.mask.png", mask)])
        cases.append(Case(f"same key in shard {shard}", f"{shard}/x", "ok"))
    # nested shards whose item keys would collide: nest.tar:in/x and nest/in.tar:x
    files["shards/nest.tar"] = data.tar_shard([("in/x.png", good(31)), ("in/x.mask.png", mask)])
    files["shards/nest/in.tar"] = data.tar_shard([("x.png", good(32)), ("x.mask.png", mask)])
    cases.append(Case("nested shards, outer (nest.tar: in/x)", "nest.tar/in/x", "ok"))
    cases.append(Case("nested shards, inner (nest/in.tar: x)", "nest/in/x", "ok"))
    # an empty (valid) tar has no items and so no rows
    files["shards/empty.tar"] = data.tar_shard([])
    # a corrupt tar: one error row for the shard
    files["shards/corrupt.tar"] = np.random.default_rng(1).bytes(4096)
    cases.append(Case("corrupt tar", "corrupt", "error", ("tar shard unreadable after 0 item",)))
    # a tar cut in its second sample: the first sample is kept, one error row for the rest
    cut = data.tar_shard(
        [("a.png", good(33)), ("a.mask.png", mask), ("b.png", good(34) * 4), ("b.mask.png", mask)]
    )
    with tarfile.open(fileobj=io.BytesIO(cut)) as tar:
        inside_b = tar.getmember("b.png").offset_data + 100
    files["shards/cut.tar"] = cut[:inside_b]
    cases.append(Case("truncated tar: sample before the cut", "cut/a", "ok"))
    cases.append(Case("truncated tar: the rest", "cut", "error", ("unreadable after 1 item",)))
    for case in cases:
        if case.name.startswith("EXIF"):
            case.extra["upright"] = upright
    return files, cases


def parquet_bytes(records: list[dict], schema: pa.Schema | None = None) -> bytes:
    if schema is None:
        return data.parquet_shard(records)
    table = pa.table({name: [r.get(name) for r in records] for name in schema.names}, schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def parquet_corpus() -> tuple[dict[str, bytes], list[Case]]:
    """Parquet shards under `pq/` and the expected row of every item."""
    mask = mask_png()
    rec = lambda key, seed, **kw: {"key": key, "image": png(photo(seed)), "mask": mask, **kw}  # noqa: E731
    records = [
        rec("g1", 40),
        rec("dup", 41),
        rec("dup", 42),
        rec("", 43),
        rec(None, 44),
        rec("nul\x00byte", 45),
        rec("k" * 2000, 46),
        {"key": "noimage", "image": b"", "mask": mask},
        {"key": "nomask", "image": png(photo(47)), "mask": None},
        rec("g2", 48),
    ]
    cases = [
        Case("good row", "main/g1", "ok"),
        Case("duplicate key in one shard (first)", "main/dup", "ok"),
        Case("duplicate key in one shard (second)", "main/dup~2", "ok"),
        Case("empty key", "main/#row=3", "error", ("empty key",)),
        Case("null key", "main/#row=4", "error", ("empty key",)),
        Case("NUL byte in key", "main/nul_byte", "ok"),
        Case("2000-char key", "main/#row=6", "error", ("longer than 255 bytes",)),
        Case("empty image value", "main/noimage", "error", ("`image` value is empty",)),
        Case("null mask value", "main/nomask", "error", ("`mask` value is empty",)),
        Case("good row after the bad ones", "main/g2", "ok"),
        Case("same key in another shard", "other/g1", "ok"),
        Case("corrupt Parquet file", "corrupt", "error", ("Parquet shard unreadable",)),
        Case("truncated Parquet file", "cut", "error", ("Parquet shard unreadable",)),
        Case("Parquet shard without a mask column", "nocol", "error", ("lacks column",)),
    ]
    whole = parquet_bytes([rec("g1", 49)])
    files = {
        "pq/main.parquet": parquet_bytes(records),
        "pq/other.parquet": whole,
        "pq/empty.parquet": parquet_bytes([]),
        "pq/corrupt.parquet": b"PAR1" + np.random.default_rng(2).bytes(1024) + b"PAR1",
        "pq/cut.parquet": whole[: len(whole) // 2],
        "pq/nocol.parquet": parquet_bytes(
            [{"key": "x", "image": png(photo(50))}],
            pa.schema([("key", pa.string()), ("image", pa.binary())]),
        ),
    }
    return files, cases
