"""The SPL generator (Zhang et al., "Context-Aware Image Inpainting with Learned Semantic Priors").

Two branches:
- the image branch encodes the masked 256² image with RN-B (region normalisation that knows the
  hole), runs SPADE residual blocks conditioned on the semantic layout, and decodes with pixel
  shuffle and RN-L;
- the semantic branch reads the masked 512² image + mask, runs residual dense blocks with global
  feature fusion and residual blocks into a layout (B×4w×64×64), and maps it with a 1×1 conv onto
  the pretext teacher's channels: the learned semantic prior.

`forward(image, mask, masked_512, mask_512) -> (prediction, prior)` keeps the official signature,
and parameter names equal the official generator's, so the released checkpoints load unchanged.

Input convention: the paper's generator blanks the hole itself (holes = 1.0). A config with
`prefill="telea"` (this project's bundled model) instead expects `image` with its hole already
filled by OpenCV Telea (`spl_model.prefill`; the Inpainter and training apply it), reads that
image as it is, and predicts a residual over it: prediction = clip(image + tanh(decoder)). Its
last decoder layer starts at zero, so an untrained model returns exactly the pre-fill.

Edge gain (residual models, eval mode only): near known pixels the diffused pre-fill is already
close to the truth, and a small model's correction there costs more than it brings. With
`edge_gain` < 1 the correction is scaled by `edge_gain` within `edge_px[0]` px of the nearest
known pixel (chessboard distance at model scale), rising linearly to 1 at `edge_px[1]` px. A
thin hole (a caption's strokes) is all edge; an object's interior keeps the full correction.
`edge_thin` = (full, none) keeps the gain to thin holes: in full where the deepest hole pixel
nearby is at most `full` px deep, none where it is `none` px deep, so the rim of an object or
of a wide brush stroke keeps the full correction too. Training never applies the gain: the
network learns the plain residual, and the gain is calibrated on held-out photos afterwards
(bench/edge_gain.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .layers import (
    BasicRegionNorm,
    LearnableRegionNorm,
    ResidualDenseBlock,
    ResnetBlock,
    SpadeResnetBlock,
)
from .prefill import PREFILLS


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of an SPL generator. `spl` is the paper's; `spl-small` is for CPU demos and tests."""

    width: int = 64  # image-encoder stem channels; the bottleneck and layout use 4 × width
    middle_blocks: int = 8  # SPADE residual blocks
    dense_blocks: int = 16  # residual dense blocks in the semantic branch
    dense_layers: int = 6  # layers per residual dense block
    growth: int = 32  # growth rate of a dense layer
    recon_blocks: int = 4  # residual blocks that turn fused features into the layout
    spade_hidden: int = 128
    teacher_channels: int = 152  # TResNet-L layer2 for the paper's weights
    rn_threshold: float = 0.8
    prefill: str = "none"  # "none": the paper's input; "telea": residual over a Telea pre-fill
    edge_gain: float = 1.0  # residual models, eval only: the correction's gain near known pixels
    edge_px: tuple[int, int] = (4, 12)  # the gain rises from edge_gain to 1 between these depths
    edge_thin: tuple[int, int] | None = None  # the gain only where the hole is thin (see above)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or value < 1):
                raise ValueError(f"GeneratorConfig.{f.name} must be a positive int, got {value!r}")
        if self.prefill not in PREFILLS:
            raise ValueError(
                f"GeneratorConfig.prefill must be one of {PREFILLS}, got {self.prefill!r}"
            )
        if not 0.0 <= self.edge_gain <= 1.0:
            raise ValueError(f"GeneratorConfig.edge_gain must be in [0, 1], got {self.edge_gain!r}")
        near, far = edge_px = tuple(self.edge_px)  # JSON gives a list
        if not all(isinstance(v, int) for v in edge_px) or not 0 <= near < far:
            raise ValueError(
                f"GeneratorConfig.edge_px must be two ints 0 <= near < far, got {self.edge_px!r}"
            )
        object.__setattr__(self, "edge_px", edge_px)
        if self.edge_thin is not None:
            thin = tuple(self.edge_thin)
            if (
                len(thin) != 2
                or not all(isinstance(v, int) for v in thin)
                or not 0 < thin[0] < thin[1]
            ):
                raise ValueError(
                    "GeneratorConfig.edge_thin must be None or two ints 0 < full < none, "
                    f"got {self.edge_thin!r}"
                )
            object.__setattr__(self, "edge_thin", thin)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GeneratorConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown generator config fields {unknown}; known: {sorted(known)}")
        return cls(**data)


