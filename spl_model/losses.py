"""SPL's training objective, term by term (main.py of the release)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor):
    """L1 over the whole image, holes weighted 3× (weight 1 + 2·mask)."""
    return torch.mean(torch.abs(prediction - target) * (1 + 2 * mask))


def prior_loss(prior: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 between the learned prior and the teacher's features, holes weighted 4× at 64²."""
    mask_64 = F.interpolate(mask, size=prior.shape[2:], mode="nearest")
    return torch.mean(torch.abs(prior - teacher) * (1 + 3 * mask_64))


def adversarial_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Non-saturating GAN loss on sigmoid patch scores (binary cross-entropy)."""
    target = torch.ones_like(scores) if real else torch.zeros_like(scores)
    return F.binary_cross_entropy(scores, target)
