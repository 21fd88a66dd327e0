# %% [markdown]
# # 00 · The evidence lower bound
#
# SVG, SLAMP-Baseline and SLAMP are latent-variable models of video. At every step a random code
# $z_t$ decides *which* of the many plausible futures happens, and a decoder turns the past frames
# and $z_t$ into the next frame. The likelihood of a video, $\log p(x_{1:T})$, integrates over every
# possible code and cannot be computed, so all three models are trained by maximising a lower bound
# on it, the **evidence lower bound** (ELBO).
#
# This notebook derives that bound four times, each time for a richer model — a VAE for one frame,
# SVG with a learned prior, SLAMP-Baseline with its three decoders, SLAMP with two latent streams —
# and ends with the exact loss the training code minimises. Everything marked `#| export` here
# becomes `slamp.losses`.
#
# **You will learn:** where the ELBO comes from and how far it is from the true likelihood; how the
# reparameterisation trick lets gradients pass through a random sample; the KL divergence between
# diagonal Gaussians in closed form, checked against a Monte-Carlo estimate; why the KL of a
# sequence model with a learned prior is a sum over time steps, and SLAMP's a sum over its two
# streams; how a Gaussian likelihood becomes an L2 loss; and what the weight $\beta$ is measured
# against once the terms are averaged the way the official code averages them.
#
# **Reading along with the paper.** This notebook follows Sec. 3.1 (stochastic video prediction,
# SVG), Sec. 3.2 (SLAMP-Baseline and SLAMP, Eq. 1) and Sec. 3.3 (variational inference, Eqs. 2
# and 3) of Akan et al., *SLAMP: Stochastic Latent Appearance and Motion Prediction*, ICCV 2021
# ([arXiv:2108.02760](https://arxiv.org/abs/2108.02760)), and its Appendix B (the derivations,
# Eqs. 7–15). Every notebook names the sections and equations it implements and uses the notation
# below, which is the paper's.
#
# | symbol | meaning | in `slamp` |
# |---|---|---|
# | $x_{1:T}$, $x_t$ | a video of $T$ frames, frame $t$ (counted from 1, as in the paper) | `x` `(B, T, C, H, W)`; $x_t$ is `x[:, t-1]` |
# | $n_\text{past}$, $n_\text{future}$ | conditioning frames, predicted frames | `n_past`, `n_future` |
# | $h_t = \mathrm{Enc}(x_t)$ | features of frame $t$ | `model.encoder(frames)` → `(N, g)` |
# | $h^f_t = \mathrm{MotionEnc}(x_{t-1}, x_t)$ | features of the motion into frame $t$ (SLAMP, Eq. 4) | `model.motion.encoder(earlier, later)` |
# | $z_t$; $z^p_t$, $z^f_t$ | the latent of step $t$; SLAMP's appearance (*pixel*) and motion (*flow*) latents | `prediction.latents["appearance"]`, `["motion"]` |
# | $q_\phi(z_t \mid x_{1:t})$ | posterior (inference network), training only | `LatentStream.posterior` |
# | $p_\psi(z_t \mid x_{1:t-1})$ | learned prior, what generation samples from | `LatentStream.prior` |
# | $g_t$, $g^f_t$ | output of the predictor LSTM, fed to a decoder (Eq. 6) | `LatentStream.predictor` |
# | $x^p_t$ | appearance prediction (pixel decoder) | `prediction.x_p` |
# | $f_{t-1:t}$ | flow between $x_{t-1}$ and $x_t$, in pixels (direction: `01_flow_warping`) | `prediction.flow` `(B, T-1, 2, H, W)` |
# | $x^f_t = \mathcal W(x_{t-1}, f_{t-1:t})$ | motion prediction: the previous frame warped | `prediction.x_f` |
# | $m_t = m(x^p_t, x^f_t)$ | mask, $1$ = trust the appearance prediction | `prediction.mask` |
# | $\hat x_t = m_t \odot x^p_t + (1 - m_t) \odot x^f_t$ | the prediction (Eq. 1) | `prediction.x_hat` |
# | $\beta$ | weight of the KL terms (Eq. 3) | `ModelConfig.beta` |
# | $\mathcal L$ | the ELBO, a lower bound on $\log p(x_{1:T})$, **maximised** | — |
# | $\text{loss}$ | what training **minimises**: $-\mathcal L$ as the public code scales it (Sec. 5 below) | `model.loss(x)` |
#
# Predictions exist for steps $t = 2, \dots, T$ (frame 1 has no past), so the tensors of a
# `Prediction` hold $T - 1$ steps: index `i` is step $t = i + 2$.

# %%
# Setup. On Colab, install slamp from its repository (it carries its trained models, so nothing
# else is downloaded; SLAMP_REPO overrides where from). Then seed, and pick the GPU when present.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("slamp") is None and "google.colab" in sys.modules:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           os.environ.get("SLAMP_REPO", "git+https://github.com/slamp-project/slamp")])

from slamp.notebook import setup

device = setup()  # "cuda" or "cpu"

# %%
#| default_exp losses

# %%
import math
import os

import matplotlib.pyplot as plt
import torch
from torch.distributions import Normal, kl_divergence

SMOKE = os.environ.get("SLAMP_SMOKE", "0") == "1"  # small settings for CI
torch.manual_seed(0)
SAMPLES = 20_000 if SMOKE else 400_000  # Monte-Carlo sample size for the checks below

