"""SPL inpainting in pure PyTorch: the network, checkpoints, the Inpainter, masks and metrics.

Names are imported on first use: `spl_model.masks` and `spl_model.metrics` (NumPy/OpenCV) stay
cheap for processes that only decode images, and torch loads only where the model is used.

May import: torch, NumPy, OpenCV, safetensors (fsspec lazily, for remote checkpoints only).
Never pipeline, jobs or Ray, and no storage I/O beyond loading a checkpoint.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CONFIGS": "generator",
    "GeneratorConfig": "generator",
    "SPLGenerator": "generator",
    "build_generator": "generator",
    "CheckpointError": "checkpoint",
    "load_generator": "checkpoint",
    "save_generator": "checkpoint",
    "Inpainter": "inpainter",
    "MODEL_SIZE": "crops",
    "Window": "crops",
    "cut_windows": "crops",
    "paste_window": "crops",
    "paste_windows": "crops",
    "paste_box": "crops",
    "union_box": "crops",
    "plan_windows": "crops",
    "WindowPlan": "crops",
    "classical_inpaint": "engines",
    "prefill_holes": "prefill",
    "dilate": "masks",
    "MaskError": "masks",
    "prepare_mask": "masks",
    "default_checkpoint": "weights",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'spl_model' has no attribute {name!r}")
