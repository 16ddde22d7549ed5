"""Building blocks of the SPL generator.

Region normalisation (RN-B with the known hole mask, RN-L with a self-predicted one), SPADE,
residual dense blocks and residual blocks. Attribute names follow the official release
(github WendongZh/SPL) so that its checkpoints load unchanged; the arithmetic follows its order
of operations so that outputs agree to float32 rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def region_instance_norm(x: torch.Tensor, region: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Instance-normalise `x` separately inside and outside a binary `region` (B×1×H×W or B×C×H×W).

    Each part is normalised with its own per-sample, per-channel statistics and scaled back by the
    square root of its area fraction, as in the paper's RN (the inside and outside are summed).
    """
    return _normalise_region(x * region, region, eps) + _normalise_region(
        x * (1 - region), 1 - region, eps
    )


def _normalise_region(part: torch.Tensor, region: torch.Tensor, eps: float) -> torch.Tensor:
    height, width = part.shape[2:]
    area = region.sum(dim=(2, 3), keepdim=True)
    area = torch.where(area == 0, torch.ones_like(area), area)
    mean = part.sum(dim=(2, 3), keepdim=True) / area
    filled = part + (1 - region) * mean  # pixels outside the region take the region's mean
    return F.instance_norm(filled, eps=eps) * torch.sqrt(area / (height * width))


class BasicRegionNorm(nn.Module):
    """RN-B: region normalisation driven by the known hole mask, with separate affine terms."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.foreground_gamma = nn.Parameter(torch.zeros(channels))
        self.foreground_beta = nn.Parameter(torch.zeros(channels))
        self.background_gamma = nn.Parameter(torch.zeros(channels))
        self.background_beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = F.interpolate(mask, size=x.shape[2:], mode="nearest").detach()
        normed = region_instance_norm(x, mask)
        fg = (normed * mask) * (1 + _channel(self.foreground_gamma)) + _channel(
            self.foreground_beta
        )
        bg = (normed * (1 - mask)) * (1 + _channel(self.background_gamma)) + _channel(
            self.background_beta
        )
        return fg + bg


class SelfAwareAffine(nn.Module):
    """Predicts a spatial importance map and affine terms from channel mean and max."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=padding, bias=False)
        self.gamma_conv = nn.Conv2d(1, 1, kernel_size, padding=padding)
        self.beta_conv = nn.Conv2d(1, 1, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        importance = torch.sigmoid(self.conv1(pooled))
        return importance, self.gamma_conv(importance), self.beta_conv(importance)


class LearnableRegionNorm(nn.Module):
    """RN-L: region normalisation on a region the layer detects itself (importance ≥ threshold)."""

    def __init__(self, channels: int, threshold: float = 0.8) -> None:
        super().__init__()
        self.channels = channels
        self.threshold = threshold
        self.sa = SelfAwareAffine()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        importance, gamma, beta = self.sa(x)
        region = (importance.detach() >= self.threshold).to(x.dtype)
        return region_instance_norm(x, region) * (1 + gamma) + beta


class SPADE(nn.Module):
    """Spatially-adaptive denormalisation conditioned on the semantic layout."""

    def __init__(self, channels: int, layout_channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(layout_channels, hidden, kernel_size=3, padding=1), nn.ReLU()
        )
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, layout: torch.Tensor) -> torch.Tensor:
        normed = F.instance_norm(x, eps=1e-5)
        layout = F.interpolate(layout, size=x.shape[2:], mode="nearest")
        hidden = self.mlp_shared(layout)
        return normed * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class SpadeResnetBlock(nn.Module):
    """SPADE → ReLU → dilated 3×3 conv → SPADE → ReLU → 3×3 conv, plus the identity."""

    def __init__(self, channels: int, layout_channels: int, dilation: int = 2, hidden: int = 128):
        super().__init__()
        # A Sequential only for the official parameter names (conv_block.0/.3/.4/.7).
        self.conv_block = nn.Sequential(
            SPADE(channels, layout_channels, hidden),
            nn.ReLU(),
            nn.ReflectionPad2d(dilation),
            nn.Conv2d(channels, channels, kernel_size=3, dilation=dilation),
            SPADE(channels, layout_channels, hidden),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
        )

    def forward(self, x: torch.Tensor, layout: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.conv_block:
            out = layer(out, layout) if isinstance(layer, SPADE) else layer(out)
        return out + x


class ResnetBlock(nn.Module):
    """Reflection-padded 3×3 conv → ReLU → 3×3 conv, plus the identity (no final ReLU)."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(dilation),
            nn.Conv2d(channels, channels, kernel_size=3, dilation=dilation),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class DenseLayer(nn.Module):
    """3×3 conv + ReLU whose output is concatenated to its input."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, growth, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, F.relu(self.conv(x))], dim=1)


class ResidualDenseBlock(nn.Module):
    """`num_layers` dense layers, a 1×1 local feature fusion, and a local residual."""

    def __init__(self, channels: int, growth: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *[DenseLayer(channels + growth * i, growth) for i in range(num_layers)]
        )
        self.lff = nn.Conv2d(channels + growth * num_layers, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.lff(self.layers(x))


def _channel(v: torch.Tensor) -> torch.Tensor:
    return v[None, :, None, None]