# %% [markdown]
# ## 1 · One frame: the variational auto-encoder
#
# *Paper: App. B.1, Eq. 7 (the bound for one variable).*
#
# Take one image $x \in \mathbb{R}^D$ ($D = C\cdot H\cdot W$ numbers) and a latent code
# $z \in \mathbb{R}^{Z}$ with prior $p(z) = \mathcal{N}(0, I)$. A decoder with parameters $\theta$
# defines $p_\theta(x \mid z)$, and the model's likelihood of the image is
#
# $$p_\theta(x) = \int p_\theta(x \mid z)\, p(z)\, dz .$$
#
# For a neural decoder this integral has no closed form, and sampling $z$ from the prior almost
# never hits a code that explains $x$. So we add an *encoder* $q_\phi(z \mid x)$ that proposes
# codes likely to explain $x$, multiply and divide by it inside the integral, and use Jensen's
# inequality ($\log$ is concave, so $\log \mathbb{E} \ge \mathbb{E} \log$):
#
# $$\log p_\theta(x) = \log \mathbb{E}_{q_\phi(z\mid x)}\!\Big[\frac{p_\theta(x\mid z)\,p(z)}{q_\phi(z\mid x)}\Big]
# \;\ge\; \underbrace{\mathbb{E}_{q_\phi(z\mid x)}\big[\log p_\theta(x\mid z)\big]}_{\text{reconstruction}}
# \;-\; \underbrace{\mathrm{KL}\big(q_\phi(z\mid x)\,\big\|\,p(z)\big)}_{\text{rate}} \;=:\; \mathcal{L}(x).$$
#
# How loose is the bound? Write the joint the other way round, $p_\theta(x\mid z)\,p(z) =
# p_\theta(x)\,p_\theta(z\mid x)$, inside the expectation of the log:
#
# $$\log p_\theta(x) - \mathcal{L}(x) = \mathrm{KL}\big(q_\phi(z\mid x)\,\big\|\,p_\theta(z\mid x)\big) \;\ge\; 0 .$$
#
# The gap is exactly how far the encoder is from the true posterior; it closes when they agree.
# Training maximises $\mathcal{L}$ in $\theta$ and $\phi$ together: codes drawn from $q$ must
# explain $x$ (reconstruction), but may not say more about $x$ than the prior allows (rate).
#
# Both terms need a tool. The first is an expectation over $z \sim q_\phi$, and we must
# differentiate it with respect to $\phi$ (§1.1). The second is a KL divergence, which has a closed
# form for Gaussians (§1.2). §1.3 turns $\log p_\theta(x\mid z)$ into a squared error.
#
# ### 1.1 · A sample that gradients can pass through
#
# The encoder outputs, per latent dimension, a mean $\mu$ and a log-variance $v = \log\sigma^2$
# (a logarithm, so that any real number the network outputs is a valid variance). We need
# $\nabla_{\mu, v}\, \mathbb{E}_{z\sim\mathcal{N}(\mu,\, e^{v})}[f(z)]$, where $f$ will be the
# decoder's log-likelihood. Drawing $z$ directly hides $\mu$ and $v$ inside the random number
# generator. Instead, draw noise that does not depend on them and move it:
#
# $$z = \mu + e^{v/2} \odot \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I).$$
#
# Now $\mathbb{E}_q[f(z)] = \mathbb{E}_\varepsilon[f(\mu + e^{v/2}\varepsilon)]$, the distribution
# no longer depends on the parameters, and the gradient moves inside the expectation:
#
# $$\frac{\partial}{\partial \mu}\mathbb{E}_q[f(z)] = \mathbb{E}_\varepsilon\big[f'(z)\big], \qquad
# \frac{\partial}{\partial v}\mathbb{E}_q[f(z)] = \mathbb{E}_\varepsilon\big[f'(z)\,\tfrac12 e^{v/2}\varepsilon\big].$$
#
# One sample per training example is an unbiased estimate of both, and autograd computes it.

# %% [markdown]
# **Exercise: `reparameterize`**
#
# Write the last line of `reparameterize`: turn the noise `noise` (ε, drawn from N(0, I) when it
# is not given) into a sample of N(`mu`, exp(`logvar`)) so that gradients reach `mu` and `logvar`.
# Shapes: every argument `(B, Z)` or `(B, T, Z)` (or shapes that broadcast); returns `z` of that
# shape. Checked on known numbers (μ = [1, −2], σ = [1, 2], ε = [0.5, −1]), on the gradients it
# passes back, and on the moments of many draws.
#
# The cell after the function runs the grader's own checks on it, `check(reparameterize)`: it prints
# ✓ when they pass, or ✗ and the hint the grader gives for the mistake it finds, and stops there.

# %%
#| export
"""The training objective of SVG, SLAMP-Baseline and SLAMP: reparameterised sampling, the KL
between diagonal Gaussians, and the L2 likelihood, reduced the way the official SLAMP code does."""
import torch


def _check_floating(**tensors) -> None:
    """Raise a ValueError naming the first argument that is not a floating-point tensor."""
    for name, value in tensors.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            found = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{name} must be a floating-point tensor, found {found}")


def _broadcast_shape(**tensors) -> torch.Size:
    """The shape the named tensors broadcast to; a ValueError lists their shapes if there is none."""
    _check_floating(**tensors)
    try:
        return torch.broadcast_shapes(*(value.shape for value in tensors.values()))
    except RuntimeError:
        shapes = ", ".join(f"{name} {tuple(value.shape)}" for name, value in tensors.items())
        raise ValueError(f"shapes do not broadcast together: {shapes}") from None


