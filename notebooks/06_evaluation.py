# %% [markdown]
# # 06 · Evaluation: the paper's protocol
#
# A stochastic model should not be scored on one sample: the future is uncertain, and a single
# draw that picks a different (plausible) bounce than the ground truth is punished as if it were
# wrong. SVG, SRVP and SLAMP therefore use a **best-of-N** protocol:
#
# 1. condition on the first $n_\text{past}$ frames of a test sequence (through the posterior);
# 2. draw $N = 100$ futures of $n_\text{future}$ frames from the learned prior;
# 3. for each metric, keep the sample whose score **averaged over frames** is best, and report the
#    per-frame curve of that sample;
# 4. average over test sequences and report the mean with a 95% confidence interval.
#
# This notebook builds the metrics (`slamp.metrics`: PSNR, SSIM, LPIPS) and the protocol
# (`slamp.evaluate`), batched: all samples of many sequences are generated and scored at once.
#
# *Paper: Sec. 4 ("Evaluation Metrics" and the per-dataset paragraphs), Table 1 (FVD), App. D
# (Tables 4–6 per dataset, Table 7: the ablation of the heads).*

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
#| default_exp metrics

# %%
import os

import matplotlib.pyplot as plt
import torch

SMOKE = os.environ.get("SLAMP_SMOKE", "0") == "1"  # small settings for CI
torch.manual_seed(0);

# %% [markdown]
# ## PSNR
#
# The peak signal-to-noise ratio of a frame $\hat x$ against the truth $x$, both in $[0, 1]$:
#
# $$\mathrm{PSNR}(\hat x, x) = 10 \log_{10} \frac{1}{\frac{1}{CHW}\sum (\hat x - x)^2}\ \text{dB}.$$
#
# It is computed per frame, and a sequence's score is the mean of its frames' PSNRs (not the PSNR
# of the mean error), as in the public code. A perfect frame has infinite PSNR; we cap the error
# at $10^{-10}$, i.e. 100 dB, so that averages stay finite.

# %% [markdown]
# **Exercise: `psnr`**
#
# Write `psnr`: the peak signal-to-noise ratio, in dB, of each predicted image against its target,
# for images in [0, 1] (peak 1), capped at 100 dB where they are identical. Shapes:
# `(N, C, H, W)` twice → `(N,)`. Checked on images whose mean squared errors are known.
#
# The cell after the function runs the grader's own checks on it, `check(psnr)`: it prints ✓ when
# they pass, or ✗ and the hint the grader gives for the mistake it finds, and stops there.

# %%
#| export
"""Frame metrics on ``(N, C, H, W)`` images in [0, 1], one value per image: PSNR, SSIM, LPIPS."""
import torch
import torch.nn.functional as F


def at_least_float32(images: torch.Tensor) -> torch.Tensor:
    """``images`` in float32, or float64 if they are: scores are computed at the frames' precision."""
    return images.to(torch.promote_types(images.dtype, torch.float32))


