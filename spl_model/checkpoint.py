"""Loading and saving generator weights.

Accepted inputs:
- the official release: a whole `InpaintingModel.state_dict()` saved under DDP
  (`generator.module.*`, plus discriminator / teacher / loss keys, which are ignored);
- a bare generator state dict, with or without `module.` prefixes;
- the native format: safetensors with the generator config and provenance in its metadata.

Nothing is ever unpickled beyond tensors (`weights_only=True`). Loading is strict on generator
keys and shapes. `path_or_url` may be a local path or any fsspec URL; remote files are cached
locally under their content hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .generator import CONFIGS, GeneratorConfig, SPLGenerator

NATIVE_FORMAT = "spl-restore/1"
_SAFETENSORS_SUFFIXES = (".safetensors", ".st")


class CheckpointError(ValueError):
    """A checkpoint could not be read, or does not fit the generator."""


def load_generator(
    path_or_url: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    config: str | GeneratorConfig | None = None,
    storage_options: dict[str, Any] | None = None,
) -> SPLGenerator:
    """Load SPL generator weights (official, bare or native) into an eval-mode generator.

    The returned module carries `spl_info`: `model_id` (sha256 of the file), `config`, `format`,
    `source` and the native file's `metadata`.
    """
    local = fetch_checkpoint(str(path_or_url), storage_options)
    state, metadata, fmt = _read(local)
    if fmt == "native":
        cfg = GeneratorConfig.from_dict(metadata["config"])
    else:
        state, fmt = _generator_state(state)
    if config is not None:
        cfg = CONFIGS[config] if isinstance(config, str) else config
    elif fmt != "native":
        cfg = infer_config(state)
    model = SPLGenerator(cfg)
    _check_keys(model, state, cfg, str(path_or_url))
    model.load_state_dict(state, strict=True)
    model.spl_info = {
        "model_id": file_sha256(local),
        "config": cfg.to_dict(),
        "format": fmt,
        "source": _redact(str(path_or_url)),
        "metadata": metadata,
    }
    return model.to(device).eval()


def save_generator(model: SPLGenerator, path: str | os.PathLike, **provenance: Any) -> str:
    """Write the native format (safetensors + JSON metadata); returns the file's sha256.

    `provenance` (teacher, training command, data, step, ...) must be JSON-serialisable.
    """
    metadata = {"config": model.config.to_dict(), **provenance}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": NATIVE_FORMAT, "spl": json.dumps(metadata)})
    tmp.replace(path)
    return file_sha256(path)


def infer_config(state: dict[str, torch.Tensor]) -> GeneratorConfig:
    """Read the generator's shape off its weights; the paper's config when that is impossible."""

    def count(prefix: str) -> int:
        pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
        return len({m.group(1) for k in state if (m := pattern.match(k))})

    try:
        return GeneratorConfig(
            width=state["encoder_conv1.weight"].shape[0],
            middle_blocks=count("middle"),
            dense_blocks=count("rdbs"),
            dense_layers=count("rdbs.0.layers"),
            growth=state["rdbs.0.layers.0.conv.weight"].shape[0],
            recon_blocks=count("feature_recon"),
            spade_hidden=state["middle.0.conv_block.0.mlp_shared.0.weight"].shape[0],
            teacher_channels=state["feature_mapping.weight"].shape[0],
        )
    except (KeyError, ValueError, IndexError):
        return CONFIGS["spl"]


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    root = os.environ.get("SPL_CACHE_DIR") or Path.home() / ".cache" / "spl-restore"
    return Path(root)


def fetch_checkpoint(path_or_url: str, storage_options: dict[str, Any] | None = None) -> Path:
    """A local path for `path_or_url`; remote files are downloaded once into the content cache."""
    if "://" not in path_or_url or path_or_url.startswith("file://"):
        local = Path(path_or_url.removeprefix("file://")).expanduser()
        if not local.is_file():
            raise CheckpointError(f"checkpoint not found: {local}")
        return local
    try:
        return _fetch_remote(path_or_url, storage_options or {})
    except CheckpointError:
        raise
    except Exception as exc:  # network, auth, missing object: one clear sentence
        raise CheckpointError(
            f"cannot fetch checkpoint {_redact(path_or_url)}: {type(exc).__name__}: {exc}"
        ) from exc


def _fetch_remote(url: str, storage_options: dict[str, Any]) -> Path:
    import fsspec  # only needed for remote checkpoints

    fs, remote = fsspec.core.url_to_fs(url, **storage_options)
    info = fs.info(remote)
    stamp = {
        "size": info.get("size"),
        "tag": str(info.get("ETag") or info.get("etag") or info.get("mtime") or ""),
    }
    root = cache_dir()
    index = root / "urls" / (hashlib.sha256(url.encode()).hexdigest() + ".json")
    if index.is_file():
        entry = json.loads(index.read_text())
        blob = root / "blobs" / entry["sha256"]
        if entry.get("stamp") == stamp and blob.is_file():
            return blob
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    index.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=root / "blobs", delete=False) as tmp:
        with fs.open(remote, "rb") as src:
            for chunk in iter(lambda: src.read(1 << 22), b""):
                digest.update(chunk)
                tmp.write(chunk)
    blob = root / "blobs" / digest.hexdigest()
    os.replace(tmp.name, blob)
    index.write_text(json.dumps({"sha256": digest.hexdigest(), "stamp": stamp}))
    return blob


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict | None, str]:
    with open(path, "rb") as f:
        head = f.read(16)
    if _looks_like_safetensors(head) or path.suffix in _SAFETENSORS_SUFFIXES:
        try:
            with safe_open(str(path), framework="pt") as st:
                meta = st.metadata() or {}
                state = {k: st.get_tensor(k) for k in st.keys()}
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
        if meta.get("format") == NATIVE_FORMAT and "spl" in meta:
            return state, json.loads(meta["spl"]), "native"
        return state, None, "safetensors"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise CheckpointError(
                f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})"
            ) from exc
        raise CheckpointError(
            f"{path}: refused to load: the file references Python code ({found.group(1)}), and "
            "checkpoints are never allowed to run code (weights_only=True). Re-save the state "
            "dict of tensors alone."
        ) from exc
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})"
        ) from exc
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model", "generator"):
            inner = obj.get(wrapper)
            if len(obj) == 1 and isinstance(inner, dict):
                obj = inner
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(obj).__name__}")
    return obj, None, "torch"


def _looks_like_safetensors(head: bytes) -> bool:
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 28


def _generator_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Pick the generator's tensors out of an official or bare state dict, without `module.`."""
    if any(k.startswith("generator.") for k in state):
        picked = {k[len("generator.") :]: v for k, v in state.items() if k.startswith("generator.")}
        fmt = "official"
    else:
        picked, fmt = dict(state), "bare"
    return {_strip_module(k): v for k, v in picked.items()}, fmt


def _strip_module(key: str) -> str:
    return ".".join(part for part in key.split(".") if part != "module")


def _check_keys(
    model: SPLGenerator, state: dict[str, torch.Tensor], cfg: GeneratorConfig, source: str
) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if not (missing or unexpected or wrong_shape):
        return
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} keys: {_preview(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} keys: {_preview(unexpected)}")
    if wrong_shape:
        parts.append(f"{len(wrong_shape)} shape mismatches: {_preview(wrong_shape)}")
    raise CheckpointError(
        f"{_redact(source)} does not fit the SPL generator with config {cfg.to_dict()}: "
        + "; ".join(parts)
    )


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(exc).__name__


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def _redact(url: str) -> str:
    """Drop credentials a URL may carry (user:secret@host, signed query strings)."""
    url = re.sub(r"(://)[^/@]+@", r"\1", url)
    return url.split("?", 1)[0]