def _at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    # Losses are reduced over many elements; in bf16/fp16 (autocast) the sums would lose digits.
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Draw ``z ~ N(mu, exp(logvar))`` from noise ``eps ~ N(0, I)`` so that gradients reach ``mu``
    and ``logvar`` (the reparameterisation trick).

    Args:
        mu, logvar: means and log-variances, e.g. ``(B, Z)`` or ``(B, T, Z)``; shapes that
            broadcast together are allowed.
        generator: optional source of ``eps``. It may live on another device than ``mu`` (the
            noise is drawn there and moved), so one CPU generator gives the same noise everywhere.
        noise: ``eps`` drawn beforehand (the models draw a whole sequence's noise at once, so
            that their batched and step-by-step paths use the same numbers); excludes ``generator``.

    Returns:
        ``z`` with the broadcast shape, on ``mu``'s device, in the promoted dtype of the inputs.
    """
    shape = _broadcast_shape(mu=mu, logvar=logvar)
    if noise is None:
        dtype = torch.promote_types(mu.dtype, logvar.dtype)
        device = generator.device if generator is not None else mu.device
        noise = torch.randn(shape, generator=generator, device=device, dtype=dtype).to(mu.device)
    elif generator is not None or noise.shape != shape:
        raise ValueError(f"noise must have the shape of mu and logvar {tuple(shape)}, found "
                         f"{tuple(noise.shape)}, and comes without a generator")
    # BEGIN SOLUTION reparameterize
    return mu + torch.exp(0.5 * logvar) * noise
    # END SOLUTION


# %%
from slamp.exercises import check
from slamp.notebook import use

check(reparameterize)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(reparameterize)  # from here on the package runs this reparameterize: in a student's notebook, yours

# %% [markdown]
# **Checking the gradient.** Two functions whose Gaussian expectation has a closed form:
#
# $$\mathbb{E}[z^2] = \mu^2 + e^{v}, \qquad \mathbb{E}[\cos z] = \cos\mu\; e^{-e^{v}/2}.$$
#
# Autograd on the closed form gives the exact gradient. The reparameterised estimator gives one
# gradient per sample; their mean must agree with the exact value within a few standard errors.
# To get one gradient per sample, every sample gets its own copy of $\mu$ and $v$.

# %%
def per_sample_gradients(f, mu: float, logvar: float, n: int, generator):
    """Reparameterised gradients of f(z), z ~ N(mu, e^logvar), w.r.t. mu and logvar: two (n,) tensors."""
    mus = torch.full((n,), mu, dtype=torch.float64, requires_grad=True)
    logvars = torch.full((n,), logvar, dtype=torch.float64, requires_grad=True)
    f(reparameterize(mus, logvars, generator=generator)).sum().backward()
    return mus.grad, logvars.grad


def exact_gradients(expectation, mu: float, logvar: float):
    """Gradient of a closed-form E[f(z)] w.r.t. (mu, logvar), by autograd: two scalars."""
    mu, logvar = (torch.tensor(value, dtype=torch.float64, requires_grad=True) for value in (mu, logvar))
    return torch.autograd.grad(expectation(mu, logvar), (mu, logvar))


closed_forms = {
    "z^2": (lambda z: z**2, lambda mu, v: mu**2 + v.exp()),
    "cos z": (torch.cos, lambda mu, v: torch.cos(mu) * torch.exp(-v.exp() / 2)),
}
mu0, logvar0 = 0.7, -0.4
generator = torch.Generator().manual_seed(1)
for name, (f, expectation) in closed_forms.items():
    estimates = per_sample_gradients(f, mu0, logvar0, SAMPLES, generator)
    for parameter, samples, exact in zip(["mu", "logvar"], estimates, exact_gradients(expectation, mu0, logvar0)):
        mean, stderr = samples.mean(), samples.std() / math.sqrt(SAMPLES)
        print(f"d E[{name}] / d {parameter:6s}: exact {exact:+.4f}   reparameterised {mean:+.4f} ± {stderr:.4f}")
        assert abs(mean - exact) < 4 * stderr

# %% [markdown]
# **Why not differentiate the density instead?** The *score-function* estimator
# $\nabla\,\mathbb{E}_q[f] = \mathbb{E}_q[f(z)\,\nabla \log q(z)]$ needs no derivative of $f$, but it
# only learns from how the value of $f$ co-varies with the sample, not from the slope of $f$. With
# $\nabla_\mu \log q = (z-\mu)/\sigma^2$, on the same number of samples:

# %%
z = reparameterize(torch.full((SAMPLES,), mu0, dtype=torch.float64),
                   torch.full((SAMPLES,), logvar0, dtype=torch.float64), generator=generator)
for name, (f, _) in closed_forms.items():
    pathwise, _ = per_sample_gradients(f, mu0, logvar0, SAMPLES, generator)
    score = f(z) * (z - mu0) / math.exp(logvar0)
    print(f"d E[{name}] / d mu: standard error  reparameterised {pathwise.std() / math.sqrt(SAMPLES):.4f}"
          f"   score function {score.std() / math.sqrt(SAMPLES):.4f}")
    assert pathwise.std() < score.std()

# %% [markdown]
# With one sample per video and per step, as in training, that variance ratio is what one step of
# gradient descent feels. This is why the posterior codes of SVG and SLAMP are always drawn with
# `reparameterize`.
#
# ### 1.2 · The KL between two Gaussians, in closed form
#
# In one dimension, with $q = \mathcal{N}(\mu_q, \sigma_q^2)$ and $p = \mathcal{N}(\mu_p, \sigma_p^2)$:
#
# $$\log q(z) - \log p(z) = \log\frac{\sigma_p}{\sigma_q} - \frac{(z-\mu_q)^2}{2\sigma_q^2} + \frac{(z-\mu_p)^2}{2\sigma_p^2}.$$
#
# Under $z \sim q$, $\mathbb{E}[(z-\mu_q)^2] = \sigma_q^2$ and
# $\mathbb{E}[(z-\mu_p)^2] = \sigma_q^2 + (\mu_q - \mu_p)^2$ (variance plus squared bias), so
#
# $$\mathrm{KL}(q\,\|\,p) = \log\frac{\sigma_p}{\sigma_q} + \frac{\sigma_q^2 + (\mu_q-\mu_p)^2}{2\sigma_p^2} - \frac12
# = \frac12\Big[v_p - v_q + e^{v_q - v_p} + (\mu_q-\mu_p)^2 e^{-v_p} - 1\Big],$$
#
# the second form in the log-variances $v = \log\sigma^2$ that the networks output. A diagonal
# Gaussian is a product of independent one-dimensional ones, and the log of a product is a sum, so
# its KL is the sum of this expression over the $Z$ latent dimensions. `gaussian_kl` returns the
# per-dimension values and leaves the sum to the caller.

# %% [markdown]
# **Exercise: `gaussian_kl`**
#
# Write `gaussian_kl`: the KL divergence of the posterior N(`mu_q`, exp(`logvar_q`)) from the prior
# N(`mu_p`, exp(`logvar_p`)), per element (the derivation above). Shapes: `(B, Z)` or `(B, T, Z)`,
# the prior's may broadcast; returns the same shape (no reduction). Checked against
# `torch.distributions.kl_divergence` on random parameters and with a standard-normal prior.
#
# The cell after the function runs the grader's own checks on it, `check(gaussian_kl)`: it prints ✓
# when they pass, or ✗ and the hint the grader gives for the mistake it finds, and stops there.

# %%
#| export
def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor,
                mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """Elementwise ``KL( N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p)) )`` in nats.

    Args:
        mu_q, logvar_q: the posterior's means and log-variances, e.g. ``(B, Z)`` or ``(B, T, Z)``.
        mu_p, logvar_p: the prior's, of the same shape or one that broadcasts with it (a standard
            normal prior can be given as ``torch.zeros(())``).

    Returns:
        The KL of each element, with the broadcast shape; sum over the latent axis for the KL of a
        diagonal Gaussian. Computed in at least float32.
    """
    _broadcast_shape(mu_q=mu_q, logvar_q=logvar_q, mu_p=mu_p, logvar_p=logvar_p)
    mu_q, logvar_q, mu_p, logvar_p = map(_at_least_float32, (mu_q, logvar_q, mu_p, logvar_p))
    # BEGIN SOLUTION gaussian_kl
    # The variance ratio as the exponential of a difference: stays finite where both variances
    # are tiny or huge and their quotient is not.
    variance_ratio = torch.exp(logvar_q - logvar_p)
    return 0.5 * (logvar_p - logvar_q + variance_ratio + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p) - 1)
    # END SOLUTION


# %%
from slamp.exercises import check
from slamp.notebook import use

check(gaussian_kl)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(gaussian_kl)  # from here on the package runs this gaussian_kl: in a student's notebook, yours

# %% [markdown]
# Known values first: a Gaussian has zero divergence from itself; moving a unit Gaussian by $\mu$
# costs $\mu^2/2$; and on random parameters the formula agrees with `torch.distributions`, which
# computes the same quantity by its own code path.

# %%
mu, logvar = torch.randn(1000, 8), torch.randn(1000, 8)
assert gaussian_kl(mu, logvar, mu, logvar).abs().max() < 1e-6  # KL(q || q) = 0

shift = torch.linspace(-3, 3, 7)
assert torch.allclose(gaussian_kl(shift, torch.zeros(()), torch.zeros(()), torch.zeros(())), shift**2 / 2)

mu_p, logvar_p = torch.randn(1000, 8), torch.randn(1000, 8)
kl = gaussian_kl(mu, logvar, mu_p, logvar_p)
reference = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(mu_p, (0.5 * logvar_p).exp()))
assert torch.allclose(kl, reference, rtol=1e-4, atol=1e-5)
print(f"KL >= 0 on {kl.numel()} random pairs: smallest {kl.min():.2e}, largest {kl.max():.1f}")
assert (kl >= 0).all()

# %% [markdown]
# The KL is never negative (Gibbs' inequality) and vanishes only when the two Gaussians are the
# same. Against a standard-normal prior it grows quadratically in the mean and is smallest at
# $\sigma_q = 1$: the rate term pulls every posterior towards the prior.

# %%
means = torch.linspace(-2.5, 2.5, 101)
fig, ax = plt.subplots(figsize=(4.5, 2.6))
for sigma in [0.5, 1.0, 2.0]:
    logvar_q = torch.full_like(means, 2 * math.log(sigma))
    ax.plot(means, gaussian_kl(means, logvar_q, torch.zeros(()), torch.zeros(())), label=f"σ_q = {sigma}")
ax.set(xlabel="μ_q", ylabel="nats", title="KL( N(μ_q, σ_q²) ‖ N(0, 1) )")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# **A Monte-Carlo check.** The definition $\mathrm{KL}(q\|p) = \mathbb{E}_{z\sim q}[\log q(z) - \log p(z)]$
# can be estimated without the formula: draw $z$ from $q$ with `reparameterize`, evaluate both log
# densities with `torch.distributions`, and average. The running mean with its standard error
# $s/\sqrt{n}$ must close in on the closed form. Four latent dimensions, summed:

# %%
q_mu = torch.tensor([0.5, -1.0, 0.2, 0.0], dtype=torch.float64)
q_logvar = torch.tensor([-0.5, 0.3, 0.0, -1.2], dtype=torch.float64)
p_mu = torch.tensor([0.0, 0.5, -0.3, 0.4], dtype=torch.float64)
p_logvar = torch.tensor([0.2, -0.4, 0.5, 0.0], dtype=torch.float64)
analytic = gaussian_kl(q_mu, q_logvar, p_mu, p_logvar).sum()

z = reparameterize(q_mu.expand(SAMPLES, 4), q_logvar.expand(SAMPLES, 4), generator=torch.Generator().manual_seed(2))
q, p = Normal(q_mu, (0.5 * q_logvar).exp()), Normal(p_mu, (0.5 * p_logvar).exp())
log_ratio = (q.log_prob(z) - p.log_prob(z)).sum(-1)  # one single-sample KL estimate per z
count = torch.arange(1, SAMPLES + 1, dtype=torch.float64)
running_mean = log_ratio.cumsum(0) / count
running_stderr = ((log_ratio**2).cumsum(0) / count - running_mean**2).clamp_min(0).sqrt() / count.sqrt()
estimate, stderr = running_mean[-1].item(), running_stderr[-1].item()
print(f"closed form {analytic:.4f}   Monte Carlo {estimate:.4f} ± {stderr:.4f} (n = {SAMPLES:,})")
assert abs(estimate - analytic) < 4 * stderr

# %%
shown = torch.logspace(1, math.log10(SAMPLES), 80).long().unique() - 1
fig, ax = plt.subplots(figsize=(4.5, 2.6))
band = 2 * running_stderr[shown]
ax.fill_between(shown + 1, running_mean[shown] - band, running_mean[shown] + band, alpha=0.3, label="± 2 s.e.")
ax.plot(shown + 1, running_mean[shown], label="Monte-Carlo mean")
ax.axhline(analytic, color="k", linestyle="--", linewidth=1, label="closed form")
ax.set(xscale="log", xlabel="samples n", ylabel="nats", title="KL(q ‖ p): estimate vs formula")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# The estimate wanders for small $n$ and settles on the formula; the closed form is that limit at
# no variance at all. So SVG and SLAMP compute the KL term exactly and sample only for the
# likelihood.
#
# ### 1.3 · A Gaussian likelihood is a squared error
#
# Let the decoder output the mean $\hat x = \hat x_\theta(z)$ of a Gaussian with a fixed variance
# $\sigma^2$ for each of the $D$ pixels, $p_\theta(x\mid z) = \mathcal{N}(x;\, \hat x,\, \sigma^2 I)$. Then
#
# $$\log p_\theta(x\mid z) = -\frac{1}{2\sigma^2}\,\lVert x - \hat x\rVert^2 - \frac{D}{2}\log(2\pi\sigma^2),$$
#
# a squared error plus a constant. Multiplying the negative ELBO by $2\sigma^2$ gives
#
# $$-2\sigma^2\,\mathcal{L}(x) = \mathbb{E}_q\lVert x-\hat x\rVert^2 + 2\sigma^2\,\mathrm{KL}(q\,\|\,p) + \text{const}.$$
#
# So "L2 loss $+\ \beta\cdot$ KL" *is* the negative ELBO of a model with $\sigma^2 = \beta/2$ (for
# a summed squared error). Choosing $\beta$ is choosing how noisy the model believes frames to be:
# a small $\beta$ claims sharp frames and lets the codes carry much information; a large one claims
# noisy frames and pushes the posterior towards the prior. The $\beta$-VAE literature reads the
# same knob as a trade-off between reconstruction and the rate of the code. The constant in front
# of $\beta$ depends on how the squared error is averaged; §5 works it out for the official code.
#
# ## 2 · A sequence: SVG with a learned prior
#
# *Paper: Sec. 3.1; App. B.1, Eqs. 8–11.*
#
# SVG-LP (Denton & Fergus, 2018) draws one code per frame. Given the first frame, for
# $t = 2, \dots, T$:
#
# * a **learned prior** $p_\psi(z_t \mid x_{1:t-1})$, an LSTM over the frames seen so far, proposes
#   a code;
# * a **frame predictor**, an LSTM fed the previous frame and $z_t$ (its state remembers the earlier
#   codes), outputs the mean $\hat x_t$ of $p_\theta(x_t \mid x_{1:t-1}, z_{2:t}) = \mathcal{N}(x_t;\, \hat x_t,\, \sigma^2 I)$;
# * during training, an **inference network** $q_\phi(z_t \mid x_{1:t})$, an LSTM that also sees
#   the frame to be predicted, supplies the code instead of the prior.
#
# The model and the approximate posterior are products over time:
#
# $$p(x_{2:T}, z_{2:T} \mid x_1) = \prod_{t=2}^{T} p_\theta(x_t \mid x_{1:t-1}, z_{2:t})\; p_\psi(z_t \mid x_{1:t-1}),
# \qquad q(z_{2:T} \mid x_{1:T}) = \prod_{t=2}^{T} q_\phi(z_t \mid x_{1:t}).$$
#
# The bound of §1, with all codes $z_{2:T}$ in the role of $z$ and everything conditioned on $x_1$:
#
# $$\log p(x_{2:T} \mid x_1) \;\ge\; \mathbb{E}_{q}\Big[\sum_{t=2}^{T} \log p_\theta(x_t \mid x_{1:t-1}, z_{2:t})\Big]
# \;-\; \mathrm{KL}\Big(\prod_{t} q_\phi(z_t \mid x_{1:t}) \,\Big\|\, \prod_{t} p_\psi(z_t \mid x_{1:t-1})\Big).$$
#
# **The KL splits into a sum over time.** The log of a ratio of products is a sum of log-ratios,
# and the $t$-th log-ratio depends on $z_t$ alone, because both networks, as SVG's code and the
# public SLAMP code build them, are fed frames and no earlier code. The expectation of each term
# under the product $q$ is then an expectation under $q_\phi(z_t \mid x_{1:t})$ only:
#
# $$\mathrm{KL}\Big(\prod_t q_t \,\Big\|\, \prod_t p_t\Big)
# = \mathbb{E}_{q}\Big[\sum_{t=2}^{T} \log\frac{q_\phi(z_t \mid x_{1:t})}{p_\psi(z_t \mid x_{1:t-1})}\Big]
# = \sum_{t=2}^{T} \mathbb{E}_{q_\phi(z_t \mid x_{1:t})}\Big[\log\frac{q_\phi(z_t \mid x_{1:t})}{p_\psi(z_t \mid x_{1:t-1})}\Big]
# = \sum_{t=2}^{T} \mathrm{KL}\big(q_\phi(z_t \mid x_{1:t}) \,\big\|\, p_\psi(z_t \mid x_{1:t-1})\big).$$
#
# Every term is a KL between two diagonal Gaussians, in closed form; only the likelihood needs a
# sample.
#
# **What the SLAMP paper writes, what the code does.** The paper's Eq. 2 writes each prior with the
# previous code in its condition as well, $p_\psi(z_t \mid x_{1:t-1}, z_{t-1})$. The public SLAMP
# code feeds its prior LSTMs only encoded frames (for the motion prior, encoded frame pairs), never
# a code, and slamp does as the public code, so the priors above are exactly what runs. Had the
# prior been fed $z_{t-1}$, the bound would keep its shape: the sum over time still holds, each
# term is averaged over $q(z_{t-1})$ as well, and a training step estimates it with the code the
# posterior sampled, so the loss code would be the same; only the prior network's input changes.
#
# With the weight $\beta$ of §1.3, SVG maximises
#
# $$\mathcal{L}_{\text{SVG}} = \sum_{t=2}^{T}\Big(\mathbb{E}_{q}\big[\log p_\theta(x_t \mid x_{1:t-1}, z_{2:t})\big]
# - \beta\,\mathrm{KL}\big(q_\phi(z_t \mid x_{1:t}) \,\big\|\, p_\psi(z_t \mid x_{1:t-1})\big)\Big).$$
#
# The prior is trained only through this KL: it learns to predict, from the past alone, where the
# posterior will put the next code. During training it is fed the true frames; at generation time
# there is no posterior, codes come from the prior, and the prior is fed the model's own
# predictions. SVG-FP, the fixed-prior variant, is the special case $p_\psi = \mathcal{N}(0, I)$.
#
# In code, the posterior and prior parameters of all steps of a batch of $B$ videos are
# `(B, T, Z)` tensors. The KL of one video is the sum over steps and latent dimensions; the loss
# averages it over the videos of the batch.

# %%
#| export
def kl_loss(mu_q: torch.Tensor, logvar_q: torch.Tensor,
            mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """The KL term of the loss: the KL of each video, summed over steps and latent dimensions,
    averaged over the batch.

    Args:
        mu_q, logvar_q, mu_p, logvar_p: posterior and prior parameters, all ``(B, T, Z)`` (every
            step) or all ``(B, Z)`` (one step); axes of size 1 broadcast. One rank is required of
            all four so that a ``(B, Z)`` prior can never broadcast silently against ``(B, T, Z)``.

    Returns:
        A scalar. On ``(B, T, Z)`` inputs it equals the sum over t of ``kl_loss`` on the step's
        ``(B, Z)`` slices, i.e. the official reduction: per step, the sum over dimensions and
        batch divided by B; then summed over steps.
    """
    tensors = dict(mu_q=mu_q, logvar_q=logvar_q, mu_p=mu_p, logvar_p=logvar_p)
    _check_floating(**tensors)
    ranks = {value.ndim for value in tensors.values()}
    if len(ranks) != 1 or not ranks <= {2, 3}:
        shapes = ", ".join(f"{name} {tuple(value.shape)}" for name, value in tensors.items())
        raise ValueError(f"kl_loss expects four (B, Z) or four (B, T, Z) tensors, found {shapes}")
    return gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).flatten(1).sum(1).mean()


# %% [markdown]
# The sum over time, numerically: the KL of whole sequences equals the sum of the per-step KLs, and
# both equal the official per-step reduction (sum over dimensions and batch, divided by $B$),
# summed over steps.

# %%
B, T, Z = 4, 6, 10
posterior = torch.randn(B, T, Z, dtype=torch.float64), torch.randn(B, T, Z, dtype=torch.float64)
prior = torch.randn(B, T, Z, dtype=torch.float64), torch.randn(B, T, Z, dtype=torch.float64)
whole = kl_loss(*posterior, *prior)
per_step = [kl_loss(posterior[0][:, t], posterior[1][:, t], prior[0][:, t], prior[1][:, t]) for t in range(T)]
official = sum(gaussian_kl(posterior[0][:, t], posterior[1][:, t], prior[0][:, t], prior[1][:, t]).sum() / B
               for t in range(T))
print("per-step KL:", " ".join(f"{value:.2f}" for value in per_step))
print(f"sum over steps {sum(per_step):.6f}   kl_loss on (B, T, Z) {whole:.6f}   official reduction {official:.6f}")
assert torch.isclose(sum(per_step), whole) and torch.isclose(official, whole)

# %% [markdown]
# ## 3 · SLAMP-Baseline: one code, three decoders
#
# *Paper: Sec. 3.2, Eq. 1.*
#
# SLAMP-Baseline keeps SVG's single code $z_t$, prior and posterior, so its KL term is SVG's. What
# changes is the decoder. From the predictor's output it makes three things:
#
# * a **pixel** prediction $x^p_t$, painted from scratch (SVG's decoder);
# * a **flow** field $f_{t-1:t}$, and with it the **motion** prediction $x^f_t = \mathcal{W}(x_{t-1}, f_{t-1:t})$,
#   the previous frame warped backward (notebook `01_flow_warping`);
# * a **mask** $m_t \in [0, 1]^{H\times W}$, computed from $x^p_t$ and $x^f_t$, that chooses per pixel:
#
# $$\hat x_t = m_t \odot x^p_t + (1 - m_t) \odot x^f_t .$$
#
# The objective has a Gaussian likelihood term for each of the three predictions:
#
# $$\mathcal{L}_{\text{Baseline}} = \sum_{t=2}^{T}\Big(\mathbb{E}_{q}\big[\log \mathcal{N}(x_t;\, x^p_t,\, \sigma^2 I)
# + \log \mathcal{N}(x_t;\, x^f_t,\, \sigma^2 I) + \log \mathcal{N}(x_t;\, \hat x_t,\, \sigma^2 I)\big]
# - \beta\,\mathrm{KL}\big(q_\phi(z_t \mid x_{1:t}) \,\big\|\, p_\psi(z_t \mid x_{1:t-1})\big)\Big).$$
#
# Read literally, this is the ELBO of a model that emits three conditionally independent noisy
# copies of each frame, one per head, all observed equal to $x_t$: three likelihoods, one KL. The
# practical reason for the two extra terms is the gradient. Through the $\hat x_t$ term alone, the
# pixel head is told about a pixel only in proportion to $m_t$ there, and the flow head only in
# proportion to $1 - m_t$: a head the mask has stopped trusting gets no signal and cannot improve.
# The terms on $x^p_t$ and $x^f_t$ ask each head to predict the whole frame on its own. The flow
# head still never sees a flow label; its only supervision comes through the warp. With $m_t \equiv 1$
# and only the $x^p_t$ term, the model is SVG.
#
# In code, each likelihood term is a squared error (§1.3) averaged over the batch, channels and
# pixels of each step, then summed over the steps, as the official code does.

# %% [markdown]
# **Exercise: `reconstruction_loss`**
#
# Write the last two lines of `reconstruction_loss`: the L2 term the way the public code reduces
# it, the squared error averaged over batch, channels, height and width at each step, then summed
# over steps. Shapes: `prediction`, `target` `(B, T, C, H, W)` → a scalar. Checked on a video whose
# steps have different errors, so that averaging or summing over the wrong axis shows.
#
# The cell after the function runs the grader's own checks on it, `check(reconstruction_loss)`: it
# prints ✓ when they pass, or ✗ and the hint the grader gives for the mistake it finds, and stops
# there.

# %%
#| export
def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The L2 likelihood term: squared error averaged over batch, channels, height and width at
    each step, summed over steps (the official per-step ``mse_loss``, summed over time).

    Args:
        prediction, target: ``(B, T, C, H, W)`` tensors of one shape.

    Returns:
        A scalar, computed in at least float32.
    """
    _check_floating(prediction=prediction, target=target)
    if target.ndim != 5 or prediction.shape != target.shape:
        expected = tuple(target.shape) if target.ndim == 5 else "(B, T, C, H, W)"
        raise ValueError(f"reconstruction_loss expects prediction and target (B, T, C, H, W) of one shape: "
                         f"expected prediction {expected}, found prediction {tuple(prediction.shape)} "
                         f"and target {tuple(target.shape)}")
    # BEGIN SOLUTION reconstruction_loss
    squared_error = (_at_least_float32(prediction) - _at_least_float32(target)) ** 2
    return squared_error.mean(dim=(0, 2, 3, 4)).sum()
    # END SOLUTION