CONFIGS: dict[str, GeneratorConfig] = {
    "spl": GeneratorConfig(),
    "spl-small": GeneratorConfig(
        width=32,
        middle_blocks=4,
        dense_blocks=4,
        dense_layers=4,
        growth=16,
        recon_blocks=2,
        spade_hidden=32,
        teacher_channels=40,  # EfficientNet-Lite0 at stride 8
    ),
}


class SPLGenerator(nn.Module):
    """Image branch + semantic-prior branch; see the module docstring."""

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or GeneratorConfig()
        w, deep = cfg.width, 4 * cfg.width

        # Image encoder on the masked 256² image: 256 → 64.
        self.encoder_prePad = nn.ReflectionPad2d(3)
        self.encoder_conv1 = nn.Conv2d(3, w, kernel_size=7)
        self.encoder_in1 = BasicRegionNorm(w)
        self.encoder_conv2 = nn.Conv2d(w, 2 * w, kernel_size=4, stride=2, padding=1)
        self.encoder_in2 = BasicRegionNorm(2 * w)
        self.encoder_conv3 = nn.Conv2d(2 * w, deep, kernel_size=4, stride=2, padding=1)
        self.encoder_in3 = BasicRegionNorm(deep)

        # Layout-conditioned middle.
        self.middle = nn.Sequential(
            *[
                SpadeResnetBlock(deep, deep, dilation=2, hidden=cfg.spade_hidden)
                for _ in range(cfg.middle_blocks)
            ]
        )

        # Semantic encoder on the masked 512² image + mask: 512 → 64.
        self.encoder_prePad_sm = nn.ReflectionPad2d(3)
        self.encoder_conv1_sm = nn.Conv2d(4, w, kernel_size=7)
        self.encoder_conv2_sm = nn.Conv2d(w, 2 * w, kernel_size=4, stride=2, padding=1)
        self.encoder_conv3_sm = nn.Conv2d(2 * w, deep, kernel_size=4, stride=2, padding=1)
        self.encoder_conv4_sm = nn.Conv2d(deep, deep, kernel_size=4, stride=2, padding=1)
        self.encoder_sm_out = nn.Conv2d(deep, deep, kernel_size=3, padding=1)

        # Residual dense blocks, global feature fusion, layout reconstruction, prior head.
        self.rdbs = nn.ModuleList(
            [
                ResidualDenseBlock(deep, cfg.growth, cfg.dense_layers)
                for _ in range(cfg.dense_blocks)
            ]
        )
        self.gff = nn.Sequential(
            nn.Conv2d(deep * cfg.dense_blocks, deep, kernel_size=1),
            nn.Conv2d(deep, deep, kernel_size=3, padding=1),
        )
        self.feature_recon = nn.Sequential(*[ResnetBlock(deep) for _ in range(cfg.recon_blocks)])
        self.feature_mapping = nn.Conv2d(deep, cfg.teacher_channels, kernel_size=1)

        # Decoder: 64 → 256 by pixel shuffle, RN-L after each upsampling.
        self.decoder = nn.Sequential(
            nn.Conv2d(deep, 2 * w * 4, kernel_size=3, padding=1),
            nn.PixelShuffle(2),
            LearnableRegionNorm(2 * w, cfg.rn_threshold),
            nn.ReLU(),
            nn.Conv2d(2 * w, w * 4, kernel_size=3, padding=1),
            nn.PixelShuffle(2),
            LearnableRegionNorm(w, cfg.rn_threshold),
            nn.ReLU(),
            nn.ReflectionPad2d(3),
            nn.Conv2d(w, 3, kernel_size=7),
        )
        if cfg.prefill != "none":  # residual over the pre-fill: start as exactly the pre-fill
            nn.init.zeros_(self.decoder[-1].weight)
            nn.init.zeros_(self.decoder[-1].bias)

    def encode_image(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.encoder_in1(self.encoder_conv1(self.encoder_prePad(x)), mask))
        x = torch.relu(self.encoder_in2(self.encoder_conv2(x), mask))
        return torch.relu(self.encoder_in3(self.encoder_conv3(x), mask))

    def encode_semantics(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder_conv1_sm(self.encoder_prePad_sm(x))
        for conv in (self.encoder_conv2_sm, self.encoder_conv3_sm, self.encoder_conv4_sm):
            x = conv(nn.functional.leaky_relu(x, 0.1))
        return nn.functional.leaky_relu(x, 0.1)

    def semantic_layout(self, masked_512: torch.Tensor, mask_512: torch.Tensor) -> torch.Tensor:
        """The B×4w×64×64 layout that conditions the image branch."""
        features = self.encode_semantics(torch.cat([masked_512, mask_512], dim=1))
        skip = self.encoder_sm_out(features)
        local = []
        for block in self.rdbs:
            skip = block(skip)
            local.append(skip)
        fused = self.gff(torch.cat(local, dim=1)) + features
        return self.feature_recon(fused)

    def forward(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        masked_512: torch.Tensor,
        mask_512: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image B×3×256² in [0,1], mask B×1×256² (1 = hole) → (prediction in [0,1], prior).

        With `prefill` set, `image` carries the pre-filled hole (see the module docstring).
        """
        residual = self.config.prefill != "none"
        x = self.encode_image(image if residual else image * (1 - mask) + mask, mask)
        layout = self.semantic_layout(masked_512, mask_512)
        prior = self.feature_mapping(layout)
        for block in self.middle:
            x = block(x, layout)
        out = torch.tanh(self.decoder(x))
        if not residual:
            return (out + 1) / 2, prior
        if not self.training and self.config.edge_gain < 1.0:
            cfg = self.config
            out = out * edge_gain(mask, cfg.edge_gain, *cfg.edge_px, thin=cfg.edge_thin)
        return (image + out).clamp(0, 1), prior


def edge_gain(
    mask: torch.Tensor, gain: float, near: int, far: int, thin: tuple[int, int] | None = None
) -> torch.Tensor:
    """B×1×H×W: `gain` at hole pixels within `near` px of a known pixel (mask 0), rising
    linearly to 1 at `far` px; depth is the chessboard distance, counted by erosions.

    With `thin` = (full, none), the gain applies only where the hole is thin: in full where the
    deepest hole pixel within `none` px is at most `full` px deep (a caption's stroke), not at
    all where it is `none` px deep or more (the rim of an object-sized hole), linearly between.
    """
    steps = max(far, thin[1] if thin else 0)
    depth = torch.ones_like(mask)  # 1 next to a known pixel, as cv2's DIST_C counts
    inner = mask
    for _ in range(steps - 1):
        inner = -nn.functional.max_pool2d(-inner, 3, stride=1, padding=1)  # one erosion
        depth = depth + inner
    ramp = ((depth - near) / (far - near)).clamp(0, 1)
    scale = gain + (1.0 - gain) * ramp
    if thin is None:
        return scale
    full, none = thin
    deepest = nn.functional.max_pool2d(depth * mask, 2 * none + 1, stride=1, padding=none)
    share = ((none - deepest) / (none - full)).clamp(0, 1)  # 1: thin, 0: thick
    return 1.0 - share * (1.0 - scale)


def build_generator(config: str | GeneratorConfig | dict = "spl") -> SPLGenerator:
    """A freshly initialised generator from a named, explicit or dict configuration."""
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown generator config {config!r}; choose from {sorted(CONFIGS)}")
        config = CONFIGS[config]
    elif isinstance(config, dict):
        config = GeneratorConfig.from_dict(config)
    return SPLGenerator(config)
