"""SPL inpainting in pure PyTorch: the network, checkpoints, the Inpainter, masks and metrics."""

from .checkpoint import CheckpointError, load_generator, save_generator
from .generator import CONFIGS, GeneratorConfig, SPLGenerator, build_generator
from .inpainter import Inpainter
from .masks import MaskError, prepare_mask
from .weights import default_checkpoint

__all__ = [
    "CONFIGS",
    "CheckpointError",
    "GeneratorConfig",
    "Inpainter",
    "MaskError",
    "SPLGenerator",
    "build_generator",
    "default_checkpoint",
    "load_generator",
    "prepare_mask",
    "save_generator",
]