# %%
from slamp.exercises import check
from slamp.notebook import use

check(reconstruction_loss)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(reconstruction_loss)  # from here on the package runs this reconstruction_loss: in a student's notebook, yours

# %% [markdown]
# The gradient argument, on a toy frame whose mask trusts the flow head ($m = 0$) on the left half:
# through the $\hat x$ term alone, half of the pixel prediction receives no gradient; the extra
# term on $x^p$ reaches every pixel.

# %%
x_p = torch.rand(1, 1, 1, 4, 4, requires_grad=True)
x_f, target = torch.rand(1, 1, 1, 4, 4), torch.rand(1, 1, 1, 4, 4)
mask = torch.ones(1, 1, 1, 4, 4)
mask[..., :2] = 0.0
for name, with_pixel_term in [("L2(x̂) only", False), ("L2(x̂) + L2(x^p)", True)]:
    loss = reconstruction_loss(mask * x_p + (1 - mask) * x_f, target)
    if with_pixel_term:
        loss = loss + reconstruction_loss(x_p, target)
    (grad,) = torch.autograd.grad(loss, x_p)
    print(f"{name:16s}: {(grad != 0).float().mean():.0%} of the pixel head's outputs get a gradient")

# %% [markdown]
# ## 4 · SLAMP: two latent streams
#
# *Paper: Sec. 3.3, Eqs. 2 and 3; App. B.2, Eqs. 12–15.*
#
# SLAMP gives appearance and motion a code each, $z^p_t$ and $z^f_t$, with their own posteriors and
# learned priors:
#
# * **appearance** — the posterior $q^p_\phi(z^p_t \mid x_{1:t})$ is an LSTM over the appearance
#   features of the frames up to $x_t$; the prior $p^p_\psi(z^p_t \mid x_{1:t-1})$ the same over
#   the frames up to $x_{t-1}$. The appearance predictor, fed $z^p_t$, drives the pixel decoder:
#   $x^p_t$.
# * **motion** — a motion encoder reads *pairs* of consecutive frames. The posterior
#   $q^f_\phi(z^f_t \mid x_{1:t})$ sees the motion $x_{t-1} \to x_t$ it must explain; the prior
#   $p^f_\psi(z^f_t \mid x_{1:t-1})$ sees the **motion history**, the motion $x_{t-2} \to x_{t-1}$
#   (and at the first step the pair $(x_1, x_1)$: zero motion). The motion predictor, fed $z^f_t$,
#   drives the flow decoder: $f_{t-1:t}$, then $x^f_t = \mathcal{W}(x_{t-1}, f_{t-1:t})$.
#
# (Eq. 2 of the paper also puts each stream's previous code, $z^p_{t-1}$ or $z^f_{t-1}$, in its
# prior's condition; the public code and slamp feed the priors frames only. §2 says why the bound
# and the loss code keep their shape either way.)
#
# The mask and the three likelihood terms are those of §3. The posterior and the prior over the
# pair of codes both **factorise** over the streams:
#
# $$q(z^p_t, z^f_t \mid x_{1:t}) = q^p_\phi(z^p_t \mid x_{1:t})\; q^f_\phi(z^f_t \mid x_{1:t}), \qquad
# p(z^p_t, z^f_t \mid x_{1:t-1}) = p^p_\psi(z^p_t \mid x_{1:t-1})\; p^f_\psi(z^f_t \mid x_{1:t-1}).$$
#
# The log-ratio of the joints is then the sum of the two streams' log-ratios, each depending on
# its own code, so the expectation splits as the time sum of §2 did:
#
# $$\mathrm{KL}\big(q^p q^f \,\big\|\, p^p p^f\big)
# = \mathbb{E}_{q^p q^f}\Big[\log\frac{q^p}{p^p} + \log\frac{q^f}{p^f}\Big]
# = \mathbb{E}_{q^p}\Big[\log\frac{q^p}{p^p}\Big] + \mathbb{E}_{q^f}\Big[\log\frac{q^f}{p^f}\Big]
# = \mathrm{KL}^p_t + \mathrm{KL}^f_t .$$
#
# Together with the sum over time, SLAMP maximises
#
# $$\mathcal{L}_{\text{SLAMP}} = \sum_{t=2}^{T}\Big(\mathbb{E}_{q}\big[\log \mathcal{N}(x_t;\, x^p_t,\, \sigma^2 I)
# + \log \mathcal{N}(x_t;\, x^f_t,\, \sigma^2 I) + \log \mathcal{N}(x_t;\, \hat x_t,\, \sigma^2 I)\big]
# - \beta\,\big[\mathrm{KL}^p_t + \mathrm{KL}^f_t\big]\Big),$$
#
# $$\mathrm{KL}^p_t = \mathrm{KL}\big(q^p_\phi(z^p_t \mid x_{1:t}) \,\big\|\, p^p_\psi(z^p_t \mid x_{1:t-1})\big), \qquad
# \mathrm{KL}^f_t = \mathrm{KL}\big(q^f_\phi(z^f_t \mid x_{1:t}) \,\big\|\, p^f_\psi(z^f_t \mid x_{1:t-1})\big).$$
#
# The independence of the two posteriors is a modelling choice, not a fact: both codes explain the
# same frame, so the true posterior couples them, and the bound pays for the simplification with
# its gap. What it buys is two separately interpretable codes (notebook `07_latents`) and a motion
# prior that can extrapolate the recent motion.
#
# Numerically: a pair of diagonal Gaussians over $(z^p, z^f)$ is one diagonal Gaussian over the
# concatenated code, and its KL is the sum of the streams' KLs.

