"""One SPL training step (generator + discriminator), pure PyTorch: no data loading, no Ray.

The objective is the release's: D on (real, fake) with BCE; G with
gan_weight·BCE + l1_weight·L1(1 + 2m) + prior_weight·L1(prior, teacher, 1 + 3m₆₄);
Adam(lr 1e-4, betas (0, 0.9)) for both.
"""

from __future__ import annotations

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
    ) -> None:
        self.generator, self.discriminator, self.teacher = generator, discriminator, teacher
        self.weights = weights
        self.g_opt = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.0, 0.9))
        self.d_opt = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.0, 0.9))
        self.step_count = 0

    def step(self, image: torch.Tensor, image_512: torch.Tensor, mask: torch.Tensor) -> dict:
        """image B×3×256² and image_512 B×3×512² in [0,1], mask B×1×256² (1 = hole)."""
        self.generator.train()
        self.discriminator.train()
        with torch.no_grad():
            masked_512 = F.interpolate(image * (1 - mask) + mask, size=512, mode="nearest")
            mask_512 = F.interpolate(mask, size=512, mode="nearest")
            target = self.teacher(image_512) if self.teacher is not None else None
        prediction, prior = self.generator(image, mask, masked_512, mask_512)

        d_real, _ = self.discriminator(image)
        d_fake, _ = self.discriminator(prediction.detach())
        d_loss = (adversarial_loss(d_real, True) + adversarial_loss(d_fake, False)) / 2
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()

        g_fake, _ = self.discriminator(prediction)
        g_gan = adversarial_loss(g_fake, True)
        g_l1 = reconstruction_loss(prediction, image, mask)
        g_prior = prior_loss(prior, target, mask) if target is not None else g_l1.new_zeros(())
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
