import math

import pytest
import torch

from genlab import losses

ZERO = torch.zeros(8)


@pytest.mark.parametrize(
    "d_loss, g_loss, d_at_zero, g_at_zero",
    [
        # log σ(0) = -log 2 on both sides of the logistic game
        (losses.d_nonsaturating_loss, losses.g_nonsaturating_loss, 2 * math.log(2), math.log(2)),
        (losses.d_nonsaturating_loss, losses.g_minimax_loss, 2 * math.log(2), -math.log(2)),
        (losses.d_hinge_loss, losses.g_hinge_loss, 2.0, 0.0),
        (losses.d_wasserstein_loss, losses.g_wasserstein_loss, 0.0, 0.0),
        (losses.d_lsgan_loss, losses.g_lsgan_loss, 1.0, 1.0),
    ],
)
def test_losses_at_undecided_discriminator(d_loss, g_loss, d_at_zero, g_at_zero):
    assert d_loss(ZERO, ZERO).item() == pytest.approx(d_at_zero, abs=1e-6)
    assert g_loss(ZERO).item() == pytest.approx(g_at_zero, abs=1e-6)


def test_logistic_losses_match_their_formulas():
    logits_real, logits_fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    d = lambda x: torch.sigmoid(x)  # noqa: E731
    expected_d = -(torch.log(d(logits_real)).mean() + torch.log(1 - d(logits_fake)).mean())
    assert losses.d_nonsaturating_loss(logits_real, logits_fake).item() == pytest.approx(expected_d.item(), rel=1e-6)
    assert losses.g_minimax_loss(logits_fake).item() == pytest.approx(
        torch.log(1 - d(logits_fake)).mean().item(), rel=1e-6
    )
    assert losses.g_nonsaturating_loss(logits_fake).item() == pytest.approx(
        -torch.log(d(logits_fake)).mean().item(), rel=1e-6
    )


def test_one_sided_label_smoothing_is_cross_entropy_against_the_real_label():
    logits_real, logits_fake = torch.tensor([2.0, -1.0, 4.0]), torch.tensor([0.5, -3.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits_real, torch.full((3,), 0.9)
    ) + torch.nn.functional.binary_cross_entropy_with_logits(logits_fake, torch.zeros(2))
    smoothed = losses.d_nonsaturating_loss(logits_real, logits_fake, real_label=0.9)
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-6)
    # D's best answer on a real image is now 0.9: the loss rises again past logit(0.9) = ln 9
    near, far = (losses.d_nonsaturating_loss(torch.tensor([x]), torch.tensor([-9.0]), 0.9) for x in (math.log(9), 9.0))
    assert near < far


def test_minimax_generator_saturates_when_discriminator_wins():
    # With D sure the fakes are fake (logit -10) the minimax gradient vanishes; the NS one does not.
    logits = torch.full((4,), -10.0, requires_grad=True)
    (g_mm,) = torch.autograd.grad(losses.g_minimax_loss(logits), logits)
    (g_ns,) = torch.autograd.grad(losses.g_nonsaturating_loss(logits), logits)
    assert g_mm.abs().max() < 1e-4 < g_ns.abs().min()


class Linear(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        return (x.flatten(1) * self.w).sum(1)


def test_gradient_penalty_is_zero_for_unit_norm_linear_critic():
    w = torch.randn(3 * 4 * 4)
    critic = Linear(w / w.norm())
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    assert losses.gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    critic2 = Linear(3 * w / w.norm())  # gradient norm 3 everywhere -> (3 - 1)^2
    assert losses.gradient_penalty(critic2, real, fake).item() == pytest.approx(4.0, rel=1e-5)


def test_r1_of_linear_discriminator_is_squared_weight_norm():
    w = torch.randn(12)
    real = torch.randn(6, 3, 2, 2, requires_grad=True)
    assert losses.r1_penalty(Linear(w)(real), real).item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)


def test_kl_divergence_closed_form():
    zeros = torch.zeros(3, 5)
    assert torch.equal(losses.kl_divergence(zeros, zeros), torch.zeros(3))
    # KL(N(1, 4) || N(0, 1)) = 0.5 (4 + 1 - 1 - log 4) per dimension
    mu, logvar = torch.ones(1, 2), torch.full((1, 2), math.log(4.0))
    assert losses.kl_divergence(mu, logvar).item() == pytest.approx(2 * 0.5 * (4 + 1 - 1 - math.log(4)), rel=1e-6)
