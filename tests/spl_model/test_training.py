"""Training pieces: the objective's terms, the teacher, and steps that learn and resume."""

from __future__ import annotations

import io

import pytest
import torch

from spl_model import build_generator
from spl_model.discriminator import PatchDiscriminator
from spl_model.losses import adversarial_loss, prior_loss, reconstruction_loss
from spl_model.teachers import build_teacher
from spl_model.training import SPLTrainer

TINY = dict(
    width=8, middle_blocks=1, dense_blocks=1, dense_layers=2, growth=8, recon_blocks=1,
    spade_hidden=8, teacher_channels=40,
)  # fmt: skip


@pytest.fixture(scope="module")
def teacher():
    return build_teacher("efficientnet-lite0")


def fixed_batch(n: int = 2):
    g = torch.Generator().manual_seed(0)
    image_512 = torch.rand(n, 3, 512, 512, generator=g)
    image = torch.nn.functional.interpolate(image_512, size=256, mode="area")
    mask = torch.zeros(n, 1, 256, 256)
    mask[:, :, 64:160, 80:200] = 1
    return image, image_512, mask


def test_reconstruction_loss_weights_holes_three_times():
    target = torch.zeros(1, 3, 2, 2)
    prediction = torch.ones(1, 3, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert reconstruction_loss(prediction, target, mask).item() == pytest.approx(
        (3 + 1 + 1 + 1) / 4
    )


def test_prior_loss_weights_holes_four_times_at_the_priors_resolution():
    prior, teacher_features = torch.ones(1, 2, 64, 64), torch.zeros(1, 2, 64, 64)
    mask = torch.zeros(1, 1, 256, 256)
    mask[:, :, :128] = 1  # top half is hole
    assert prior_loss(prior, teacher_features, mask).item() == pytest.approx((4 + 1) / 2)


def test_adversarial_loss_is_binary_cross_entropy():
    scores = torch.full((1, 1, 4, 4), 0.25)
    assert adversarial_loss(scores, True).item() == pytest.approx(-torch.log(torch.tensor(0.25)))
    assert adversarial_loss(scores, False).item() == pytest.approx(-torch.log(torch.tensor(0.75)))


def test_teacher_gives_a_frozen_40_channel_64x64_map(teacher):
    features = teacher(torch.rand(1, 3, 512, 512))
    assert features.shape == (1, 40, 64, 64)
    teacher.train()
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())


def test_training_steps_reduce_the_loss_on_a_fixed_batch(teacher):
    torch.manual_seed(0)
    trainer = SPLTrainer(build_generator(TINY), PatchDiscriminator(), teacher, lr=1e-3)
    batch = fixed_batch()
    history = [trainer.step(*batch) for _ in range(12)]
    first = sum(h["g_l1"] + h["g_prior"] for h in history[:3])
    last = sum(h["g_l1"] + h["g_prior"] for h in history[-3:])
    assert last < 0.8 * first
    assert trainer.step_count == 12


def test_trainer_state_round_trips_through_a_weights_only_file():
    torch.manual_seed(0)
    trainer = SPLTrainer(build_generator(TINY), PatchDiscriminator(), None)
    trainer.step(*fixed_batch(1))
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    buffer.seek(0)
    other = SPLTrainer(build_generator(TINY), PatchDiscriminator(), None)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    assert other.step_count == 1
    assert other.g_opt.state_dict()["state"].keys() == trainer.g_opt.state_dict()["state"].keys()
    for a, b in zip(
        other.discriminator.state_dict().values(), trainer.discriminator.state_dict().values()
    ):
        assert torch.equal(a, b)
