"""One SPL training step (generator + discriminator), pure PyTorch: no data loading, no Ray.

The objective is the release's: D on (real, fake) with BCE; G with
gan_weight·BCE + l1_weight·L1(1 + 2m) + prior_weight·L1(prior, teacher, 1 + 3m₆₄);
Adam(lr 1e-4, betas (0, 0.9)) for both.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .losses import adversarial_loss, prior_loss, reconstruction_loss


@dataclass(frozen=True)
class LossWeights:
    l1: float = 10.0
    gan: float = 1.0
    prior: float = 1.0


class SPLTrainer:
    """Holds the networks and optimizers; `step` runs one G and one D update."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        teacher: nn.Module | None,
        lr: float = 1e-4,
        weights: LossWeights = LossWeights(),
        betas: tuple[float, float] = (0.0, 0.9),
        precision: str = "fp32",
    ) -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        self.generator, self.discriminator, self.teacher = generator, discriminator, teacher
        self.weights, self.precision = weights, precision
        self.g_opt = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
        self.d_opt = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
        self.step_count = 0

    def set_lr(self, lr: float) -> None:
        for opt in (self.g_opt, self.d_opt):
            for group in opt.param_groups:
                group["lr"] = lr

    def _autocast(self, device: torch.device):
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def step(
        self,
        image: torch.Tensor,
        image_512: torch.Tensor,
        mask: torch.Tensor,
        prefilled: torch.Tensor | None = None,
    ) -> dict:
        """image B×3×256² and image_512 B×3×512² in [0,1], mask B×1×256² (1 = hole).

        `prefilled` is the generator's input for configs with a pre-fill (the image with its
        hole filled classically); the loss always compares against the clean `image`.
        """
        self.generator.train()
        self.discriminator.train()
        with torch.no_grad():
            masked_512 = F.interpolate(image * (1 - mask) + mask, size=512, mode="nearest")
            mask_512 = F.interpolate(mask, size=512, mode="nearest")
            with self._autocast(image.device):
                target = self.teacher(image_512) if self.teacher is not None else None
        source = image if prefilled is None else prefilled
        with self._autocast(image.device):
            prediction, prior = self.generator(source, mask, masked_512, mask_512)
            d_real, _ = self.discriminator(image)
            d_fake, _ = self.discriminator(prediction.detach())
        # Losses in float32, outside autocast (BCE refuses to autocast).
        prediction, prior = prediction.float(), prior.float()
        d_loss = (
            adversarial_loss(d_real.float(), True) + adversarial_loss(d_fake.float(), False)
        ) / 2
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()

        with self._autocast(image.device):
            g_fake, _ = self.discriminator(prediction)
        g_gan = adversarial_loss(g_fake.float(), True)
        g_l1 = reconstruction_loss(prediction, image, mask)
        g_prior = (
            prior_loss(prior, target.float(), mask) if target is not None else g_l1.new_zeros(())
        )
        g_loss = self.weights.gan * g_gan + self.weights.l1 * g_l1 + self.weights.prior * g_prior
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        self.step_count += 1
        return {
            "g_loss": g_loss.item(),
            "g_l1": g_l1.item(),
            "g_gan": g_gan.item(),
            "g_prior": g_prior.item(),
            "d_loss": d_loss.item(),
        }

    def state_dict(self) -> dict:
        """Everything needed to resume, as tensors and plain containers (weights_only-loadable)."""
        return {
            "discriminator": self.discriminator.state_dict(),
            "g_opt": self.g_opt.state_dict(),
            "d_opt": self.d_opt.state_dict(),
            "step": self.step_count,
        }

    def load_state_dict(self, state: dict) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        self.step_count = int(state["step"])
