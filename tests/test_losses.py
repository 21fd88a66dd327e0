"""slamp.losses: reparameterised sampling, the Gaussian KL and the L2 likelihood (notebook 00_elbo)."""
import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from slamp.losses import gaussian_kl, kl_loss, reconstruction_loss, reparameterize


def gaussians(*shape, seed=0):
    """Random (mu, logvar) in float64."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator, dtype=torch.float64),
            torch.randn(*shape, generator=generator, dtype=torch.float64))


# gaussian_kl --------------------------------------------------------------------------------------

def test_kl_between_standard_normals_is_zero():
    zero = torch.zeros(5)
    assert torch.equal(gaussian_kl(zero, zero, zero, zero), torch.zeros(5))


def test_kl_of_a_gaussian_with_itself_is_zero():
    mu, logvar = gaussians(100, 7)
    assert gaussian_kl(mu, logvar, mu, logvar).abs().max() < 1e-12


def test_kl_of_a_shifted_unit_gaussian_is_half_the_squared_shift():
    shift = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0])
    zero = torch.zeros(())
    assert torch.allclose(gaussian_kl(shift, zero, zero, zero), shift**2 / 2)


def test_kl_of_a_rescaled_standard_normal():
    # KL(N(0, s^2) || N(0, 1)) = (s^2 - 1 - log s^2) / 2
    variance = torch.tensor([0.1, 0.5, 1.0, 2.0, 10.0], dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float64)
    expected = (variance - 1 - variance.log()) / 2
    assert torch.allclose(gaussian_kl(zero, variance.log(), zero, zero), expected)


def test_kl_matches_torch_distributions_with_broadcasting():
    mu_q, logvar_q = gaussians(6, 4, 9, seed=1)
    mu_p, logvar_p = gaussians(1, 4, 9, seed=2)  # one prior shared by the batch
    expected = kl_divergence(Normal(mu_q, (0.5 * logvar_q).exp()), Normal(mu_p, (0.5 * logvar_p).exp()))
    found = gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)
    assert found.shape == (6, 4, 9)
    assert torch.allclose(found, expected, rtol=1e-10, atol=1e-12)


def test_kl_is_non_negative_and_finite_for_extreme_log_variances():
    mu_q, logvar_q = gaussians(10_000, seed=3)
    mu_p, logvar_p = gaussians(10_000, seed=4)
    assert (gaussian_kl(mu_q, 5 * logvar_q, mu_p, 5 * logvar_p) >= 0).all()
    tiny = torch.full((3,), -80.0)  # both variances ~1e-35: their ratio is still 1
    assert torch.allclose(gaussian_kl(torch.zeros(3), tiny, torch.zeros(3), tiny), torch.zeros(3))


def test_kl_gradients_are_correct():
    inputs = [tensor.requires_grad_() for tensor in (*gaussians(3, 4, seed=5), *gaussians(3, 4, seed=6))]
    assert torch.autograd.gradcheck(gaussian_kl, inputs)


def test_kl_of_half_precision_is_computed_in_float32():
    mu, logvar = torch.randn(4, 8), torch.randn(4, 8)
    low = gaussian_kl(mu.bfloat16(), logvar.bfloat16(), torch.zeros(()), torch.zeros(()))
    assert low.dtype == torch.float32
    assert torch.allclose(low, gaussian_kl(mu.bfloat16().float(), logvar.bfloat16().float(),
                                           torch.zeros(()), torch.zeros(())))


# kl_loss -------------------------------------------------------------------------------------------

def test_kl_loss_sums_dimensions_and_steps_and_averages_the_batch():
    (mu_q, logvar_q), (mu_p, logvar_p) = gaussians(3, 4, 5, seed=7), gaussians(3, 4, 5, seed=8)
    total = 0.0
    for b in range(3):
        for t in range(4):
            for k in range(5):
                q = Normal(mu_q[b, t, k], (0.5 * logvar_q[b, t, k]).exp())
                p = Normal(mu_p[b, t, k], (0.5 * logvar_p[b, t, k]).exp())
                total += kl_divergence(q, p).item()
    assert kl_loss(mu_q, logvar_q, mu_p, logvar_p).item() == pytest.approx(total / 3, rel=1e-12)


def test_kl_loss_is_the_sum_of_the_official_per_step_reductions():
    (mu_q, logvar_q), (mu_p, logvar_p) = gaussians(8, 6, 10, seed=9), gaussians(8, 6, 10, seed=10)
    whole = kl_loss(mu_q, logvar_q, mu_p, logvar_p)
    steps = [kl_loss(mu_q[:, t], logvar_q[:, t], mu_p[:, t], logvar_p[:, t]) for t in range(6)]
    # The official code, per step: KL summed over latent dimensions and batch, divided by B.
    official = [gaussian_kl(mu_q[:, t], logvar_q[:, t], mu_p[:, t], logvar_p[:, t]).sum() / 8 for t in range(6)]
    assert whole.ndim == 0
    assert torch.isclose(whole, sum(steps)) and torch.isclose(whole, sum(official))


def test_kl_loss_against_a_standard_normal_prior_broadcasts():
    mu, logvar = gaussians(4, 3, 2, seed=11)
    zeros = torch.zeros(1, 1, 1, dtype=torch.float64)
    expected = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum() / 4
    assert torch.isclose(kl_loss(mu, logvar, zeros, zeros), expected)


def test_kl_loss_lets_gradients_reach_posterior_and_prior():
    tensors = [tensor.requires_grad_() for tensor in (*gaussians(2, 3, seed=12), *gaussians(2, 3, seed=13))]
    kl_loss(*tensors).backward()
    assert all(tensor.grad is not None and tensor.grad.abs().sum() > 0 for tensor in tensors)


# reconstruction_loss -------------------------------------------------------------------------------

def test_reconstruction_loss_is_per_step_mean_summed_over_time():
    prediction, target = torch.rand(2, 3, 1, 4, 5, dtype=torch.float64), torch.rand(2, 3, 1, 4, 5, dtype=torch.float64)
    by_hand = 0.0
    for t in range(3):
        errors = [(prediction[b, t, c, y, x] - target[b, t, c, y, x]).item() ** 2
                  for b in range(2) for c in range(1) for y in range(4) for x in range(5)]
        by_hand += sum(errors) / len(errors)
    assert reconstruction_loss(prediction, target).item() == pytest.approx(by_hand, rel=1e-12)


def test_reconstruction_loss_equals_the_official_mse_per_step():
    prediction, target = torch.rand(4, 5, 3, 8, 8), torch.rand(4, 5, 3, 8, 8)
    official = sum(torch.nn.functional.mse_loss(prediction[:, t], target[:, t]) for t in range(5))
    assert torch.isclose(reconstruction_loss(prediction, target), official)
    assert reconstruction_loss(target, target) == 0


def test_reconstruction_loss_weights_every_step_equally():
    target = torch.zeros(2, 4, 1, 3, 3)
    prediction = target.clone()
    prediction[:, 2] = 0.5  # one wrong step: its mean squared error is 0.25
    assert reconstruction_loss(prediction, target).item() == pytest.approx(0.25)


def test_reconstruction_loss_gradient_and_half_precision():
    prediction = torch.rand(2, 3, 1, 4, 4, requires_grad=True)
    target = torch.rand(2, 3, 1, 4, 4)
    reconstruction_loss(prediction, target).backward()
    # d/dp of sum_t mean_{b,c,h,w} (p - x)^2 = 2 (p - x) / (B C H W)
    assert torch.allclose(prediction.grad, 2 * (prediction - target).detach() / (2 * 16))
    assert reconstruction_loss(prediction.bfloat16(), target.bfloat16()).dtype == torch.float32


# reparameterize ------------------------------------------------------------------------------------

def test_reparameterize_has_the_requested_mean_and_variance():
    n = 200_000
    mu = torch.tensor([0.0, 1.5, -2.0], dtype=torch.float64)
    logvar = torch.tensor([0.0, -1.0, 1.2], dtype=torch.float64)
    z = reparameterize(mu.expand(n, 3), logvar.expand(n, 3), generator=torch.Generator().manual_seed(0))
    assert z.shape == (n, 3) and z.dtype == torch.float64
    variance = logvar.exp()
    # Standard errors of the sample mean and variance are sqrt(var/n) and var*sqrt(2/n).
    assert ((z.mean(0) - mu).abs() < 5 * (variance / n).sqrt()).all()
    assert ((z.var(0) - variance).abs() < 5 * variance * math.sqrt(2 / n)).all()


def test_reparameterize_is_reproducible_from_a_generator():
    mu, logvar = torch.zeros(4, 6), torch.zeros(4, 6)
    first = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(42))
    second = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(42))
    assert torch.equal(first, second)
    assert not torch.equal(first, reparameterize(mu, logvar, generator=torch.Generator().manual_seed(43)))


def test_reparameterize_passes_gradients_to_mu_and_logvar():
    mu = torch.randn(5, 3, requires_grad=True)
    logvar = torch.randn(5, 3, requires_grad=True)
    z = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(1))
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones(5, 3))
    # z = mu + exp(v/2) eps, so dz/dv = exp(v/2) eps / 2 = (z - mu) / 2
    assert torch.allclose(logvar.grad, (z - mu).detach() / 2, atol=1e-6)


def test_reparameterize_with_zero_variance_limit_returns_the_mean_and_broadcasts():
    mu = torch.randn(4, 3)
    z = reparameterize(mu, torch.full((3,), -200.0))
    assert z.shape == (4, 3) and torch.allclose(z, mu)


# bad input -----------------------------------------------------------------------------------------

def escaped(message):
    return message.replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("call, message", [
    (lambda: reparameterize(torch.zeros(4, 3), torch.zeros(4, 5)), "do not broadcast"),
    (lambda: reparameterize(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 3)), "mu must be a floating-point tensor"),
    (lambda: gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 4)),
     "mu_p (2, 4)"),
    (lambda: gaussian_kl(torch.zeros(2), [0.0, 0.0], torch.zeros(2), torch.zeros(2)),
     "logvar_q must be a floating-point tensor, found list"),
    (lambda: kl_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 4), torch.zeros(2, 4)),
     "four (B, Z) or four (B, T, Z) tensors"),
    (lambda: kl_loss(torch.zeros(4), torch.zeros(4), torch.zeros(4), torch.zeros(4)), "found mu_q (4,)"),
    (lambda: kl_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 5, 4), torch.zeros(2, 5, 4)),
     "do not broadcast"),
    (lambda: reconstruction_loss(torch.zeros(2, 3, 1, 4, 4), torch.zeros(2, 4, 1, 4, 4)),
     "expected prediction (2, 4, 1, 4, 4), found prediction (2, 3, 1, 4, 4)"),
    (lambda: reconstruction_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)), "(B, T, C, H, W)"),
    (lambda: reconstruction_loss(torch.zeros(2, 1, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, 1, 1, 4, 4)),
     "prediction must be a floating-point tensor, found torch.uint8"),
])
def test_bad_input_names_what_was_expected(call, message):
    with pytest.raises(ValueError, match=escaped(message)):
        call()


def test_reparameterize_with_noise_drawn_beforehand():
    mu, logvar = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    noise = torch.randn(3, 4, 5)
    assert torch.allclose(reparameterize(mu, logvar, noise=noise), mu + torch.exp(0.5 * logvar) * noise)
    with pytest.raises(ValueError, match="noise must have the shape"):
        reparameterize(mu, logvar, noise=torch.randn(3, 5))
    with pytest.raises(ValueError, match="without a generator"):
        reparameterize(mu, logvar, generator=torch.Generator(), noise=noise)