# %%
Z_p, Z_f = 10, 6
appearance = [torch.randn(B, T, Z_p, dtype=torch.float64) for _ in range(4)]  # mu_q, logvar_q, mu_p, logvar_p
motion = [torch.randn(B, T, Z_f, dtype=torch.float64) for _ in range(4)]
joint = kl_loss(*(torch.cat(pair, dim=-1) for pair in zip(appearance, motion)))
print(f"KL^p {kl_loss(*appearance):.4f} + KL^f {kl_loss(*motion):.4f} = {kl_loss(*appearance) + kl_loss(*motion):.4f};"
      f"  KL of the joint code {joint:.4f}")
assert torch.isclose(joint, kl_loss(*appearance) + kl_loss(*motion))

# %% [markdown]
# ## 5 · The loss in code, and what β is measured against
#
# *Paper: Eq. 3 and App. C.3 (β per dataset); the public code's reductions.*
#
# For a batch of $B$ videos, steps $t = 2, \dots, T$ (every frame after the first, the conditioning
# frames included) and $D = C\cdot H\cdot W$ numbers per frame, the official code computes
#
# $$\mathrm{MSE}_t(y) = \frac{1}{B D}\sum_{b=1}^{B}\big\lVert x^{(b)}_t - y^{(b)}_t\big\rVert^2, \qquad
# \mathrm{KL}_t = \frac{1}{B}\sum_{b=1}^{B}\sum_{k=1}^{Z}\mathrm{KL}_{t,b,k},$$
#
# $$\text{loss} = \sum_{t=2}^{T}\Big[\mathrm{MSE}_t(x^p) + \mathrm{MSE}_t(x^f) + \mathrm{MSE}_t(\hat x)\Big]
# + \beta\sum_{t=2}^{T}\Big[\mathrm{KL}^p_t + \mathrm{KL}^f_t\Big],$$
#
# with one posterior sample per video and step standing in for $\mathbb{E}_q$. In `slamp.losses`
# terms, `reconstruction_loss` is $\sum_t \mathrm{MSE}_t$ and `kl_loss` is $\sum_t \mathrm{KL}_t$.
# Compare with the negative ELBO of §4 averaged over the batch, where each likelihood term
# contributes $\frac{D}{2\sigma^2}\mathrm{MSE}_t + \frac{D}{2}\log(2\pi\sigma^2)$ per step.
# Multiplying it by $2\sigma^2/D$:
#
# $$\frac{2\sigma^2}{D}\Big(-\frac1B\sum_b \mathcal{L}^{(b)}_{\text{SLAMP},\,\beta=1}\Big)
# = \sum_{t}\Big[\mathrm{MSE}_t(x^p) + \mathrm{MSE}_t(x^f) + \mathrm{MSE}_t(\hat x)\Big]
# + \frac{2\sigma^2}{D}\sum_t\Big[\mathrm{KL}^p_t + \mathrm{KL}^f_t\Big] + 3\,(T-1)\,\sigma^2\log(2\pi\sigma^2).$$
#
# So the official loss is, up to a positive factor and a constant, the true ($\beta = 1$) negative
# ELBO of a model with pixel noise
#
# $$\sigma^2 = \frac{\beta D}{2}.$$
#
# **β is relative to a squared error per pixel against a KL per video:** the reconstruction terms
# are means over the $D$ numbers of a frame, while the KL is summed over latent dimensions and
# steps. Hence the tiny values of the paper ($10^{-4}$, $10^{-6}$), and hence a $\beta$ tuned at
# one resolution means a different noise level at another: at fixed $\beta$, quadrupling the
# pixels doubles the implied $\sigma$.
#
# The identity, checked numerically against log-densities from `torch.distributions`:

# %%
B, T, C, H, W, Z = 3, 5, 2, 6, 7, 4  # T here counts the predicted steps t = 2..T of the text
D, beta = C * H * W, 1e-3
sigma = math.sqrt(beta * D / 2)
frames = torch.rand(B, T, C, H, W, dtype=torch.float64)
heads = [torch.rand(B, T, C, H, W, dtype=torch.float64) for _ in range(3)]  # x^p, x^f, x̂
streams = [[torch.randn(B, T, Z, dtype=torch.float64) for _ in range(4)] for _ in range(2)]  # KL^p, KL^f

official_loss = sum(reconstruction_loss(y, frames) for y in heads) + beta * sum(kl_loss(*s) for s in streams)

log_likelihood = sum(Normal(y, sigma).log_prob(frames).sum() for y in heads) / B
kl_per_video = sum(kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp())).sum()
                   for mq, lq, mp, lp in streams) / B
negative_elbo = -(log_likelihood - kl_per_video)
rescaled = 2 * sigma**2 / D * negative_elbo - 3 * T * sigma**2 * math.log(2 * math.pi * sigma**2)
print(f"official loss {official_loss:.6f}   (2σ²/D)·(−ELBO) − const {rescaled:.6f}   with σ = {sigma:.3f}")
assert torch.isclose(official_loss, rescaled)