def _check_pair(prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.ndim != 4 or prediction.shape != target.shape:
        raise ValueError(f"prediction and target must both be (N, C, H, W) of one shape, found "
                         f"{tuple(prediction.shape)} and {tuple(target.shape)}")
    if not (prediction.is_floating_point() and target.is_floating_point()):
        raise ValueError(f"prediction and target must be floating point in [0, 1], found {prediction.dtype} and {target.dtype}")


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image ``(N, C, H, W)`` in [0, 1] → ``(N,)``
    (capped at 100 dB for identical images)."""
    _check_pair(prediction, target)
    # BEGIN SOLUTION psnr
    mse = ((prediction.float() - target.float()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))
    # END SOLUTION


# %%
from slamp.exercises import check
from slamp.notebook import use

check(psnr)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(psnr)  # from here on the package runs this psnr: in a student's notebook, yours

# %% [markdown]
# ## SSIM
#
# The structural similarity (Wang et al., 2004) compares local means $\mu$, variances $\sigma^2$
# and the covariance $\sigma_{xy}$ inside a Gaussian window ($11\times11$, $\sigma = 1.5$):
#
# $$\mathrm{SSIM}(x, y) = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}{(\mu_x^2 + \mu_y^2 + C_1)
#   (\sigma_x^2 + \sigma_y^2 + C_2)}, \qquad C_1 = (0.01 L)^2,\ C_2 = (0.03 L)^2,\ L = 1,$$
#
# averaged over the positions where the whole window fits in the image and over channels. This is
# what scikit-image's `structural_similarity(..., gaussian_weights=True, sigma=1.5,
# use_sample_covariance=False, data_range=1)` computes; `tests/test_metrics.py` checks that we
# agree with it. The window is a separable Gaussian, so filtering is two 1-D passes; a "valid"
# 1-D pass over an axis of length $n$ is a product with an $n \times (n - 10)$ banded matrix, so
# the whole filter is $G_h^\top X G_w$: one batched matrix product (4× faster on a CPU than two
# grouped convolutions, which matters when best-of-100 scores millions of frames). Best of 100
# also compares every target frame with 100 samples: `ssim_of_samples` filters the target's
# $\mu_y$ and $y^2$ once per target instead of once per sample, three maps per sample instead of
# five (1.56× faster, the same numbers: `benchmarks/evaluation_kernels.py`).

# %%
#| export
def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None, dtype=torch.float32) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - size // 2
    window = torch.exp(-(x**2) / (2 * sigma**2))
    return window / window.sum()


def _banded(size: int, window: torch.Tensor) -> torch.Tensor:
    """``(size, size - k + 1)``: column ``j`` holds the window at rows ``j .. j + k - 1``, so that
    ``x @ _banded(...)`` filters the last axis of ``x`` ('valid' positions only)."""
    k = len(window)
    rows = torch.arange(size, device=window.device)[:, None] - torch.arange(size - k + 1, device=window.device)
    inside = (rows >= 0) & (rows < k)
    return torch.where(inside, window[rows.clamp(0, k - 1)], window.new_zeros(()))


def _filter(images: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of every channel of ``(..., H, W)``: ``G_hᵀ · X · G_w``."""
    return _banded(images.shape[-2], window).t() @ images @ _banded(images.shape[-1], window)


def _ssim_map(mu_x, mu_y, xx, yy, xy):
    """SSIM at every window position from the filtered ``x``, ``y``, ``x²``, ``y²`` and ``xy``."""
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def _check_window(images: torch.Tensor, window_size: int) -> None:
    if min(images.shape[-2:]) < window_size:
        raise ValueError(f"images must be at least {window_size}x{window_size} for SSIM, found {tuple(images.shape[-2:])}")


def ssim(prediction: torch.Tensor, target: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity of each image ``(N, C, H, W)`` in [0, 1] → ``(N,)``, with a Gaussian
    window (11, σ = 1.5), averaged over valid window positions and channels (as scikit-image)."""
    _check_pair(prediction, target)
    _check_window(prediction, window_size)
    x, y = at_least_float32(prediction), at_least_float32(target)
    window = _gaussian_window(window_size, sigma, x.device, x.dtype)
    mu_x, mu_y, xx, yy, xy = _filter(torch.stack([x, y, x * x, y * y, x * y]), window)  # one product for all five
    return _ssim_map(mu_x, mu_y, xx, yy, xy).flatten(1).mean(1)


def ssim_of_samples(samples: torch.Tensor, target: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """:func:`ssim` of every sample ``(B, S, T, C, H, W)`` against its sequence's target
    ``(B, T, C, H, W)`` → ``(B, S, T)``, with the target's local means and variances filtered once
    per target frame instead of once per sample (best of 100 compares each target 100 times)."""
    if samples.ndim != 6 or samples.shape[:1] + samples.shape[2:] != target.shape:
        raise ValueError(f"samples (B, S, T, C, H, W) {tuple(samples.shape)} do not match target (B, T, C, H, W) "
                         f"{tuple(target.shape)}")
    _check_window(target, window_size)
    x, y = at_least_float32(samples), at_least_float32(target)[:, None]  # the target broadcast over samples
    window = _gaussian_window(window_size, sigma, x.device, x.dtype)
    mu_y, yy = _filter(torch.stack([y, y * y]), window)
    mu_x, xx, xy = _filter(torch.stack([x, x * x, x * y]), window)
    return _ssim_map(mu_x, mu_y, xx, yy, xy).flatten(3).mean(3)


# %%
frames = torch.rand(4, 3, 64, 64)
noisy = (frames + 0.1 * torch.randn_like(frames)).clamp(0, 1)
print("PSNR identical", psnr(frames, frames).tolist()[:2], " noisy", [round(v, 2) for v in psnr(noisy, frames).tolist()])
print("SSIM identical", [round(v, 4) for v in ssim(frames, frames).tolist()], " noisy", [round(v, 3) for v in ssim(noisy, frames).tolist()])
assert torch.allclose(ssim(frames, frames), torch.ones(4)) and (psnr(noisy, frames) < 25).all()

# Every sample against its sequence's target, the target's statistics filtered once: the same values.
samples = torch.stack([noisy, frames, frames.flip(-1)], 1)[:, :, None]  # (B=4, S=3, T=1, C, H, W)
shared = ssim_of_samples(samples, frames[:, None])
assert shared.shape == (4, 3, 1) and torch.allclose(shared[:, 0, 0], ssim(noisy, frames), atol=1e-6)

# %% [markdown]
# A check against scikit-image (when it is installed; it is part of the `[dev]` extra):

# %%
try:
    from skimage.metrics import structural_similarity
except ImportError:
    print("scikit-image not installed: skipping the comparison")
else:
    reference = structural_similarity(noisy[0].numpy(), frames[0].numpy(), channel_axis=0, data_range=1.0,
                                      gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    print(f"slamp {ssim(noisy[:1], frames[:1]).item():.6f}   scikit-image {reference:.6f}")
    assert abs(ssim(noisy[:1], frames[:1]).item() - reference) < 1e-4

# %% [markdown]
# ## LPIPS
#
# LPIPS (Zhang et al., 2018) compares deep features of a network trained on ImageNet, weighted by
# linear layers fitted to human judgements; lower is better. We use the `lpips` package (AlexNet,
# v0.1), on inputs scaled to $[-1, 1]$, and repeat grey frames to three channels.
#
# It is **optional**: `lpips` needs torchvision (which must match the installed torch — true on
# Colab, not with the CPU build of torch used in CI) and ImageNet weights for AlexNet that
# torchvision downloads on first use. When either is missing, `lpips()` raises
# `LPIPSUnavailable` saying what is missing and how to get it — never a silent substitute.

# %%
#| export
class LPIPSUnavailable(RuntimeError):
    """LPIPS cannot run here: the message says why and what to install or where to put weights."""


_LPIPS_MODELS = {}


def _lpips_model(net: str, device):
    key = (net, str(device))
    if key not in _LPIPS_MODELS:
        try:
            import lpips as lpips_package
        except Exception as error:  # ImportError, or torchvision failing to load its operators
            raise LPIPSUnavailable(
                f"LPIPS needs the `lpips` package and a torchvision that matches your torch ({error!r}). "
                f"On Colab: `pip install lpips`. Elsewhere: `pip install 'slamp[lpips]'` with a torchvision "
                f"built for your torch (the CPU-only torch wheel has no matching torchvision on PyPI).") from error
        try:
            model = lpips_package.LPIPS(net=net, version="0.1", verbose=False)
        except Exception as error:  # the ImageNet backbone could not be downloaded
            raise LPIPSUnavailable(
                f"LPIPS could not load the ImageNet weights of {net} ({error!r}). They are downloaded by "
                f"torchvision on first use; offline, put the file (for alex: alexnet-owt-7be5be79.pth) in "
                f"{torch.hub.get_dir()}/checkpoints/.") from error
        _LPIPS_MODELS[key] = model.eval().to(device)
    return _LPIPS_MODELS[key]


def lpips(prediction: torch.Tensor, target: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS distance (v0.1) of each image ``(N, C, H, W)`` in [0, 1] → ``(N,)``; lower is better.
    Raises :class:`LPIPSUnavailable` when the package or its weights are missing."""
    _check_pair(prediction, target)
    model = _lpips_model(net, prediction.device)
    if prediction.shape[1] == 1:  # grey frames: the network expects RGB
        prediction, target = prediction.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
    with torch.no_grad():
        return model(prediction.float() * 2 - 1, target.float() * 2 - 1).flatten()


# %%
try:
    print("LPIPS", lpips(noisy, frames).tolist())
except LPIPSUnavailable as error:
    print("LPIPS unavailable here:", str(error)[:300], "...")

# %% [markdown]
# ## FVD
#
# The Fréchet Video Distance (Unterthiner et al., 2018) compares *sets* of videos, not pairs:
# both sets go through an I3D network trained on Kinetics-400, and the two clouds of features
# are summarised by Gaussians $\mathcal N(\mu_r, \Sigma_r)$, $\mathcal N(\mu_g, \Sigma_g)$ whose
# Fréchet (2-Wasserstein) distance is
#
# $$\mathrm{FVD} = \lVert \mu_r - \mu_g \rVert^2 + \operatorname{tr}\bigl(\Sigma_r + \Sigma_g - 2(\Sigma_r\Sigma_g)^{1/2}\bigr).$$
#
# Lower is better. The distance itself is a few lines (`scipy.linalg.sqrtm` for the matrix square
# root). The I3D weights are not: we use the TorchScript export of I3D common to recent video
# papers (`i3d_torchscript.pt`, from the StyleGAN-V / fvd-comparison projects): frames are resized
# so the short side is 224 and centre-cropped, scaled to $[-1, 1]$, grey repeated to RGB, and the
# 400 logits before the softmax are the features. The file is never downloaded at run time:
# `fvd()` looks for it at `$SLAMP_I3D`, else in the data folders (`slamp.data.data_roots()`; on
# Linux by default `~/.cache/slamp/i3d_torchscript.pt`) and raises
# `FVDUnavailable`, saying where to get it and where to put it, when it is not there.
# FVD needs hundreds of videos to be stable and is biased on small sets: compare models only at
# equal set sizes.

# %%
#| export
import os
from pathlib import Path

import numpy as np
from scipy import linalg

I3D_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt"


class FVDUnavailable(RuntimeError):
    """FVD cannot run here: the I3D weights are missing or unreadable (the message says where to put them)."""


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two sets of features ``(N, D)`` and ``(M, D)``."""
    a, b = (np.asarray(f, dtype=np.float64) for f in (features_a, features_b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two sets of features (N, D), (M, D) with N, M >= 2; found {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(Σa Σb) = tr sqrt(Σa^½ Σb Σa^½), a symmetric PSD matrix: its eigenvalues are real. This
    # stays finite where the covariances are singular (fewer samples than features), which a
    # general matrix square root (scipy's sqrtm, 1.17) turns into NaN.
    values, vectors = linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    trace_root = np.sqrt(linalg.eigvalsh(root_a @ cov_b @ root_a).clip(min=0)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


I3D_FILE = "i3d_torchscript.pt"

# %% [markdown]
# The features are those of the I3D network (Carreira & Zisserman, 2017) trained on Kinetics, as
# in the FVD paper: a TorchScript file that users place in the data folder (nothing is downloaded
# at run time); frames are resized so that their short side is 224, centre-cropped to 224×224
# and scaled to $[-1, 1]$ first.

# %%
#| export
def i3d_path() -> Path:
    """Where the I3D TorchScript file is looked for: ``$SLAMP_I3D``, else the first data folder
    that has ``i3d_torchscript.pt``, else the data folder (where to put it)."""
    from slamp.data.files import data_home, find_data

    if os.environ.get("SLAMP_I3D"):
        return Path(os.environ["SLAMP_I3D"]).expanduser()
    return find_data(I3D_FILE) or data_home() / I3D_FILE


_I3D = {}


def _i3d(device):
    path = i3d_path()
    if not path.is_file():
        raise FVDUnavailable(f"FVD needs the I3D network, expected at {path} (set SLAMP_I3D to use another "
                             f"path). Download i3d_torchscript.pt from {I3D_URL} and put it there.")
    key = (str(path), str(device))
    if key not in _I3D:
        try:
            _I3D[key] = torch.jit.load(str(path), map_location=device).eval()
        except Exception as error:
            raise FVDUnavailable(f"cannot load the I3D network at {path} ({type(error).__name__}); is it the "
                                 f"TorchScript file from {I3D_URL}, downloaded completely?") from error
    return _I3D[key]


def i3d_features(videos: torch.Tensor, batch_size: int = 16) -> np.ndarray:
    """I3D features ``(N, 400)`` of videos ``(N, T, C, H, W)`` in [0, 1] (C = 1 or 3, T >= 9)."""
    if videos.ndim != 5 or videos.shape[2] not in (1, 3):
        raise ValueError(f"videos must be (N, T, C, H, W) with C = 1 or 3, found {tuple(videos.shape)}")
    network, features = _i3d(videos.device), []
    for chunk in videos.split(batch_size):
        n, t, c, h, w = chunk.shape
        frames = chunk.float().flatten(0, 1).expand(-1, 3, -1, -1)  # grey -> RGB
        scale = 224 / min(h, w)
        frames = F.interpolate(frames, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False)
        top, left = (frames.shape[-2] - 224) // 2, (frames.shape[-1] - 224) // 2
        frames = frames[..., top:top + 224, left:left + 224] * 2 - 1
        clips = frames.view(n, t, 3, 224, 224).permute(0, 2, 1, 3, 4).contiguous()  # (N, C, T, H, W)
        with torch.no_grad():
            features.append(network(clips, rescale=False, resize=False, return_features=True).cpu().numpy())
    return np.concatenate(features)


def fvd(real: torch.Tensor, generated: torch.Tensor) -> float:
    """FVD between two sets of videos ``(N, T, C, H, W)`` in [0, 1]; lower is better. Raises
    :class:`FVDUnavailable` when the I3D weights are not on this machine."""
    return frechet_distance(i3d_features(real), i3d_features(generated))


# %% [markdown]
# The distance checks against its closed form: for $\Sigma_r = \Sigma_g$ it is
# $\lVert\mu_r - \mu_g\rVert^2$, and it is 0 for a set against itself.

# %%
generator = np.random.default_rng(0)
cloud = generator.normal(size=(4000, 8))
assert abs(frechet_distance(cloud, cloud)) < 1e-6
shifted = frechet_distance(cloud, cloud + 0.5)  # same covariance, means 0.5 apart in 8 dimensions
print(f"shifted by 0.5 in 8 dims: {shifted:.4f} (closed form {8 * 0.25})")
assert abs(shifted - 2.0) < 1e-6
try:
    print("FVD", fvd(frames[None].repeat(2, 9, 1, 1, 1), noisy[None].repeat(2, 9, 1, 1, 1)))
except FVDUnavailable as error:
    print("FVD unavailable here:", error)

# %% [markdown]
# ## Confidence intervals
#
# With $n$ test sequences whose scores have mean $\bar s$ and sample standard deviation $s$, the
# 95% confidence interval of the mean is $\bar s \pm t_{0.975,\,n-1}\, s / \sqrt{n}$ (Student's
# $t$; for large $n$, $t \approx 1.96$).

# %%
#| export
import math

from scipy import stats


def mean_confidence_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean of ``values`` (any shape, flattened) and the half-width of its confidence interval
    (Student's t); the half-width is 0 for a single value."""
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    if values.numel() == 0:
        raise ValueError("mean_confidence_interval needs at least one value")
    mean = values.mean().item()
    if values.numel() == 1:
        return mean, 0.0
    sem = values.std(unbiased=True).item() / math.sqrt(values.numel())
    return mean, sem * stats.t.ppf((1 + confidence) / 2, values.numel() - 1)


# %%
mean, half = mean_confidence_interval(torch.randn(10_000) + 3)
print(f"{mean:.3f} ± {half:.3f}")
assert abs(mean - 3) < 3 * half and abs(half - 1.96 / 100) < 2e-3

# %% [markdown]
# ## Best of N, batched
#
# For a batch of $B$ test sequences we generate $S$ samples each — one call to
# `model.generate(x_past, n_future, S)`, which runs all $B \cdot S$ futures as one batch — and score
# every frame of every sample: scores `(B, S, T)`. The best sample of sequence $b$ for a metric is
# $\arg\max_s \frac1T \sum_t \text{score}[b, s, t]$ (arg min for LPIPS), and its per-frame row is
# what enters the curves. Samples are generated in chunks so memory stays bounded; only scores and
# the current best frames are kept.
#
# For SLAMP-Baseline and SLAMP we can also score the parts of the prediction: the appearance head
# $x^p$, the motion head $x^f$, their plain average, and the masked blend $\hat x$ — the ablation of
# the paper's Table 7, which shows what the learned mask adds.

# %% [markdown]
# **Exercise: `best_of_n`**
#
# Write `best_of_n`: for each sequence, the sample whose score averaged over frames is best (the
# largest, or the smallest when `higher_is_better=False`, as for LPIPS), and that sample's
# per-frame scores. Shapes: scores `(B, S, T)` → index `(B,)`, curve `(B, T)`. Checked on scores
# where the best single frame and the best mean belong to different samples.
#
# The cell after the function runs the grader's own checks on it, `check(best_of_n)`: it prints ✓
# when they pass, or ✗ and the hint the grader gives for the mistake it finds, and stops there.

# %%
#| export evaluate
"""The best-of-N protocol of SVG, SRVP and SLAMP, batched over samples and sequences."""
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from slamp.console import progress_bar

from slamp.data.files import atomic_path, save_tensors
from slamp.metrics import at_least_float32, lpips, mean_confidence_interval, psnr, ssim, ssim_of_samples
from slamp.models import Prediction

METRICS = {"psnr": (psnr, True), "ssim": (ssim, True), "lpips": (lpips, False)}  # name: (function, higher is better)
HEADS = ("x_hat", "x_p", "x_f", "average")  # x̂, x^p, x^f, (x^p + x^f) / 2
PROTOCOLS = ("slamp", "public-code")  # slamp's protocol, or the public code's evaluate.py (see below)


def score_frames(samples: torch.Tensor, target: torch.Tensor, metric: str, protocol: str = "slamp") -> torch.Tensor:
    """Score every frame of every sample: ``samples`` ``(B, S, T, C, H, W)`` against ``target``
    ``(B, T, C, H, W)`` → ``(B, S, T)``. ``protocol="public-code"``: PSNR as the public code
    computes it on colour frames (:func:`channel_psnr`)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {sorted(METRICS)}")
    batch, num_samples, length = samples.shape[:3]
    if samples.shape[:1] + samples.shape[2:] != target.shape:
        raise ValueError(f"samples (B, S, T, C, H, W) {tuple(samples.shape)} do not match target (B, T, C, H, W) {tuple(target.shape)}")
    if metric == "ssim":  # the targets' statistics once, not once per sample
        return ssim_of_samples(samples, target)
    expanded = target[:, None].expand_as(samples)
    function = channel_psnr if (metric, protocol) == ("psnr", "public-code") else METRICS[metric][0]
    return function(samples.flatten(0, 2), expanded.flatten(0, 2)).view(batch, num_samples, length)



def best_of_n(scores: torch.Tensor, higher_is_better: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The best sample of each sequence by its score averaged over frames: ``scores`` ``(B, S, T)``
    → its index ``(B,)`` and its per-frame scores ``(B, T)``."""
    if scores.ndim != 3:
        raise ValueError(f"scores must be (B, S, T), found {tuple(scores.shape)}")
    # BEGIN SOLUTION best_of_n
    mean = scores.mean(-1)
    index = mean.argmax(1) if higher_is_better else mean.argmin(1)
    return index, scores[torch.arange(len(scores)), index]
    # END SOLUTION


def head_frames(prediction, head: str) -> torch.Tensor:
    """The frames ``(B, S, T, C, H, W)`` of one head of a generated :class:`Prediction`."""
    if head == "x_hat":
        return prediction.x_hat
    if prediction.x_f is None:
        raise ValueError(f"head {head!r} needs a model with a motion head (SLAMP-Baseline or SLAMP), not SVG")
    return {"x_p": prediction.x_p, "x_f": prediction.x_f, "average": (prediction.x_p + prediction.x_f) / 2}[head]


# %%
from slamp.exercises import check
from slamp.notebook import use

check(best_of_n)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(best_of_n)  # from here on the package runs this best_of_n: in a student's notebook, yours

# %% [markdown]
# The result keeps, for each head and metric, the per-frame scores of the best sample of every
# sequence, and summarises them as the paper does: the mean over sequences and frames with its
# 95% confidence interval, and the per-frame curve.

# %%
#| export evaluate
def write_csv(path: Path, header: list, rows) -> None:
    """Write ``header`` and ``rows`` to the CSV file ``path``, atomically (whole, or not at all)."""
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


# %%
#| export evaluate
@dataclass
class Evaluation:
    """Best-of-N scores: ``curves[head][metric]`` is ``(N, T)`` (N test sequences, T predicted
    frames), the per-frame scores of each sequence's best sample; ``best_frames`` ``(N, T, C, H, W)``
    is the best sample by the first metric, of the first head (when kept). ``diversity[head]`` is
    ``(N, T)``: how much the N samples of a sequence differ, the per-pixel standard deviation over
    samples averaged over pixels (0 when all samples are alike, as for a deterministic predictor)."""

    curves: dict = field(default_factory=dict)
    best_frames: torch.Tensor | None = None
    settings: dict = field(default_factory=dict)
    diversity: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """``{head: {metric: {"mean", "ci95", "per_frame", "per_frame_ci95"}}}`` — a sequence's
        score is its mean over frames; the interval is over sequences. ``"diversity"`` sits beside
        the metrics of each head, in the same form, so that a score is read next to how much the
        samples it was chosen from differ."""
        out = {}
        for head, metrics in self.curves.items():
            out[head] = {}
            if head in self.diversity:
                metrics = {**metrics, "diversity": self.diversity[head]}
            for metric, curve in metrics.items():
                mean, half = mean_confidence_interval(curve.mean(1))
                per_frame = [mean_confidence_interval(curve[:, t]) for t in range(curve.shape[1])]
                out[head][metric] = {"mean": mean, "ci95": half, "per_frame": [m for m, _ in per_frame],
                                     "per_frame_ci95": [h for _, h in per_frame]}
        return out

    def save(self, folder) -> Path:
        """Write (if kept) ``best_samples.pt``, ``per_frame.csv``, ``per_sequence.csv`` (each sequence's
        score, the mean over frames: what paired comparisons between predictors need),
        ``per_sequence_frame.csv`` (each sequence's score at each predicted frame: paired comparisons
        frame by frame) and, last, ``summary.json`` to ``folder``. Each file is written beside its name and renamed into place
        when complete, so a full disk leaves earlier files as they were, never half a file; the
        summary comes last, when the rest is on disk, and the largest file first."""
        folder = Path(folder)
        summary = self.summary()
        if self.best_frames is not None:
            with atomic_path(folder / "best_samples.pt") as temporary:
                save_tensors(self.best_frames.to(torch.float16), temporary)
        write_csv(folder / "per_frame.csv", ["head", "metric", "frame", "mean", "ci95"],
                  ([head, metric, t + 1, f"{m:.6f}", f"{h:.6f}"] for head, metrics in summary.items()
                   for metric, values in metrics.items()
                   for t, (m, h) in enumerate(zip(values["per_frame"], values["per_frame_ci95"]))))
        curves = [(head, metric, curve) for head, metrics in self.curves.items() for metric, curve in metrics.items()]
        write_csv(folder / "per_sequence.csv", ["head", "metric", "sequence", "score"],
                  ([head, metric, i, f"{v:.6f}"] for head, metric, curve in curves
                   for i, v in enumerate(curve.mean(1).tolist())))
        write_csv(folder / "per_sequence_frame.csv", ["head", "metric", "sequence", "frame", "score"],
                  ([head, metric, i, t + 1, f"{v:.6f}"] for head, metric, curve in curves
                   for i, row in enumerate(curve.tolist()) for t, v in enumerate(row)))
        with atomic_path(folder / "summary.json") as temporary:
            temporary.write_text(json.dumps({"settings": self.settings, "results": summary}, indent=2) + "\n")
        return folder


# %% [markdown]
# A best-of-N score alone can hide a model whose samples are all alike (then N = 1 would score the
# same), so the evaluation also measures how much the samples differ: the standard deviation over
# samples of each pixel, averaged over the pixels of a frame. The samples arrive in chunks, so it
# keeps running sums (in float64, where the two sums of 100 samples do not cancel badly).

# %%
#| export evaluate
class SampleSpread:
    """``sample_spread`` (03) of samples that arrive in chunks ``(B, S, T, C, H, W)``: the per-pixel
    standard deviation over samples, averaged over channels and pixels: ``std()`` → ``(B, T)``."""

    def __init__(self):
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def add(self, frames: torch.Tensor) -> None:
        frames = frames.double()
        self.count += frames.shape[1]
        self.total = self.total + frames.sum(1)
        self.squares = self.squares + (frames ** 2).sum(1)

    def std(self) -> torch.Tensor:
        mean = self.total / self.count
        variance = (self.squares / self.count - mean ** 2).clamp_min(0)
        return variance.sqrt().mean((2, 3, 4)).float()


# %%
from slamp.models import sample_spread

frames = torch.rand(2, 7, 3, 1, 4, 4)  # (B, S, T, C, H, W): 7 samples, given in chunks of 3, 3 and 1
spread = SampleSpread()
for chunk in frames.split(3, dim=1):
    spread.add(chunk)
assert torch.allclose(spread.std(), sample_spread(frames), atol=1e-6)

# %% [markdown]
# **A faster copy to sample from.** Sampling 100 futures per test sequence runs the decoders
# thousands of times, so `evaluate` samples from `fast_sampler(model, device)` (the plain module
# `slamp.kernels`, with its own tests in `tests/test_evaluate.py`): a copy in which every BatchNorm
# is folded into the convolution before it (in evaluation mode it is a fixed affine map per
# channel), on a CPU in channels-last layout and with the thin output layers computed as one
# matrix product each (`benchmarks/evaluation_kernels.py` times them). It is the same function up to
# float rounding: the check below compares the two with the model's own float32 rounding error
# (the model against itself in float64). The samples of a batch come in chunks (`MAX_BATCH`
# futures per call), with all their noise drawn at once, so the scores do not depend on the chunk
# size.

# %%
#| export evaluate
from slamp.kernels import MAX_BATCH, fast_sampler


def sampled_chunks(sampler, past, n_future: int, num_samples: int, chunk: int):
    """``num_samples`` futures of ``past`` ``(B, n_past, C, H, W)``, ``chunk`` samples per call:
    yields each call's :class:`Prediction`. Every sample's noise is drawn at once, so the futures
    do not depend on the chunk size (a reference predictor, without ``draw_noise``, draws none)."""
    batch, steps = len(past), past.shape[1] - 1 + n_future
    noise = None
    if hasattr(sampler, "draw_noise"):
        noise = {name: eps.unflatten(0, (batch, num_samples))
                 for name, eps in sampler.draw_noise(batch * num_samples, steps, past.device).items()}
    for start in range(0, num_samples, chunk):
        size = min(chunk, num_samples - start)
        drawn = {} if noise is None else {"noise": {k: v[:, start:start + size].flatten(0, 1) for k, v in noise.items()}}
        with torch.inference_mode():
            yield sampler.generate(past, n_future, size, **drawn)


# %%
import copy

from slamp.models import SLAMP

torch.manual_seed(0)
tiny = SLAMP.from_preset("tiny").eval()
past, eps = torch.rand(2, 3, 1, 64, 64), tiny.draw_noise(2 * 4, 2 + 5)
with torch.no_grad():
    plain = tiny.generate(past, 5, 4, noise=eps).x_hat
    fast = fast_sampler(tiny, "cpu").generate(past, 5, 4, noise=eps).x_hat
    exact = copy.deepcopy(tiny).double().generate(past.double(), 5, 4, noise={k: v.double() for k, v in eps.items()}).x_hat
gap, rounding = (fast - plain).abs().max().item(), (plain - exact).abs().max().item()
print(f"fast sampler vs model: max difference {gap:.1e} (pixels in [0, 1]); the model's own float32 rounding "
      f"(against itself in float64): {rounding:.1e}")
assert gap < 10 * rounding

# %% [markdown]
# Settings that cannot run are refused before the first sample is drawn (an evaluation can take
# hours), each with what would have been accepted.

# %%
#| export evaluate
def check_settings(n_past: int, n_future: int, num_samples: int, metrics, heads, protocol: str = "slamp") -> None:
    """A ``ValueError`` naming the first setting of an evaluation that cannot be run."""
    if n_past < 1 or n_future < 1 or num_samples < 1:
        raise ValueError(f"n_past, n_future and num_samples must be >= 1, found {n_past}, {n_future}, {num_samples}")
    for name, value, choices in [("protocol", protocol, PROTOCOLS), *[("metric", m, METRICS) for m in metrics],
                                 *[("head", h, HEADS) for h in heads]]:
        if value not in choices:
            raise ValueError(f"unknown {name} {value!r}; choose from {sorted(choices)}")


# %% [markdown]
# The loop: for each batch of test sequences, draw the samples in chunks, score every head and
# metric, and keep per sequence the running best. The model runs in evaluation mode, so BatchNorm
# uses its running statistics and a sequence's samples do not depend on the other sequences of the
# batch (the public code kept BatchNorm in training mode here: `protocol="public-code"`, below,
# does as it did).

# %%
#| export evaluate
@torch.no_grad()
def evaluate(model, videos, n_past: int, n_future: int, num_samples: int = 100, metrics=("psnr", "ssim"),
             heads=("x_hat",), max_batch: int | None = None, device=None, keep_best: bool = True,
             progress: bool = True, protocol: str = "slamp") -> Evaluation:
    """Best-of-``num_samples`` evaluation of ``model`` on ``videos``, an iterable of batches
    ``(B, T, C, H, W)`` with ``T >= n_past + n_future`` (e.g. a DataLoader over a test set).

    At most ``max_batch`` futures are generated per call (sequences × samples; default
    ``MAX_BATCH`` of the device: large batches pay on a GPU, on a CPU they only fill the caches). Returns an
    :class:`Evaluation`; ``best_frames`` holds each sequence's best sample (first head, first metric).
    ``protocol="public-code"``: as the public code's ``evaluate.py`` (see :class:`PublicCodeSampler`)."""
    check_settings(n_past, n_future, num_samples, metrics, heads, protocol)
    device = torch.device(device or next(model.parameters()).device)
    max_batch = max_batch or MAX_BATCH.get(device.type, 2048)
    model.eval()
    sampler = fast_sampler(model, device) if protocol == "slamp" else PublicCodeSampler(model)
    curves = {head: {metric: [] for metric in metrics} for head in heads}
    best_frames, diversity = [], {head: [] for head in heads}
    for batch in progress_bar(videos, desc="evaluating", disable=not progress):
        batch = batch.to(device)
        if batch.ndim != 5 or batch.shape[1] < n_past + n_future:
            raise ValueError(f"test batches must be (B, T, C, H, W) with T >= n_past + n_future = {n_past + n_future}, "
                             f"found {tuple(batch.shape)}")
        past, target = batch[:, :n_past], batch[:, n_past:n_past + n_future]
        chunk = max(1, min(num_samples, max_batch // len(batch))) if protocol == "slamp" else 1
        scores = {head: {metric: [] for metric in metrics} for head in heads}
        best_score = torch.full((len(batch),), -float("inf"), device=device)
        best = torch.zeros_like(target) if keep_best else None
        spread = {head: SampleSpread() for head in heads}
        for prediction in sampled_chunks(sampler, past, n_future, num_samples, chunk):
            for head in heads:
                frames = at_least_float32(head_frames(prediction, head))
                spread[head].add(frames)
                for metric in metrics:
                    scores[head][metric].append(score_frames(frames, target, metric, protocol))
            if keep_best:  # the running best sample of the first head by the first metric
                sign = 1 if METRICS[metrics[0]][1] else -1
                value, index = (sign * scores[heads[0]][metrics[0]][-1].mean(-1)).max(1)
                better = value > best_score
                best_score = torch.where(better, value, best_score)
                chosen = head_frames(prediction, heads[0])[torch.arange(len(batch)), index]
                best[better] = chosen[better].to(best.dtype)
        for head in heads:
            for metric in metrics:
                _, curve = best_of_n(torch.cat(scores[head][metric], 1), METRICS[metric][1])
                curves[head][metric].append(curve.cpu())
            diversity[head].append(spread[head].std().cpu())
        if keep_best:
            best_frames.append(best.cpu())
    curves = {h: {m: torch.cat(c) for m, c in ms.items()} for h, ms in curves.items()}
    settings = {"n_past": n_past, "n_future": n_future, "num_samples": num_samples, "metrics": list(metrics),
                "heads": list(heads), "model": type(model).__name__, "protocol": protocol}
    return Evaluation(curves, torch.cat(best_frames) if keep_best else None, settings,
                      {head: torch.cat(values) for head, values in diversity.items()})


# %% [markdown]
# Training validates with the same protocol, on a few samples: `validate` draws `num_samples`
# futures of held-out clips, scores them with `score_frames`, keeps the best by `best_of_n`, and
# reports the mean over samples beside the best. Its noise comes from a fixed seed in a forked
# random generator, so validating neither changes the training run nor makes two validations
# differ by luck.

# %%
#| export evaluate
@torch.no_grad()
def validate(model, videos: torch.Tensor, n_past: int, n_future: int, num_samples: int, batch_size: int = 32,
             device="cpu", dtype: torch.dtype | None = None, seed: int = 0):
    """Score futures sampled from the learned prior against ``videos`` ``(N, n_past + n_future', C, H, W)``.

    Returns ``metrics`` (``psnr_best``, ``psnr_mean``, ``ssim_best``, ``ssim_mean``: per sample the
    metric averaged over frames, then the best (:func:`best_of_n`) or the mean over samples, then
    the mean over sequences) and ``example``: the first sequence ``truth (T, C, H, W)``, its
    ``samples (S, n_future, C, H, W)`` and their ``psnr (S,)``."""
    was_training, device = model.training, torch.device(device)
    model.eval()
    scores, example = {"psnr": [], "ssim": []}, None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for chunk in videos.split(batch_size):
            chunk = chunk.to(device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                futures = model.generate(chunk[:, :n_past], n_future, num_samples).x_hat
            futures = futures.float().clamp(0, 1)  # (b, S, F, C, H, W)
            for name in scores:
                scores[name].append(score_frames(futures, chunk[:, n_past:n_past + n_future], name).cpu())
            if example is None:
                example = {"truth": chunk[0].cpu(), "samples": futures[0].cpu(), "psnr": scores["psnr"][0][0].mean(-1)}
    model.train(was_training)
    metrics = {}
    for name, per_frame in scores.items():
        per_frame = torch.cat(per_frame)  # (N, S, F)
        metrics[f"{name}_best"] = best_of_n(per_frame)[1].mean().item()
        metrics[f"{name}_mean"] = per_frame.mean().item()
    return metrics, example

# %% [markdown]
# ## The public code's protocol
#
# The paper's tables were made by the public code's `evaluate.py`, which differs from the loop
# above in two places that change numbers (the test sets, best of $N$ per metric on the
# frame-averaged score, and SSIM agree):
#
# * **BatchNorm in training mode.** It loads the encoders, decoders and mask net in training mode,
#   so BatchNorm normalises with the statistics of the batch of test sequences in hand (20 by
#   default; its loader refuses a test set that the batch size does not divide), and it draws the
#   samples one at a time, each over the whole batch. A prediction then depends on which sequences
#   share its batch.
# * **PSNR of colour frames** is the mean of the three channels' PSNRs, not the PSNR of the mean
#   squared error: the same on grey frames, never lower on colour ones ($-\log$ is convex, so the
#   mean of the channels' PSNRs is at least the PSNR of their mean error).
#
# `evaluate(..., protocol="public-code")` does both, so the paper's numbers can be reproduced
# with the paper's weights; `slamp evaluate --protocol public-code` also batches as the public
# code does. `tests/test_release.py` checks the samples against ones the public code drew with the
# same weights and noise, and run side by side with the public `evaluate.py` loop on the same
# weights, data and noise, the scores agree to $7 \times 10^{-7}$ in float32 and to $4 \times 10^{-15}$ in
# float64 (`benchmarks/results/public_protocol_check.json`).

# %%
#| export
def channel_psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR as the public SLAMP code computes it: per channel, then the mean over channels; images
    ``(N, C, H, W)`` in [0, 1] → ``(N,)`` (each channel capped at 100 dB like :func:`psnr`)."""
    _check_pair(prediction, target)
    mse = ((at_least_float32(prediction) - at_least_float32(target)) ** 2).flatten(2).mean(2)  # (N, C)
    return (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean(1)


# %%
#| export evaluate
from slamp.metrics import channel_psnr
from slamp.guards import batchnorm_statistics, restore_batchnorm_statistics


class PublicCodeSampler:
    """Samples ``model``'s futures as the public code's ``evaluate.py`` does: one sample at a time
    over the whole batch of sequences, with BatchNorm in training mode (the statistics of the batch
    in hand); the model's running statistics are put back afterwards."""

    def __init__(self, model):
        self.model, self.batch_size = model, None

    def draw_noise(self, batch: int, steps: int, device="cpu") -> dict:
        return self.model.draw_noise(batch, steps, device)

    def generate(self, past, n_future: int, num_samples: int = 1, noise: dict | None = None) -> Prediction:
        self.batch_size = self.batch_size or len(past)
        if len(past) != self.batch_size:  # BatchNorm normalises over the batch: a smaller one scores otherwise
            raise ValueError(f"protocol='public-code' needs batches of one size, as the public code's loader "
                             f"asserts: {self.batch_size} sequences, then {len(past)} (use a batch size that "
                             f"divides the test set)")
        saved = batchnorm_statistics(self.model)
        self.model.train()  # BatchNorm on the batch; the LSTMs have neither BatchNorm nor dropout
        try:
            samples = []
            for s in range(num_samples):  # the rows of ``noise`` are sequence-major: row b * S + s
                drawn = None if noise is None else {k: v.unflatten(0, (len(past), num_samples))[:, s] for k, v in noise.items()}
                samples.append(self.model.generate(past, n_future, 1, noise=drawn))
        finally:
            restore_batchnorm_statistics(self.model, saved)
            self.model.eval()
        parts = {name: torch.cat([p.images()[name] for p in samples], 1) for name in samples[0].images()}
        return Prediction(**parts)


# %%
# A grey frame has one channel: the two PSNRs agree. On colour frames the public code's is higher
# when the channels' errors differ.
grey, colour = torch.rand(4, 1, 64, 64), torch.rand(4, 3, 64, 64)
tinted = (colour + torch.tensor([0.02, 0.1, 0.3]).view(1, 3, 1, 1) * torch.randn_like(colour)).clamp(0, 1)
print("grey:   psnr", [round(v, 3) for v in psnr(grey * 0.9, grey).tolist()],
      " channel_psnr", [round(v, 3) for v in channel_psnr(grey * 0.9, grey).tolist()])
print("colour: psnr", [round(v, 2) for v in psnr(tinted, colour).tolist()],
      " channel_psnr", [round(v, 2) for v in channel_psnr(tinted, colour).tolist()])
assert torch.allclose(psnr(grey * 0.9, grey), channel_psnr(grey * 0.9, grey), atol=1e-5)
assert (channel_psnr(tinted, colour) > psnr(tinted, colour) + 1).all()

# %% [markdown]
# ## Checking the protocol
#
# `best_of_n` must pick, per sequence, the sample with the best *frame-averaged* score — not the
# best frame of each sample. Here sample 1 wins on average although sample 0 has the best single
# frame:

# %%
from slamp.evaluate import best_of_n, evaluate

scores = torch.tensor([[[30.0, 10.0, 10.0], [20.0, 20.0, 20.0], [5.0, 5.0, 5.0]]])
index, curve = best_of_n(scores)
print("best sample", index.tolist(), "its curve", curve.tolist())
assert index.tolist() == [1] and curve.tolist() == [[20.0, 20.0, 20.0]]
assert best_of_n(scores, higher_is_better=False)[0].tolist() == [2]  # e.g. LPIPS

# %% [markdown]
# ## Floors: what a predictor that has learned nothing scores
#
# A score means little on its own. Most of a Moving MNIST frame is black background, so predicting
# *nothing* — an all-black frame — is already right on most pixels. Every model number below
# therefore gets its **floor** beside it: the score, with the same code and on the same sequences,
# of three predictors that have learned nothing about motion:
#
# * `black`: $\hat x_t = 0$ for every predicted frame;
# * `last_frame`: $\hat x_t = x_{n_\text{past}}$, the last conditioning frame, held still;
# * `mean_frame`: $\hat x_t = \bar x$, the mean frame of the *training* clips. Per pixel it is the
#   constant that minimises the expected squared error, $\bar x = \arg\min_c \mathbb E\,(x - c)^2$:
#   the best on MSE that a predictor ignoring its input can do (not exactly on PSNR, which averages
#   the logarithm of each frame's error).
#
# They are deterministic, so the best of $N$ samples is their one sample. To score them with the
# very code that scores the models, `ReferencePredictor` gives them a model's `generate`, and
# `evaluate_reference` runs `evaluate` on it with $N = 1$: the summaries have the same keys.

# %%
#| export evaluate
REFERENCES = ("black", "last_frame", "mean_frame")  # predictors that learn nothing: the floors of every score


def _check_reference(name: str, mean_frame) -> None:
    if name not in REFERENCES:
        raise ValueError(f"unknown reference {name!r}; choose from {REFERENCES}")
    if name == "mean_frame" and mean_frame is None:
        raise ValueError("the mean_frame reference needs mean_frame, a (C, H, W) tensor: "
                         "make it with mean_training_frame(<training clips>)")


def reference_frames(name: str, past: torch.Tensor, n_future: int, mean_frame: torch.Tensor | None = None) -> torch.Tensor:
    """The frames ``(B, n_future, C, H, W)`` reference ``name`` predicts from ``past``
    ``(B, n_past, C, H, W)``: zeros (``black``), ``past[:, -1]`` repeated (``last_frame``), or
    ``mean_frame`` ``(C, H, W)`` repeated (``mean_frame``)."""
    _check_reference(name, mean_frame)
    if past.ndim != 5 or past.shape[1] < 1 or n_future < 1:
        raise ValueError(f"need past (B, n_past, C, H, W) with n_past >= 1 and n_future >= 1, found "
                         f"{tuple(past.shape)} and {n_future}")
    if name == "black":
        frame = torch.zeros_like(past[:, -1])
    elif name == "last_frame":
        frame = past[:, -1]
    else:
        if tuple(mean_frame.shape) != tuple(past.shape[2:]):
            raise ValueError(f"mean_frame must be (C, H, W) = {tuple(past.shape[2:])}, the shape of a frame of "
                             f"past, found {tuple(mean_frame.shape)}")
        frame = mean_frame.to(past).expand_as(past[:, -1])
    return frame[:, None].repeat(1, n_future, 1, 1, 1)


# %% [markdown]
# The mean frame is averaged over clips of the training stream only — never over test data — and
# over a fixed number of them from a fixed seed, so it is the same on every machine.

# %%
#| export evaluate
MEAN_FRAME_CLIPS = 1000  # of 15 frames: 15,000 training frames


def mean_training_frame(clips=None, num_clips: int = MEAN_FRAME_CLIPS, seed: int = 0) -> torch.Tensor:
    """The per-pixel mean ``(C, H, W)`` over every frame of ``num_clips`` training clips.

    ``clips`` is a tensor ``(N, T, C, H, W)`` (its first ``num_clips``), a dataset of clips
    ``(T, C, H, W)`` with a length (``num_clips`` of them, evenly spaced: neighbouring clips often
    come from one video), or an iterable of clips or batches ``(B, T, C, H, W)`` (its first
    ``num_clips`` clips). Default: the Stochastic Moving MNIST training stream,
    ``StochasticMovingMNIST(n_frames=15, seed=seed)`` on the MNIST *training* digits — 1,000
    clips × 15 frames = 15,000 frames, no test digit."""
    from torch.utils.data import IterableDataset

    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, found {num_clips}")
    if clips is None:
        from slamp.data import StochasticMovingMNIST

        clips = StochasticMovingMNIST(n_frames=15, seed=seed)
    if isinstance(clips, torch.Tensor):
        clips = [clips[:num_clips]]  # one batch
    elif hasattr(clips, "__len__") and hasattr(clips, "__getitem__") and not isinstance(clips, IterableDataset):
        if len(clips) == 0:
            raise ValueError("no training clips to average: the dataset is empty")
        spread = torch.linspace(0, len(clips) - 1, min(num_clips, len(clips))).round().long().unique()
        clips = map(clips.__getitem__, spread.tolist())  # one clip at a time
    total, frames, seen = 0.0, 0, 0
    for item in clips:
        batch = torch.as_tensor(item)
        batch = batch[None] if batch.ndim == 4 else batch
        if batch.ndim != 5:
            raise ValueError(f"training clips must be (T, C, H, W) or batches (B, T, C, H, W), found {tuple(batch.shape)}")
        batch = batch[:num_clips - seen]
        total = total + batch.double().sum((0, 1))  # float64: 15,000 frames add up without rounding
        frames, seen = frames + batch.shape[0] * batch.shape[1], seen + batch.shape[0]
        if seen >= num_clips:
            break
    if frames == 0:
        raise ValueError("no training clips to average")
    return (total / frames).float()


# %%
#| export evaluate
class ReferencePredictor(torch.nn.Module):
    """A reference predictor with a model's ``generate``, so that :func:`evaluate` scores it with
    the code that scores the models; its samples are all the same (it is deterministic)."""

    def __init__(self, name: str, mean_frame: torch.Tensor | None = None):
        super().__init__()
        _check_reference(name, mean_frame)
        self.name, self.mean_frame = name, mean_frame

    def generate(self, past: torch.Tensor, n_future: int, num_samples: int = 1) -> Prediction:
        """``past`` ``(B, n_past, C, H, W)`` → frames ``(B, num_samples, n_future, C, H, W)``."""
        frames = reference_frames(self.name, past, n_future, self.mean_frame)
        frames = frames[:, None].expand(-1, num_samples, -1, -1, -1, -1)
        return Prediction(x_hat=frames, x_p=frames)


def evaluate_reference(name: str, videos, n_past: int, n_future: int, metrics=("psnr", "ssim"),
                       mean_frame: torch.Tensor | None = None, device="cpu", keep_best: bool = False,
                       progress: bool = False) -> Evaluation:
    """Score reference ``name`` on ``videos`` (batches ``(B, T, C, H, W)``) exactly as
    :func:`evaluate` scores a model: the same frames, metrics and summary (head ``final``). A
    deterministic predictor is its own best of N, so N = 1."""
    result = evaluate(ReferencePredictor(name, mean_frame), videos, n_past, n_future, num_samples=1, metrics=metrics,
                      heads=("x_hat",), device=device, keep_best=keep_best, progress=progress)
    result.settings["model"] = f"reference:{name}"
    return result


# %% [markdown]
# **Check.** PSNR by hand: an all-black prediction errs by exactly the truth, so its MSE is the mean
# of $x^2$. Holding the last frame still is perfect on a video that does not move (PSNR at its cap
# of 100 dB, SSIM 1). (`evaluate_reference` *is* `evaluate`, run on a model that draws the
# reference frame, so the two cannot disagree; what is checked here is the numbers, against the
# formulas.)

# %%
from slamp.evaluate import REFERENCES, evaluate_reference, mean_training_frame, reference_frames

video = torch.rand(2, 8, 1, 32, 32)
black = evaluate_reference("black", [video], n_past=3, n_future=5, metrics=("psnr",)).curves["x_hat"]["psnr"]
by_hand = 10 * torch.log10(1 / (video[:, 3:] ** 2).mean((2, 3, 4)))
print(f"black: PSNR {black[0, 0]:.4f} dB, by hand {by_hand[0, 0]:.4f} dB")
assert torch.allclose(black, by_hand, atol=1e-4)
still = video[:, :1].repeat(1, 8, 1, 1, 1)
perfect = evaluate_reference("last_frame", [still], 3, 5).summary()["x_hat"]
print(f"last_frame on a still video: PSNR {perfect['psnr']['mean']:.1f}, SSIM {perfect['ssim']['mean']:.4f}")
assert perfect["psnr"]["mean"] == 100 and abs(perfect["ssim"]["mean"] - 1) < 1e-5

# %% [markdown]
# **Why black scores well.** Count it on test frames: the share of pixels with ink, and the share
# of SSIM's $11\times11$ windows that hold none. Where truth and prediction are both black, both
# means and variances are 0 and SSIM's ratio is $C_1C_2 / C_1C_2 = 1$: a perfect local score for
# predicting nothing. PSNR sees only the ink it missed, $\mathrm{MSE} = \frac{1}{CHW}\sum x^2$.
# The flip side: a faint grey background of 0.02 — barely visible — costs little PSNR but most of
# SSIM, because $C_1 = 10^{-4}$ is small next to $\mu^2 = 4\cdot10^{-4}$. A model that leaves such
# a haze on the background is beaten on SSIM by the black frame.

# %%
import torch.nn.functional as F

from slamp.data import MovingMNISTTestSet

# The test set of the protocol (the class's default); in smoke runs its first few sequences only.
floor_set = MovingMNISTTestSet.generate(num_sequences=32) if SMOKE else MovingMNISTTestSet.cached()
truth = torch.stack([floor_set[i][5:25] for i in range(min(len(floor_set), 200))]).flatten(0, 1)  # (N·20, 1, 64, 64)
inked = (truth > 0).float()
empty_windows = (F.conv2d(inked, torch.ones(1, 1, 11, 11)) == 0).float().mean().item()
haze = torch.full_like(truth, 0.02)
print(f"{len(truth)} test frames: {inked.mean().item():.1%} of the pixels have ink; "
      f"{empty_windows:.1%} of the 11x11 windows have none")
print(f"black frame:     PSNR {psnr(torch.zeros_like(truth), truth).mean():.2f} dB   SSIM {ssim(torch.zeros_like(truth), truth).mean():.3f}")
print(f"grey 0.02 frame: PSNR {psnr(haze, truth).mean():.2f} dB   SSIM {ssim(haze, truth).mean():.3f}")
assert ssim(torch.zeros_like(truth), truth).mean() > ssim(haze, truth).mean() + 0.3

# %% [markdown]
# The mean training frame, from 1,000 clips of 15 frames of the training stream: a soft grey
# square, about 0.13 in the middle and fading to black over the outer ~12 pixels, which a digit's
# ink reaches only when the digit touches the wall (MNIST digits have blank margins).

# %%
mean_frame = mean_training_frame(num_clips=100 if SMOKE else 1000)
print(f"mean training frame {tuple(mean_frame.shape)}: values in [{mean_frame.min():.3f}, {mean_frame.max():.3f}], "
      f"mean {mean_frame.mean():.3f}")
assert mean_frame.shape == (1, 64, 64) and 0 < mean_frame.mean() < 0.2
fig, ax = plt.subplots(figsize=(3.2, 2.8))
shown = ax.imshow(mean_frame[0], cmap="gray")
fig.colorbar(shown, ax=ax)
ax.set(title="mean training frame", xticks=[], yticks=[]);

# %% [markdown]
# The floors over the 20 predicted frames of the test set (5 → 20). `black` and `mean_frame` do not
# depend on time. `last_frame` starts level with `black` — the digits have moved a few pixels — and
# drops about 2 dB below it within a few frames: once its digits are where the true ones are not,
# it is wrong twice, at the old place and at the new. The mean frame has the best PSNR of the three
# and by far the worst SSIM: its grey haze covers the black background.

# %%
import time

from torch.utils.data import DataLoader

started = time.perf_counter()
floors = {name: evaluate_reference(name, DataLoader(floor_set, batch_size=100), n_past=5, n_future=20,
                                   mean_frame=mean_frame, device=device).summary()["x_hat"] for name in REFERENCES}
print(f"floors on {len(floor_set):,} test sequences, 5 -> 20 frames ({time.perf_counter() - started:.0f} s)")
shown_frames = [0, 4, 9, 14, 19]
print(f"{'':>22}" + "".join(f"{'frame ' + str(t + 6):>10}" for t in shown_frames) + f"{'mean ± 95% CI':>18}")
for metric in ("psnr", "ssim"):
    for name, scores in floors.items():
        values = scores[metric]
        print(f"{metric.upper() + ' ' + name:>22}" + "".join(f"{values['per_frame'][t]:>10.3f}" for t in shown_frames)
              + f"{values['mean']:>11.3f} ± {values['ci95']:.3f}")
assert floors["last_frame"]["psnr"]["per_frame"][-1] < floors["black"]["psnr"]["per_frame"][-1] - 1  # wrong twice
assert floors["mean_frame"]["ssim"]["mean"] < floors["black"]["ssim"]["mean"]  # the haze costs SSIM

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for ax, metric in zip(axes, ["psnr", "ssim"]):
    for name, scores in floors.items():
        ax.plot(range(6, 26), scores[metric]["per_frame"], label=name)
    ax.set(xlabel="frame", title=f"{metric.upper()} of the floors, {len(floor_set):,} test sequences")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## Evaluating a model on Stochastic Moving MNIST
#
# The paper conditions on 5 frames and predicts 20. The package ships a trained SLAMP
# (`slamp.pretrained`: the `cpu` sizes, trained on two CPU cores; the README's "Trained models"
# says how, for how long, and shows its learning curves). It is small and briefly trained next to
# the paper's, so its numbers are far from the paper's; the floors, scored on the same sequences
# and printed beside it, say what it has learned. With the paper's own weights in the data folder
# (`slamp download public mnist`, or `PAPER_MODEL = "download"` here) the same cells evaluate the
# paper's model instead; the printout and the figures name the model they show.

# %%
from torch.utils.data import Subset

from slamp.pretrained import paper_or_shipped

PAPER_MODEL = os.environ.get("SLAMP_PAPER_MODEL", "auto")  # "auto": the paper's if found; "download"; "off"
model, model_name = paper_or_shipped("slamp", device, PAPER_MODEL)
print(f"{model_name}: {model.num_parameters() / 1e6:.2f} M parameters")

# %%
test_set = Subset(floor_set, range(16 if SMOKE else (256 if device == "cuda" else 32)))  # the first sequences
num_samples = 5 if SMOKE else 100
result = evaluate(model, DataLoader(test_set, batch_size=16), n_past=5, n_future=20, num_samples=num_samples,
                  metrics=("psnr", "ssim"), heads=HEADS, progress=False)
summary = result.summary()
# The floors on exactly these sequences, with the same code (summary keys as the model's "x_hat").
same_floors = {name: evaluate_reference(name, DataLoader(test_set, batch_size=16), 5, 20, mean_frame=mean_frame,
                                        device=device).summary()["x_hat"] for name in REFERENCES}
table_rows = {**summary, **{f"floor {name}": scores for name, scores in same_floors.items()}}
print(f"{len(test_set)} test sequences, 5 -> 20 frames, SLAMP best of {num_samples} samples:")
for name, scores in table_rows.items():
    print(f"{name:>17}: " + "   ".join(f"{m.upper()} {v['mean']:.3f} ± {v['ci95']:.3f}" for m, v in scores.items()))
assert result.curves["x_hat"]["psnr"].shape == (len(test_set), 20)
assert same_floors["black"].keys() == summary["x_hat"].keys()

# %% [markdown]
# **What the heads show here.** In the run stored above (32 sequences on the CPU), the four heads'
# PSNRs over the 20 predicted frames (the first four rows of the table) are closer to one another
# than their 95% intervals are wide, and the intervals overlap. Averaged over frames and compared
# unpaired, this run cannot tell the heads apart. Compared frame by frame on the same sequences
# (the lower panels of the figure below), it can: that is where the learned mask shows what it adds.
#
# ## Against the paper
#
# The numbers the paper reports on Stochastic Moving MNIST (5 → 20 frames, best of 100), and ours.
# The paper's SVG row is SVG-LP as SRVP's authors retrained it for this protocol (SRVP's Table 1,
# copied into SLAMP's Table 4): the public SVG code's model (`slamp.models.SVG`), not
# `AppearanceOnly`. Note the floor: on SRVP's 5,000 sequences an all-black frame scores SSIM 0.7235 (PSNR 13.82), above
# the paper's own SVG row (0.7090): SSIM rewards the empty background, and only a model that keeps it
# exactly black while placing the digits can beat the black frame.
#
# The figure after the table compares like with like: the paper reports one number per metric,
# the mean over the 20 predicted frames, so its SLAMP is a star in a column of means beside ours
# (with our 95% interval), not a line across the per-frame curves. Below them, each other head
# minus $\hat x$ on the same sequences, with the 95% interval of that paired difference: where the
# band holds 0, this run cannot tell the head from $\hat x$ at that frame.

# %%
PAPER = {  # Akan et al., ICCV 2021, tables 4–6: best-of-100, mean over the test set
    ("Stochastic Moving MNIST", "SVG-LP"): {"psnr": 14.50, "ssim": 0.7090},  # SRVP's retraining
    ("Stochastic Moving MNIST", "SLAMP"): {"psnr": 18.07, "ssim": 0.7736},
    ("KTH", "SLAMP"): {"psnr": 29.39, "ssim": 0.8646, "lpips": 0.0795},
    ("BAIR", "SLAMP"): {"psnr": 19.67, "ssim": 0.8161, "lpips": 0.0639},
}
for (dataset, name), values in PAPER.items():
    print(f"{dataset:>24} {name:>6} (paper): " + "  ".join(f"{k.upper()} {v}" for k, v in values.items()))
print(f"{'Stochastic Moving MNIST':>24} {'ours':>6} ({model_name}, {num_samples} samples): "
      f"PSNR {summary['x_hat']['psnr']['mean']:.2f}  SSIM {summary['x_hat']['ssim']['mean']:.4f}")
for name, scores in same_floors.items():  # the paper reports no floor; ours, on our sequences
    print(f"{'Stochastic Moving MNIST':>24} {'floor':>6} ({name}, same sequences): "
          f"PSNR {scores['psnr']['mean']:.2f}  SSIM {scores['ssim']['mean']:.4f}")

# %%
FLOOR_STYLE = {"black": ("0.0", ":"), "last_frame": ("0.35", "--"), "mean_frame": ("0.6", "-.")}
frames_axis, at_mean = torch.arange(6, 26), 28  # the frames, and where the frame-mean column sits
fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True, height_ratios=[3, 2])
for column, metric in enumerate(["psnr", "ssim"]):
    top, bottom = axes[0, column], axes[1, column]
    ours = summary["x_hat"][metric]
    mean, half = torch.tensor(ours["per_frame"]), torch.tensor(ours["per_frame_ci95"])
    top.plot(frames_axis, mean, color="C0", lw=2, label=r"$\hat x$, 95% CI")
    top.fill_between(frames_axis, mean - half, mean + half, color="C0", alpha=0.25)
    for name, scores in same_floors.items():  # each floor in its own grey and dash, named at its end
        grey, dash = FLOOR_STYLE[name]
        top.plot(frames_axis, scores[metric]["per_frame"], color=grey, ls=dash, lw=1.5, label=f"floor: {name}")
    # Means over frames in a column of their own: the paper reports only this number, so ours is
    # compared with it there, not frame by frame.
    top.axvline(26.5, color="0.8", lw=1)
    top.errorbar(at_mean, ours["mean"], yerr=ours["ci95"], fmt="o", color="C0", capsize=3)
    top.plot(at_mean, PAPER["Stochastic Moving MNIST", "SLAMP"][metric], "k*", ms=10, label="paper's SLAMP (mean)")
    top.set(ylabel=f"{metric.upper()}{' (dB)' if metric == 'psnr' else ''}, best of {num_samples}",
            title=f"{metric.upper()} per frame, and the mean over frames")
    # The other heads against x-hat on the same sequences: the paired difference and its 95% CI.
    for head, color in zip(["x_p", "x_f", "average"], ["C1", "C2", "C3"]):
        difference = result.curves[head][metric] - result.curves["x_hat"][metric]  # (sequences, frames)
        per_frame = [mean_confidence_interval(difference[:, k]) for k in range(difference.shape[1])]
        centre, width = (torch.tensor(v) for v in zip(*per_frame))
        apart = [int(f) for f, c, w in zip(frames_axis, centre, width) if abs(c) > w]  # the CI excludes 0
        print(f"{head:>7} − x̂, {metric.upper():>4}: frame 6 {centre[0]:+.3f} ± {width[0]:.3f}, frame 25 "
              f"{centre[-1]:+.3f} ± {width[-1]:.3f}; the 95% CI excludes 0 at frames {apart or 'none'}")
        bottom.plot(frames_axis, centre, color=color, label=head)
        bottom.fill_between(frames_axis, centre - width, centre + width, color=color, alpha=0.15)
    bottom.axhline(0, color="C0", lw=1)
    bottom.set(xlabel="frame", ylabel=f"head − $\\hat x$ ({metric.upper()})",
               xticks=[6, 10, 15, 20, 25, at_mean], xticklabels=["6", "10", "15", "20", "25", "mean"])
axes[0, 0].legend(fontsize=7, loc="upper center")
axes[1, 0].legend(fontsize=7, loc="lower right", ncol=3)
fig.suptitle(f"{model_name}: {len(test_set)} test sequences, 5 → 20 frames (frames 6–25 predicted)", fontsize=9)
fig.tight_layout()

# %% [markdown]
# **Reading the heads** (the numbers are printed above the figure). At the first predicted frame,
# $x^p$ (the frame painted anew) is 5.2 ± 1.5 dB and 0.090 ± 0.018 SSIM below $\hat x$; its PSNR
# interval excludes 0 at frames 6–10 only, its SSIM interval at frames 6–11 and at a few late
# frames, where the difference is about 0.01. $x^f$ (the last frame warped) stays close to
# $\hat x$: +0.13 ± 0.79 dB at frame 6, −0.01 ± 0.11 dB at frame 25, and on SSIM +0.002 ± 0.002
# at frame 6; its intervals exclude 0 only at a handful of frames (11–13 and 15 in PSNR, 6, 7, 23
# and 24 in SSIM), by a few hundredths of a dB or thousandths of SSIM. So the blend follows the
# warp where the warp is good, in the first frames, and gains most there over painting; later the
# three heads are the same blur. The paper's Table 7 reads its heads on its own models and the
# full test set; these are the shipped CPU model's, on 32 sequences.

# %% [markdown]
# ## Best, random, and the mean of samples
#
# The best sample follows the true future most closely by construction; a random sample shows what
# the model typically predicts. The mean of many samples is blurry exactly where the samples
# disagree. A bounce, with its random new direction, is one reason to disagree; for the shipped
# model it is not the main one: its mean blurs from the first predicted frames on, before any
# bounce (`04_slamp` and `07_latents` measure the spread per frame). That blur measures diversity:
# a model whose samples were all the same would have a sharp mean.

# %%

sequence = test_set[0][None].to(device)
with torch.no_grad():
    samples = model.eval().generate(sequence[:, :5], n_future=20, num_samples=num_samples).x_hat[0]
target = sequence[0, 5:25]
scores = psnr(samples.flatten(0, 1), target.repeat(num_samples, 1, 1, 1)).view(num_samples, 20).mean(1)
rows = {"truth": target, "best sample": samples[scores.argmax()], "random sample": samples[0],
        "mean of samples": samples.mean(0)}
fig, axes = plt.subplots(len(rows), 10, figsize=(10, 4.4))
for r, (name, frames) in enumerate(rows.items()):
    for k, t in enumerate(range(0, 20, 2)):
        axes[r, k].imshow(frames[t, 0].cpu(), cmap="gray", vmin=0, vmax=1)
        axes[r, k].set_axis_off()
    axes[r, 0].set_title(name, fontsize=8, loc="left")
for k, t in enumerate(range(0, 20, 2)):  # frames counted from 1: the first predicted one is frame 6
    axes[-1, k].text(0.5, -0.08, f"frame {6 + t}", transform=axes[-1, k].transAxes, ha="center", va="top", fontsize=8)
fig.suptitle(f"{model_name}: test sequence 0, every second predicted frame", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ## Exercises and what to try next
#
# The exercises of this notebook: **`psnr`** and **`best_of_n`** (the best sample by the mean over
# frames, not by its best frame).
#
# * Best of N for N = 1, 10 and 100 on the same sequences: how does the score grow with N, and what
#   does that say about comparing models evaluated with different N?
# * Rank a few samples by PSNR and by SSIM: do the two metrics pick the same best sample?
# * Score the floors (black frame, last frame, mean frame) with `slamp evaluate --reference all` and
#   place the shipped models between them.

# %% [markdown]
# ## Summary
#
# * `slamp.metrics`: `psnr`, `ssim` (Gaussian window, equal to scikit-image's), optional `lpips`
#   with a clear `LPIPSUnavailable` error, and `mean_confidence_interval`.
# * `slamp.evaluate`: `evaluate(model, test_batches, n_past, n_future, num_samples=100)` runs the
#   best-of-N protocol batched over samples and sequences, for the final prediction and (Table 7)
#   for the appearance head, the motion head and their average; `Evaluation.save` writes
#   `summary.json`, `per_frame.csv`, `per_sequence.csv`, `per_sequence_frame.csv` (the paired
#   comparisons' input) and the best samples. `slamp evaluate` runs it from the command
#   line on a checkpoint.
# * Floors: `reference_frames` (`black`, `last_frame`, `mean_frame`), `mean_training_frame` (from
#   training clips only) and `evaluate_reference`, which scores a reference through `evaluate`
#   with N = 1, so its summary compares key for key with a model's; `slamp evaluate --reference
#   black|last_frame|mean_frame|all` on the command line. On Moving MNIST the black frame is a
#   strong floor on SSIM: a model's score means something only above it.
