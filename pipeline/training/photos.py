"""The default model's data set: openly licensed photographs that install on this machine.

`build_photo_set(out)` fetches Debian's wallpaper packages with `apt-get download` (no root or
install needed; `dpkg -x` unpacks them into a scratch folder), adds the photos bundled with
scikit-image and matplotlib, and writes three disjoint splits:
- `train/`: photos, long side capped at 2560 px (JPEG quality 95);
- `val/`: photos scored during training (`spl train --val-images`);
- `holdout/`: never seen in training or validation; four square crops per photo at 512² (PNG),
  the evaluation set of `spl evaluate`.
`manifest.json` lists every written file with its split, source package and version, the path in
the package, the source file's and the written file's sha256, author and licence.
Debian's mate-backgrounds is the project's unseen evaluation data: it is never used here.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

LOMIRI_16 = "lomiri-wallpapers-16.04"
LOMIRI_20 = "lomiri-wallpapers-20.04"
PLASMA = "plasma-workspace-wallpapers"
# (source, name in the source, split). Only photographs: the packages' digital artwork is left out.
PHOTOS: tuple[tuple[str, str, str], ...] = (
    (LOMIRI_16, "Bridge_by_Sander_Klootwijk.jpg", "train"),
    (LOMIRI_16, "Dragonfly_by_Bolly.jpg", "train"),
    (LOMIRI_16, "Picture_1A_by_freespace.jpg", "train"),
    (LOMIRI_16, "Wine_by_Jakkub_Mede.jpg", "train"),
    (LOMIRI_16, "analogpattern_by_Peter_Nerlich.jpg", "train"),
    (LOMIRI_16, "free_by_Peter_Nerlich.jpg", "train"),
    (LOMIRI_16, "greentock_by_Peter_Nerlich.jpg", "train"),
    (LOMIRI_16, "life_by_Aitzol_Berasategi.jpg", "train"),
    (LOMIRI_16, "seeding_by_Clements_Engelhardt.jpg", "train"),
    (LOMIRI_16, "sunset_by_Aitzol_Berasategi.jpg", "train"),
    (LOMIRI_20, "Kleiber_by_Lukas_Baubkus.jpg", "train"),
    (PLASMA, "BytheWater", "train"),
    (PLASMA, "ColdRipple", "train"),
    (PLASMA, "DarkestHour", "train"),
    (PLASMA, "FallenLeaf", "train"),
    (PLASMA, "Grey", "train"),
    (PLASMA, "OneStandsOut", "train"),
    (PLASMA, "summer_1am", "train"),
    ("scikit-image", "rocket.jpg", "train"),
    (LOMIRI_16, "aitzgorri_by_Aitzol_Berasategi.jpg", "val"),
    (PLASMA, "Kite", "val"),
    ("scikit-image", "chelsea.png", "val"),
    (LOMIRI_16, "picosdeeuropa_by_Aitzol_Berasategi.jpg", "holdout"),
    (LOMIRI_16, "friends_by_Aitzol_Berasategi.jpg", "holdout"),
    (LOMIRI_16, "Picture_0B_by_freespace.jpg", "holdout"),
    (PLASMA, "Path", "holdout"),
    (PLASMA, "EveningGlow", "holdout"),
    (PLASMA, "ColorfulCups", "holdout"),
    ("scikit-image", "astronaut.png", "holdout"),
    ("scikit-image", "coffee.png", "holdout"),
    ("matplotlib", "grace_hopper.jpg", "holdout"),
)
PACKAGE_LICENCES = {  # the bundled photos' terms, from each package's documentation
    "scikit-image": {
        "rocket.jpg": ("SpaceX", "public domain"),
        "chelsea.png": ("Stefan van der Walt", "CC0-1.0"),
        "astronaut.png": ("NASA", "public domain"),
        "coffee.png": ("Rachel Michetti", "CC0-1.0"),
    },
    "matplotlib": {"grace_hopper.jpg": ("U.S. Navy (James S. Davis)", "public domain")},
}
MAX_SIDE = 2560
HOLDOUT_CROPS = 4
HOLDOUT_SIZE = 512


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_photo_set(out: str | Path, packages_dir: str | Path | None = None) -> dict:
    """Write the splits and manifest.json under `out`; returns the manifest."""
    out = Path(out)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(packages_dir) if packages_dir else _unpack_debian(Path(scratch))
        versions = _package_versions(root)
        entries = []
        for source, name, split in PHOTOS:
            path, author, licence = _locate(root, source, name)
            data = path.read_bytes()
            for filename, blob in _outputs(name, data, split):
                target = out / split / filename
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(blob)
                entries.append({
                    "file": f"{split}/{filename}", "split": split, "source": source,
                    "version": versions[source] if source in versions else _python_version(source),
                    "path_in_source": _relative(path, root, source),
                    "source_sha256": sha256(data), "sha256": sha256(blob),
                    "author": author, "licence": licence,
                })  # fmt: skip
    manifest = {
        "excluded": "Debian's mate-backgrounds (the project's unseen evaluation data)",
        "files": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _outputs(name: str, data: bytes, split: str) -> list[tuple[str, bytes]]:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem)
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if split != "holdout":
        if max(image.size) > MAX_SIDE:
            scale = MAX_SIDE / max(image.size)
            size = (round(image.width * scale), round(image.height * scale))
            image = image.resize(size, Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=95)
        return [(f"{stem}.jpg", buffer.getvalue())]
    # Holdout: square crops at fixed places (left, right; two scales), each resized to 512².
    width, height = image.size
    results = []
    for index, (fx, scale) in enumerate(((0.25, 1.0), (0.75, 1.0), (0.5, 0.5), (0.2, 0.4))):
        side = int(min(width, height) * scale)
        cx = int(np.clip(fx * width, side / 2, width - side / 2))
        box = (cx - side // 2, (height - side) // 2, cx - side // 2 + side, (height + side) // 2)
        crop = image.crop(box).resize((HOLDOUT_SIZE, HOLDOUT_SIZE), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        crop.save(buffer, format="PNG")
        results.append((f"{stem}-{index}.png", buffer.getvalue()))
    return results[:HOLDOUT_CROPS]


def _unpack_debian(scratch: Path) -> Path:
    debs = scratch / "debs"
    debs.mkdir()
    packages = [LOMIRI_16, LOMIRI_20, PLASMA]
    subprocess.run(["apt-get", "download", *packages], cwd=debs, check=True)
    root = scratch / "root"
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        package, version = deb.name.split("_")[:2]
        (root / f"{package}.version").write_text(version.replace("%3a", ":"))
    return root


def _package_versions(root: Path) -> dict[str, str]:
    return {p.stem: p.read_text().strip() for p in root.glob("*.version")}


def _python_version(source: str) -> str:
    from importlib.metadata import version

    return version(source)


def _locate(root: Path, source: str, name: str) -> tuple[Path, str, str]:
    """The source file and its author and licence."""
    if source in PACKAGE_LICENCES:
        module = __import__("skimage.data" if source == "scikit-image" else "matplotlib")
        base = Path(module.__file__).parent
        if source == "matplotlib":
            base = base / "mpl-data" / "sample_data"
        elif source == "scikit-image":
            base = Path(__import__("skimage").__file__).parent / "data"
        return (base / name, *PACKAGE_LICENCES[source][name])
    if source == PLASMA:
        folder = root / "usr/share/wallpapers" / name
        meta = json.loads((folder / "metadata.json").read_text())["KPlugin"]
        images = sorted(
            (folder / "contents/images").iterdir(),
            key=lambda p: int(np.prod([int(v) for v in p.stem.split("x")])),
        )
        return images[-1], meta["Authors"][0]["Name"], meta["License"]
    path = root / "usr/share/backgrounds" / name
    return (path, *_debian_copyright(root, source, name))


def _debian_copyright(root: Path, package: str, name: str) -> tuple[str, str]:
    text = (root / "usr/share/doc" / package / "copyright").read_text()
    for stanza in text.split("\n\n"):
        if re.search(rf"^Files:.*\b{re.escape(name)}\b", stanza, re.M):
            author = re.search(r"^Copyright:\s*(.+)$", stanza, re.M)
            licence = re.search(r"^License:\s*(.+)$", stanza, re.M)
            return (author.group(1).strip() if author else "?", licence.group(1).strip())
    raise ValueError(f"no copyright stanza for {name} in {package}")


def _relative(path: Path, root: Path, source: str) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return f"{source}:{path.name}"