# %% [markdown]
# The noise level each of the paper's settings therefore assumes, for frames in $[0, 1]$:

# %%
presets = {"Stochastic Moving MNIST": (1, 64, 64, 1e-4), "KTH": (1, 64, 64, 1e-6), "BAIR": (3, 64, 64, 1e-4)}
for name, (channels, height, width, beta) in presets.items():
    frame_size = channels * height * width
    print(f"{name:24s} D = {channels}×{height}×{width} = {frame_size:5d}   β = {beta:.0e}"
          f"   σ = sqrt(βD/2) = {math.sqrt(beta * frame_size / 2):.3f}")

# %% [markdown]
# KTH's $\beta$ claims frames accurate to about 0.05 (a grey level of ~12 in 255), so its codes
# may carry much more information than MNIST's, whose $\sigma \approx 0.45$ lets the KL dominate
# unless a code really pays for itself in reconstruction.
#
# ## Exercises and what to try next
#
# The exercises of this notebook (blank in the student version; `python tools/assignments.py grade`
# checks them): **`reparameterize`**, **`gaussian_kl`**, **`reconstruction_loss`**.
#
# * Estimate the KL of section 1.2 by Monte Carlo with 10, 100 and 10,000 samples and plot the error
#   against the closed form: how fast does it shrink?
# * SVG also has a *fixed* prior N(0, I) (SVG-FP). Write its KL term with `gaussian_kl` and a prior
#   of `torch.zeros(())`, and compare its size with the learned prior's on the same posterior.
# * With β = 1e-4 (the MNIST preset), how many nats of KL per sequence cost as much as one
#   grey level of error on every pixel of a 64×64 frame? (Section 5 has the scales.)
#
# ## Summary
#
# * `slamp.losses.reparameterize(mu, logvar)` draws posterior codes with gradients;
#   `gaussian_kl` is the closed-form KL between diagonal Gaussians, per element.
# * `kl_loss` reduces it as the official code does: summed over latent dimensions and steps,
#   averaged over the batch; by §2 and §4 that is the KL of the whole sequence, for either stream.
# * `reconstruction_loss` is the Gaussian likelihood as an L2 loss: mean over batch, channels and
#   pixels per step, summed over steps.
# * A model's training loss, for predictions `x_p, x_f, x_hat` of frames `x[:, 1:]`:
#
#   ```python
#   loss = (reconstruction_loss(x_p, x[:, 1:]) + reconstruction_loss(x_f, x[:, 1:])
#           + reconstruction_loss(x_hat, x[:, 1:])
#           + beta * (kl_loss(*appearance_posterior, *appearance_prior)
#                     + kl_loss(*motion_posterior, *motion_prior)))
#   ```
#
#   which is the negative ELBO of a model with pixel noise $\sigma^2 = \beta D / 2$. SVG keeps only
#   the first term and one KL; SLAMP-Baseline keeps the three terms and one KL.
#
# Next: `01_flow_warping` builds the warp $\mathcal{W}$ behind $x^f_t$.
