"""The PatchGAN discriminator SPL trains against (spectral norm, sigmoid patch scores).

Parameter names equal the release's `D_Net`, so its discriminator weights (in the official
checkpoints) can seed fine-tuning.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm


def _stage(cin: int, cout: int, stride: int, activate: bool = True) -> nn.Sequential:
    conv = spectral_norm(nn.Conv2d(cin, cout, kernel_size=4, stride=stride, padding=1, bias=False))
    return nn.Sequential(conv, nn.LeakyReLU(0.2)) if activate else nn.Sequential(conv)


class PatchDiscriminator(nn.Module):
    """Five 4×4 convs (64-128-256-512-1 channels); returns patch probabilities and features."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = _stage(in_channels, 64, 2)
        self.conv2 = _stage(64, 128, 2)
        self.conv3 = _stage(128, 256, 2)
        self.conv4 = _stage(256, 512, 1)
        self.conv5 = _stage(512, 1, 1, activate=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for stage in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            x = stage(x)
            features.append(x)
        return torch.sigmoid(x), features
