# %% [markdown]
# # 03 · SLAMP-Baseline (and SVG as its special case)
#
# `00_elbo` derived the objective; `01_flow_warping` built the warp. This notebook assembles the
# first complete model. A video $x_{1:T}$ is predicted one frame at a time. At step $t \ge 2$:
#
# 1. an **encoder** turns the previous frame into features $h_{t-1} = \mathrm{Enc}(x_{t-1})$ (plus *skips*,
#    the encoder's intermediate maps, which carry the static background to the decoder);
# 2. a latent $z_t$ is drawn — from the **posterior** $q_\phi(z_t \mid x_{1:t})$ while training,
#    from the **learned prior** $p_\psi(z_t \mid x_{1:t-1})$ when generating;
# 3. a **predictor LSTM** maps $(h_{t-1}, z_t)$ to features $g_t$;
# 4. a **pixel decoder** paints the appearance prediction $x^p_t = D^p(g_t)$, a **flow decoder**
#    predicts a flow $f_{t-1:t} = D^f(g_t)$ and warps the previous frame, $x^f_t = \mathcal{W}(x_{t-1}, f_{t-1:t})$;
# 5. a **mask network** blends the two: $\hat x_t = m_t \odot x^p_t + (1 - m_t) \odot x^f_t$,
#    $m_t = \mathrm{MaskNet}(x^p_t, x^f_t)$ (the paper's Eq. 1).
#
# SLAMP-Baseline has one latent for both heads. **SVG-LP** (Denton & Fergus, 2018) is the same
# model without steps 4b and 5: $\hat x_t = x^p_t$. Full SLAMP (`04_slamp`) gives the motion head
# a latent stream of its own.
#
# *Paper: Sec. 3.1 (SVG), Sec. 3.2 (SLAMP-Baseline, Eq. 1), Sec. 3.4 (architecture) and App. C.2
# (architecture details).* Notation as in the table of `00_elbo`; in code, frame $x_t$ is `x[:, t-1]`.
#
# Everything here is exported to `slamp.nn` (building blocks) and `slamp.models` (the models).

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
#| default_exp models

# %%
import os

import matplotlib.pyplot as plt
import torch

SMOKE = os.environ.get("SLAMP_SMOKE", "0") == "1"  # small settings for CI
torch.manual_seed(0);

# %% [markdown]
# ## Encoders and decoders with skips
#
# The paper uses the backbones of SVG: **DCGAN-64** for Moving MNIST and **VGG-64** for KTH and
# BAIR. Both encoders map a $64\times64$ frame to a vector of $g = 128$ numbers in $[-1, 1]$
# (tanh) and return four intermediate maps; the decoders mirror them and concatenate each skip
# with the upsampled features of the same resolution (U-Net style). The pixel decoder ends in a
# sigmoid (pixels in $[0, 1]$); the flow decoder is the same network with 2 output channels and
# **no** output activation, because a flow is a displacement in pixels.

# %%
#| export nn
"""Building blocks of SVG and SLAMP: DCGAN-64 and VGG-64 encoders/decoders with skip
connections, the recurrent networks (predictor LSTM, Gaussian LSTM), and the mask network."""
import torch
from torch import nn


def _conv_block(cin, cout, kernel, stride, padding, transposed=False):
    # No bias: the BatchNorm that follows subtracts the mean, so a bias would only add parameters
    # (the public code leaves it out too).
    conv = (nn.ConvTranspose2d if transposed else nn.Conv2d)(cin, cout, kernel, stride, padding, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


class DCGANEncoder(nn.Module):
    """DCGAN-64 encoder: ``(N, C, 64, 64)`` → features ``(N, dim)`` and skips at 32, 16, 8, 4 px.

    Four stride-2 convolutions (``width``, 2×, 4×, 8× channels), then a 4×4 convolution to
    ``dim`` with tanh. The skips feed the decoder's matching resolutions (U-Net style)."""

    def __init__(self, dim: int, channels: int = 1, width: int = 64):
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        self.blocks = nn.ModuleList(_conv_block(cin, cout, 4, 2, 1)
                                    for cin, cout in zip([channels] + widths[:-1], widths))
        self.head = nn.Sequential(nn.Conv2d(widths[-1], dim, 4, 1, 0, bias=False), nn.BatchNorm2d(dim), nn.Tanh())

    def forward(self, x):
        skips = []
        for block in self.blocks:
            x = block(x)
            skips.append(x)
        return self.head(x).flatten(1), skips


class DCGANDecoder(nn.Module):
    """DCGAN-64 decoder: features ``(N, dim)`` and encoder skips → ``(N, channels, 64, 64)``.

    ``output`` is ``"sigmoid"`` for pixels in [0, 1] or ``None`` for unbounded values (flow)."""

    def __init__(self, dim: int, channels: int = 1, width: int = 64, output: str | None = "sigmoid"):
        super().__init__()
        widths = [width * 8, width * 4, width * 2, width]
        self.head = _conv_block(dim, widths[0], 4, 1, 0, transposed=True)
        self.blocks = nn.ModuleList(_conv_block(2 * cin, cout, 4, 2, 1, transposed=True)
                                    for cin, cout in zip(widths[:-1], widths[1:]))
        self.out = nn.ConvTranspose2d(2 * widths[-1], channels, 4, 2, 1)
        self.activation = nn.Sigmoid() if output == "sigmoid" else nn.Identity()

    def forward(self, h, skips):
        x = self.head(h[:, :, None, None])
        for block, skip in zip(self.blocks, reversed(skips[1:])):
            x = block(torch.cat([x, skip], 1))
        return self.activation(self.out(torch.cat([x, skips[0]], 1)))


# %% [markdown]
# The VGG-64 pair: stages of $3\times3$ convolutions separated by max-pooling (encoder) or
# nearest-neighbour upsampling (decoder), 64 → 512 channels.

# %%
#| export nn
def _vgg_stage(cin, widths):
    layers, previous = [], cin
    for w in widths:
        layers.append(_conv_block(previous, w, 3, 1, 1))
        previous = w
    return nn.Sequential(*layers)


class VGGEncoder(nn.Module):
    """VGG-64 encoder: ``(N, C, 64, 64)`` → ``(N, dim)`` and skips at 64, 32, 16, 8 px.

    Stages of 3×3 convolutions (2, 2, 3, 3 layers of 64, 128, 256, 512 channels times
    ``width / 64``) separated by 2× max-pooling, then a 4×4 convolution to ``dim`` with tanh."""

    def __init__(self, dim: int, channels: int = 1, width: int = 64):
        super().__init__()
        w = [width, width * 2, width * 4, width * 8]
        self.stages = nn.ModuleList([_vgg_stage(channels, [w[0]] * 2), _vgg_stage(w[0], [w[1]] * 2),
                                     _vgg_stage(w[1], [w[2]] * 3), _vgg_stage(w[2], [w[3]] * 3)])
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Conv2d(w[3], dim, 4, 1, 0, bias=False), nn.BatchNorm2d(dim), nn.Tanh())

    def forward(self, x):
        skips = []
        for k, stage in enumerate(self.stages):
            x = stage(self.pool(x) if k else x)
            skips.append(x)
        return self.head(self.pool(x)).flatten(1), skips


class VGGDecoder(nn.Module):
    """VGG-64 decoder, the mirror of :class:`VGGEncoder`, with nearest-neighbour upsampling."""

    def __init__(self, dim: int, channels: int = 1, width: int = 64, output: str | None = "sigmoid"):
        super().__init__()
        w = [width, width * 2, width * 4, width * 8]
        self.head = _conv_block(dim, w[3], 4, 1, 0, transposed=True)
        self.stages = nn.ModuleList([_vgg_stage(2 * w[3], [w[3], w[3], w[2]]),
                                     _vgg_stage(2 * w[2], [w[2], w[2], w[1]]),
                                     _vgg_stage(2 * w[1], [w[1], w[0]]),
                                     _vgg_stage(2 * w[0], [w[0]])])
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.out = nn.ConvTranspose2d(w[0], channels, 3, 1, 1)
        self.activation = nn.Sigmoid() if output == "sigmoid" else nn.Identity()

    def forward(self, h, skips):
        x = self.head(h[:, :, None, None])
        for stage, skip in zip(self.stages, reversed(skips)):
            x = stage(torch.cat([self.up(x), skip], 1))
        return self.activation(self.out(x))


BACKBONES = {"dcgan": (DCGANEncoder, DCGANDecoder), "vgg": (VGGEncoder, VGGDecoder)}


# %% [markdown]
# Shapes: a batch of frames goes in, a $g$-vector and four skips come out, and the decoder turns a
# $g$-vector and the skips back into an image (or a 2-channel flow).

# %%
from slamp.nn import DCGANDecoder, DCGANEncoder, VGGDecoder, VGGEncoder

for Encoder, Decoder in [(DCGANEncoder, DCGANDecoder), (VGGEncoder, VGGDecoder)]:
    encoder, decoder = Encoder(128, channels=1, width=16), Decoder(128, channels=2, width=16, output=None)
    h, skips = encoder(torch.rand(4, 1, 64, 64))
    flow = decoder(h, skips)
    print(f"{Encoder.__name__:12} h {tuple(h.shape)}  skips {[tuple(s.shape[1:]) for s in skips]}  -> {tuple(flow.shape)}")
    assert h.shape == (4, 128) and flow.shape == (4, 2, 64, 64) and h.abs().max() <= 1

# %% [markdown]
# ## The recurrent networks
#
# Three LSTMs carry the past (SVG's design, kept by SLAMP): the **posterior** $q_\phi(z_t \mid
# x_{1:t})$ reads $h_t = \mathrm{Enc}(x_t)$, the frame to be predicted; the **prior** $p_\psi(z_t \mid
# x_{1:t-1})$ reads $h_{t-1}$; both output the mean and log-variance of a diagonal Gaussian over
# $z_t$ (1 layer, 256 units). The **predictor** reads $[h_{t-1}, z_t]$ and outputs $g_t$ (2 layers,
# 256 units, tanh). Each is a linear embedding, stacked LSTM cells and a linear head.
#
# We use `nn.LSTM`, which runs a whole sequence in one call (cuDNN on a GPU) and computes exactly
# what SVG's loop over `nn.LSTMCell`s computes. A single step is a sequence of length 1 with the
# state carried over, so the batched path (teacher forcing) and the step-by-step path
# (generation) share weights and code.
#
# Over feature maps (`spatial=True`, the KITTI and Cityscapes models below) the linear layers are
# $3\times3$ convolutions and the LSTM is a `ConvLSTM`. There the public code's Gaussian networks
# feed their input to the LSTM directly: they hold an embedding that their forward never calls.
# We keep it, frozen (no gradient, never read), so that the public weights map onto ours tensor
# for tensor and the parameter count is the public one.

# %%
#| export nn
def _feature_layer(cin, cout, spatial):
    """A linear layer over features, or (``spatial``) a 3×3 convolution over feature maps."""
    return nn.Conv2d(cin, cout, 3, 1, 1) if spatial else nn.Linear(cin, cout)


class RecurrentNet(nn.Module):
    """Embedding → stacked LSTM → output head, over ``(B, T, input)`` sequences, or over feature
    maps ``(B, T, input, h, w)`` with ``spatial=True`` (the layers are then 3×3 convolutions and
    the LSTM a :class:`ConvLSTM`). ``embedded=False``: the LSTM reads the input itself, and the
    embedding is kept frozen and unused (the public code's Gaussian ConvLSTMs).

    ``nn.LSTM`` runs a whole sequence in one call (cuDNN on GPU) and is the same computation as
    SVG's loop of stacked ``LSTMCell``s; a step at a time is a sequence of length 1 with the
    state carried over, so both paths share one set of weights."""

    def __init__(self, input_size: int, hidden: int, layers: int, spatial: bool = False, embedded: bool = True):
        super().__init__()
        self.spatial, self.embedded = spatial, embedded
        self.embed = _feature_layer(input_size, hidden, spatial).requires_grad_(embedded)
        size = hidden if embedded else input_size
        self.lstm = ConvLSTM(size, hidden, layers) if spatial else nn.LSTM(size, hidden, layers, batch_first=True)

    def per_step(self, layer, x):
        """Apply ``layer`` to every step of ``(B, T, F)`` or ``(B, T, F, h, w)``."""
        return layer(x.flatten(0, 1)).unflatten(0, x.shape[:2]) if self.spatial else layer(x)

    def recur(self, x, state=None):
        return self.lstm(self.per_step(self.embed, x) if self.embedded else x, state)


class PredictorLSTM(RecurrentNet):
    """The frame predictor: ``(B, T, input)`` → ``(B, T, output)`` features in [−1, 1] (tanh)."""

    def __init__(self, input_size: int, output_size: int, hidden: int = 256, layers: int = 2, spatial: bool = False):
        super().__init__(input_size, hidden, layers, spatial)
        self.out = _feature_layer(hidden, output_size, spatial)

    def forward(self, x, state=None):
        h, state = self.recur(x, state)
        return torch.tanh(self.per_step(self.out, h)), state


class GaussianLSTM(RecurrentNet):
    """A posterior or learned prior: ``(B, T, input)`` → mean and log-variance ``(B, T, z)``."""

    def __init__(self, input_size: int, z_dim: int, hidden: int = 256, layers: int = 1, spatial: bool = False):
        super().__init__(input_size, hidden, layers, spatial, embedded=not spatial)
        self.mu = _feature_layer(hidden, z_dim, spatial)
        self.logvar = _feature_layer(hidden, z_dim, spatial)

    def forward(self, x, state=None):
        h, state = self.recur(x, state)
        return self.per_step(self.mu, h), self.per_step(self.logvar, h), state


# %%
from slamp.nn import GaussianLSTM

prior = GaussianLSTM(128, 20)
features = torch.randn(2, 5, 128)
mu, logvar, state = prior(features)  # five steps at once ...
state_by_step, per_step = None, []
for t in range(5):  # ... or one at a time, carrying the state
    m, _, state_by_step = prior(features[:, t:t + 1], state_by_step)
    per_step.append(m)
assert torch.allclose(mu, torch.cat(per_step, 1), atol=1e-6)
print("mu", tuple(mu.shape), "logvar", tuple(logvar.shape), "state", [tuple(s.shape) for s in state])

# %% [markdown]
# ## The mask network
#
# The mask decides, per pixel, whether to trust the painted appearance $x^p_t$ or the warped
# previous frame $x^f_t$. It sees both (concatenated) and works at full resolution: two blocks of
# two $3\times3$ conv-BN-LeakyReLU layers, each block followed by a **squeeze-excitation** gate
# (global average → bottleneck MLP → sigmoid weights per channel), then a $3\times3$ conv to one
# channel and a sigmoid.

# %% [markdown]
# **Exercise: `blend`**
#
# Write `blend`: the prediction x̂ of Eq. 1 from the appearance prediction, the motion prediction
# and the mask (1 = trust the appearance). Shapes: frames `(N, C, H, W)`, mask `(N, 1, H, W)` →
# `(N, C, H, W)`. Checked on random frames and masks; the models of this notebook use your
# `blend` from here on.
#
# The cell after the function runs the grader's own checks on it, `check(blend)`: it prints ✓ when
# they pass, or ✗ and the hint the grader gives for the mistake it finds, and stops there.

# %%
#| export nn
class SqueezeExcitation(nn.Module):
    """Channel attention (Hu et al. 2018): rescale channels by a gate from their global average."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, hidden, bias=False),
                                  nn.ReLU(inplace=True), nn.Linear(hidden, channels, bias=False), nn.Sigmoid())

    def forward(self, x):
        gate = self.gate(x)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # The same product, in the order channels-last memory holds it: much faster on a CPU.
            return (x.permute(0, 2, 3, 1) * gate[:, None, None, :]).permute(0, 3, 1, 2)
        return x * gate[:, :, None, None]


class MaskNet(nn.Module):
    """The mask ``m`` from ``(x^p, x^f)``, both ``(N, C, H, W)`` → ``(N, 1, H, W)`` in (0, 1).

    Two blocks of [3×3 conv-BN-LeakyReLU ×2, squeeze-excitation], then a 3×3 conv to one channel
    and a sigmoid: five convolutions at full resolution, as in the public code."""

    def __init__(self, channels: int = 1, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            _conv_block(2 * channels, width, 3, 1, 1), _conv_block(width, width, 3, 1, 1), SqueezeExcitation(width),
            _conv_block(width, width, 3, 1, 1), _conv_block(width, width, 3, 1, 1), SqueezeExcitation(width),
            nn.Conv2d(width, 1, 3, 1, 1), nn.Sigmoid())

    def forward(self, appearance, motion):
        return self.net(torch.cat([appearance, motion], 1))


def blend(appearance, motion, mask):
    """The final prediction x̂ (the paper's Eq. 1): where the mask is 1 the painted appearance
    ``x^p``, where it is 0 the warped frame ``x^f``, in between a mix of the two. Frames
    ``(N, C, H, W)``, mask ``(N, 1, H, W)`` (broadcast over channels) → ``(N, C, H, W)``."""
    # BEGIN SOLUTION blend
    return mask * appearance + (1 - mask) * motion
    # END SOLUTION


# %%
from slamp.exercises import check
from slamp.notebook import use

check(blend)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(blend)  # from here on the package runs this blend: in a student's notebook, yours

# %%
painted, warped = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
half = torch.tensor([[1.0, 0.0], [0.5, 0.25]]).view(1, 1, 2, 2)
assert torch.equal(blend(painted, warped, half), half)  # the mask says how much of x^p to keep
assert torch.equal(blend(painted, warped, torch.ones(1, 1, 2, 2)), painted)


# %% [markdown]
# ## Skip connections: three rules
#
# The decoder that predicts $x_t$ from the encoding of $x_{t-1}$ gets skips that describe the
# scene. Which frame's skips is a modelling choice, and the two public codes differ:
#
# * **`mean`**, SLAMP's public code (`last_frame_skip` and `running_avg`): the **running mean of
#   the skips of every frame encoded so far**, $\bar s_t = \frac{1}{t-1}\sum_{k<t} s(x_k)$,
#   generated frames included. With all frames encoded at once, a cumulative sum divided by a count.
# * **`held`**, SVG-LP's public code by default: the skips are taken only while conditioning
#   (predicting $x_t$ for $t \le n_\text{past}$, from the input $x_{t-1}$) and then **held**: every
#   later prediction sees $s(x_{n_\text{past}-1})$, the second-to-last conditioning frame (the last,
#   $x_{n_\text{past}}$, is encoded to predict $x_{n_\text{past}+1}$, when the skips are no longer
#   replaced). With one conditioning frame, where the public code stops with an error, we hold $s(x_1)$.
# * **`previous`**, SVG-LP with `--last_frame_skip`: the skips of the **previous frame**, true or
#   generated, $s(x_{t-1})$.
#
# `ModelConfig.skips` picks one; SVG uses `held` unless told otherwise, every other model `mean`.

# %%
#| export nn
def running_mean(skips):
    """Running averages over time of skips ``(B, T, ...)``: entry ``t`` is the mean of 0..t."""
    count = torch.arange(1, skips.shape[1] + 1, device=skips.device, dtype=skips.dtype)
    return skips.cumsum(1) / count.view(1, -1, *[1] * (skips.ndim - 2))


SKIP_RULES = ("mean", "held", "previous")


def decoder_skips(rule: str, skips, n_past: int):
    """The skips the decoder sees at steps 1..T-1, ``(B, T-1, ...)``, from the skips of frames
    0..T-1 ``(B, T, ...)`` encoded at once (teacher forcing), under ``rule`` (``SKIP_RULES``)."""
    if rule == "mean":
        return running_mean(skips[:, :-1])
    if rule == "previous":
        return skips[:, :-1]
    held = torch.arange(skips.shape[1] - 1, device=skips.device).clamp(max=max(n_past - 2, 0))
    return skips[:, held]


def step_skips(rule: str, carried, skips, t: int, n_past: int):
    """One step at a time: ``(carried, seen)``, what to carry to step ``t + 1`` and the skips the
    decoder sees at step ``t``, from the skips of this step's input (a list of maps) and ``carried``
    (None at step 1): a running sum (``mean``), or the skips last taken (``held``, ``previous``)."""
    if rule == "mean":
        carried = skips if carried is None else [a + b for a, b in zip(carried, skips)]
        return carried, [s / t for s in carried]
    if rule == "previous" or t < n_past or t == 1:  # held: the conditioning steps' (the first frame's if n_past = 1)
        carried = skips
    return carried, carried


# %%
skips = torch.arange(5.0).view(1, 5, 1)  # one number per frame: "the skips of x_k" = k
for rule in SKIP_RULES:
    batched = decoder_skips(rule, skips, n_past=3)[0, :, 0].tolist()
    carried, stepwise = None, []
    for t in range(1, 5):
        carried, seen = step_skips(rule, carried, [skips[:, t - 1]], t, n_past=3)
        stepwise.append(seen[0].item())
    print(f"{rule:>8}: steps 1..4 see {batched}")
    assert batched == stepwise  # both paths apply the same rule
assert decoder_skips("held", skips, 3)[0, :, 0].tolist() == [0, 1, 1, 1]  # frame n_past - 1 (index 1), held


# %% [markdown]
# ## Larger frames: the public code's convolutional backbone and ConvLSTMs
#
# For KITTI ($92\times310$) and Cityscapes ($128\times256$) the public code keeps the *spatial
# layout* of the features instead of squeezing a frame into one vector. The latents $z_t$ are
# maps of 32 channels on a small grid ($4\times4$ for KITTI, $4\times8$ for Cityscapes), and
# every LSTM is a **convolutional LSTM** (Shi et al., 2015) of 256 channels, whose gates are
# $3\times3$ convolutions of the input and the hidden map:
#
# $$[i, f, o, g] = W * [x_t, h_{t-1}], \quad c_t = \sigma(f)\odot c_{t-1} + \sigma(i)\odot\tanh(g),
#   \quad h_t = \sigma(o)\odot\tanh(c_t).$$
#
# The recurrent networks above take `spatial=True`; streams, warp, mask and loss are unchanged.

# %%
#| export nn
class ConvLSTM(nn.Module):
    """Stacked convolutional LSTMs over ``(B, T, C, h, w)``, called like ``nn.LSTM(batch_first=True)``:
    returns the last layer's outputs ``(B, T, hidden, h, w)`` and the state ``(h, c)``, each
    ``(layers, B, hidden, h, w)``. Gates in the public code's order: input, forget, output, cell."""

    def __init__(self, input_size: int, hidden: int, layers: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.ModuleList(nn.Conv2d((input_size if k == 0 else hidden) + hidden, 4 * hidden, kernel,
                                             padding=kernel // 2) for k in range(layers))

    def forward(self, x, state=None):
        batch, length, _, height, width = x.shape
        if state is None:
            zeros = x.new_zeros(len(self.gates), batch, self.hidden, height, width)
            state = (zeros, zeros)
        hidden, cell = list(state[0]), list(state[1])
        outputs = []
        for t in range(length):
            layer_input = x[:, t]
            for k, gates in enumerate(self.gates):
                i, f, o, g = gates(torch.cat([layer_input, hidden[k]], 1)).chunk(4, 1)
                cell[k] = torch.sigmoid(f) * cell[k] + torch.sigmoid(i) * torch.tanh(g)
                hidden[k] = layer_input = torch.sigmoid(o) * torch.tanh(cell[k])
            outputs.append(layer_input)
        return torch.stack(outputs, 1), (torch.stack(hidden), torch.stack(cell))


# %% [markdown]
# A frame first goes through one **image encoder**, shared by the two streams, as the paper's
# App. C describes it for KITTI and Cityscapes: five levels of
# $3\times3$ conv-BN-LeakyReLU (2, 2, 3, 3, 3 layers of 64, 96, 128, 192, 256 channels), the
# first layer of each strided, each level's map kept as a skip, then two layers to a map of
# $2g = 128$ channels. Cityscapes' levels are stride-2 halvings ($64\times128$ down to
# $4\times8$). KITTI's are max-pooled to sizes the public code fixes ($46\times156$,
# $24\times80$, $12\times40$, $6\times20$), and its last level pools $6\times20$ to
# $4\times4$ instead of striding: `ModelConfig.conv_levels` holds them.

# %%
#| export nn
def _conv_widths(width: int) -> list[int]:
    return [width, width * 3 // 2, 2 * width, 3 * width, 4 * width]  # 64, 96, 128, 192, 256 at width 64


def _conv_stage(widths, stride=1):
    """3×3 conv-BN-LeakyReLU layers through ``widths`` (input first), the first with ``stride``."""
    return nn.Sequential(*(_conv_block(cin, cout, 3, stride if k == 0 else 1, 1)
                           for k, (cin, cout) in enumerate(zip(widths, widths[1:]))))


class ConvEncoder(nn.Module):
    """The image encoder: frames ``(N, C, H, W)`` → a feature map ``(N, dim, h, w)`` and five skips.

    ``levels``: ``(stride, height, width)`` of each level, its map max-pooled to that size (the
    public KITTI model); None: stride 2 and no pooling, so the map is ``(⌈H/32⌉, ⌈W/32⌉)``."""

    def __init__(self, dim: int, channels: int = 3, width: int = 64, levels=None):
        super().__init__()
        widths, depths = [channels] + _conv_widths(width), [2, 2, 3, 3, 3]
        levels = levels or [(2, None, None)] * 5
        self.stages = nn.ModuleList(_conv_stage([widths[k]] + [widths[k + 1]] * depths[k], levels[k][0])
                                    for k in range(5))
        self.pools = nn.ModuleList(nn.Identity() if h is None else nn.AdaptiveMaxPool2d((h, w)) for _, h, w in levels)
        self.head = _conv_stage([widths[-1], dim, dim])

    def forward(self, x):
        skips = []
        for stage, pool in zip(self.stages, self.pools):
            x = pool(stage(x))
            skips.append(x)
        return self.head(x), skips


# %% [markdown]
# On these maps the appearance encoder and the motion encoder are small **spatial encoders**
# at the latent map's size: six conv-BN-LeakyReLU layers (256, 256 | 256, 128 | 64, $g$
# channels) with a squeeze-excitation gate after the first two pairs. The appearance encoder
# reads one frame's map ($2g$ channels), the motion encoder two frames' maps stacked ($4g$), and
# both give maps of $g = 64$ channels. They have no skips of their own.

# %%
#| export nn
class SpatialEncoder(nn.Module):
    """Image-encoder maps ``(N, channels, h, w)`` → features ``(N, dim, h, w)`` at the same size, and
    no skips (``[]``): the decoders read the image encoder's."""

    def __init__(self, dim: int, channels: int, width: int = 64):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            _conv_block(channels, 4 * w, 3, 1, 1), _conv_block(4 * w, 4 * w, 3, 1, 1), SqueezeExcitation(4 * w),
            _conv_block(4 * w, 4 * w, 3, 1, 1), _conv_block(4 * w, 2 * w, 3, 1, 1), SqueezeExcitation(2 * w),
            _conv_block(2 * w, w, 3, 1, 1), _conv_block(w, dim, 3, 1, 1))

    def forward(self, x):
        return self.net(x), []


# %% [markdown]
# The decoder climbs back through the image encoder's levels: at each it concatenates its map
# with that level's (running-mean) skip, applies two or three conv-BN-LeakyReLU layers and
# upsamples bilinearly to the next level's size, the last time to the frame's size; a
# conv-BN-LeakyReLU layer and a $3\times3$ transposed convolution then give the image (sigmoid)
# or the flow (no activation).

# %%
#| export nn
class ConvDecoder(nn.Module):
    """Features ``(N, dim, h, w)`` and the image encoder's five skips → ``(N, channels, *size)``."""

    def __init__(self, dim: int, channels: int = 3, width: int = 64, output: str | None = "sigmoid", *,
                 size: tuple[int, int]):
        super().__init__()
        self.size = tuple(size)
        w = _conv_widths(width)  # the channels of the skips, finest first
        self.head = _conv_stage([dim, w[4], w[4]])
        depths = [2, 2, 2, 3, 3]
        self.stages = nn.ModuleList(_conv_stage([2 * w[k]] + [w[k]] * (depths[k] - 1) + [w[max(k - 1, 0)]])
                                    for k in range(4, -1, -1))
        self.last = _conv_block(w[0], w[0], 3, 1, 1)
        self.out = nn.ConvTranspose2d(w[0], channels, 3, 1, 1)
        self.activation = nn.Sigmoid() if output == "sigmoid" else nn.Identity()

    def forward(self, h, skips):
        x = self.head(h)
        sizes = [s.shape[-2:] for s in reversed(skips[:-1])] + [self.size]  # where each level upsamples to
        for stage, skip, size in zip(self.stages, reversed(skips), sizes):
            x = nn.functional.interpolate(stage(torch.cat([x, skip], 1)), size=size, mode="bilinear",
                                          align_corners=True)
        return self.activation(self.out(self.last(x)))


BACKBONES["conv"] = (SpatialEncoder, ConvDecoder)


# %% [markdown]
# The shapes at KITTI's size (with narrow layers): frame → image features and skips → the
# appearance features on the latent map's $4\times4$ grid → a frame again.

# %%
from slamp.nn import ConvDecoder, ConvEncoder, SpatialEncoder

kitti_levels = ((2, 46, 156), (2, 24, 80), (2, 12, 40), (2, 6, 20), (1, 4, 4))
features, skips = ConvEncoder(32, channels=3, width=8, levels=kitti_levels)(torch.rand(2, 3, 92, 310))
h = SpatialEncoder(16, channels=32, width=8)(features)[0]
frames = ConvDecoder(16, channels=3, width=8, size=(92, 310))(h, skips)
print("KITTI frames -> image features", tuple(features.shape), "skips", [tuple(s.shape[-2:]) for s in skips])
print("  -> appearance features", tuple(h.shape), "-> frames", tuple(frames.shape))
assert h.shape == (2, 16, 4, 4) and frames.shape == (2, 3, 92, 310)


# %% [markdown]
# ## Initialisation: the public code's
#
# SVG's and SLAMP's public code do not keep PyTorch's default initialisation: every convolution
# (transposed or not) and every linear layer gets weights drawn from $\mathcal N(0, 0.02^2)$ (the
# DCGAN recipe), every BatchNorm a scale from $\mathcal N(1, 0.02^2)$ and a shift of 0; biases
# that remain (the output layers) and the LSTM cells keep PyTorch's defaults, as do the ConvLSTM
# networks of KITTI and Cityscapes entirely (`init_public`; SVG's public code also zeroes those
# biases). Small weights mean that, at the
# start, the tanh features and the sigmoid outputs sit near their linear range, and the flow
# decoder predicts displacements close to zero: the warped frame starts as a copy of the
# previous one.

# %%
#| export nn
def init_weights(module: nn.Module) -> None:
    """The public code's initialisation of one module (use ``model.apply(init_weights)``): conv and
    linear weights N(0, 0.02²); BatchNorm scale N(1, 0.02²) and shift 0; everything else, LSTMs
    and the remaining biases included, keeps PyTorch's default."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def init_public(model: nn.Module, zero_biases: bool = False) -> None:
    """:func:`init_weights` on every module of ``model``, but its ConvLSTM networks keep PyTorch's
    default initialisation throughout, as in the public code. ``zero_biases``: the biases of conv
    and linear layers start at 0, as the public SVG code's initialisation sets them."""
    model.apply(init_weights)
    if zero_biases:
        for layer in model.modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and layer.bias is not None:
                nn.init.zeros_(layer.bias)
    for net in model.modules():
        if isinstance(net, RecurrentNet) and net.spatial:
            for layer in net.modules():
                if isinstance(layer, nn.Conv2d):
                    layer.reset_parameters()


# %%
torch.manual_seed(0)
encoder = DCGANEncoder(128)
encoder.apply(init_weights)
conv = encoder.blocks[1][0].weight
print(f"conv weights: mean {conv.mean():+.4f}, std {conv.std():.4f}; no bias: {encoder.blocks[1][0].bias is None}")
assert abs(conv.std() - 0.02) < 0.002 and encoder.blocks[1][0].bias is None


# %% [markdown]
# ## Sizes: the paper's presets
#
# One frozen dataclass holds every size. The presets are the paper's: $g = 128$, LSTMs of 256
# units, prior and posterior of 1 layer, predictor of 2; $z = 20$ for Moving MNIST (DCGAN-64),
# 50 for KTH and 64 for BAIR (VGG-64); β as in the public training scripts. `kitti` and
# `cityscapes` are the public code's models for those datasets: the convolutional backbone,
# $g = 64$, latent maps of 32 channels, ConvLSTMs of 256 channels. `tiny` is ours: the DCGAN
# architecture about 16× narrower, for laptops and CI; so is `cpu`, the size of the shipped
# models (4× narrower convolutions than the paper's, an 8-channel mask net, the paper's z = 20).
# `svg_mnist` and `svg_bair` are SVG-LP's own settings (its public code's README: z = 10 on
# Stochastic Moving MNIST, the VGG backbone and z = 64 on BAIR; skips `held`).

# %%
#| export
"""SVG, SLAMP-Baseline and SLAMP behind one interface: ``loss(x, n_past)`` for training and
``generate(x_past, n_future, num_samples)`` for sampling futures, on videos ``(B, T, C, H, W)``."""
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from slamp.losses import kl_loss, reconstruction_loss, reparameterize
from slamp.nn import (BACKBONES, SKIP_RULES, ConvEncoder, GaussianLSTM, MaskNet, PredictorLSTM, blend, decoder_skips,
                      init_public, step_skips)
from slamp.warp import warp


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of a model. The presets hold the paper's values (``ModelConfig.preset(name)``)."""

    backbone: str = "dcgan"  # "dcgan" (MNIST), "vgg" (KTH, BAIR) or "conv" (KITTI, Cityscapes)
    channels: int = 1
    image_size: tuple[int, int] = (64, 64)  # (H, W)
    g_dim: int = 128  # encoder output, appearance and motion
    z_dim: int = 20  # each latent stream
    rnn_size: int = 256
    prior_layers: int = 1
    posterior_layers: int = 1
    predictor_layers: int = 2
    width: int = 64  # first-layer channels of the backbone (64 in the paper)
    mask_width: int = 64
    # conv backbone: (stride, height, width) of each of the image encoder's five levels, max-pooled to
    # that size (the public KITTI model); None: stride-2 levels without pooling (Cityscapes)
    conv_levels: tuple | None = None
    beta: float = 1e-4
    # Initial bias (a logit) of the pixel decoder's output layer; None: PyTorch's default, as in the
    # public code (frames start grey, sigmoid(0) = 0.5). Ours, for short CPU runs: see the `cpu` preset.
    output_bias: float | None = None
    # Which skips the decoder sees (slamp.nn.SKIP_RULES): "mean" (SLAMP's public code), "held" or
    # "previous" (SVG-LP's public code without and with --last_frame_skip); None: the model's own
    # (SVG: held, the others: mean). A built model's config always names it.
    skips: str | None = None

    def __post_init__(self):
        if isinstance(self.image_size, int):  # a square size may be given as one number
            object.__setattr__(self, "image_size", (self.image_size, self.image_size))
        if self.conv_levels is not None:  # lists (read from JSON) as tuples: configs compare equal
            object.__setattr__(self, "conv_levels", tuple(tuple(level) for level in self.conv_levels))
        if self.skips not in (None, *SKIP_RULES):
            raise ValueError(f"skips must be one of {SKIP_RULES} (or None: the model's own), found {self.skips!r}")

    @staticmethod
    def preset(name: str) -> "ModelConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name]

# %% [markdown]
# The presets: the paper's sizes for each dataset (the latent sizes of Sec. 4 and the public code),
# two of ours for CPUs (`tiny` for CI and laptops, `cpu` for the shipped models), and SVG-LP's.

# %%
#| export
PRESETS = {
    "mnist": ModelConfig(backbone="dcgan", channels=1, z_dim=20, beta=1e-4),
    "kth": ModelConfig(backbone="vgg", channels=1, z_dim=50, beta=1e-6),
    "bair": ModelConfig(backbone="vgg", channels=3, z_dim=64, beta=1e-4),
    # The public code's models (README: g 64, z 32; the ConvLSTMs 256 channels; beta its default).
    "kitti": ModelConfig(backbone="conv", channels=3, image_size=(92, 310), g_dim=64, z_dim=32, beta=1e-4,
                         conv_levels=((2, 46, 156), (2, 24, 80), (2, 12, 40), (2, 6, 20), (1, 4, 4))),
    "cityscapes": ModelConfig(backbone="conv", channels=3, image_size=(128, 256), g_dim=64, z_dim=32, beta=1e-4),
    # ~100x cheaper than "mnist": for CPU, CI and the README's demo.
    "tiny": ModelConfig(backbone="dcgan", channels=1, g_dim=32, z_dim=8, rnn_size=64, width=16,
                        mask_width=16, beta=1e-4),
    # Ours, for training on a CPU: the paper's MNIST model with 4x narrower convolutions (the
    # full-resolution layers cost most there) and an 8-channel mask net; the paper's z, half its g
    # and LSTM width (small to ship). Frames start one grey level above black (output logit
    # log(1/254)) instead of grey: a Moving MNIST frame is 93% black, SSIM punishes any haze there,
    # and Adam moves a bias by about lr per update, so starting at 0.5 costs thousands of updates.
    # What `slamp.pretrained` holds.
    "cpu": ModelConfig(backbone="dcgan", channels=1, g_dim=64, z_dim=20, rnn_size=128, width=16,
                       mask_width=8, beta=1e-4, output_bias=-5.537),
    # SVG-LP as its public code's README trains it (Denton & Fergus 2018): Stochastic Moving MNIST
    # with z 10, BAIR with the VGG backbone and z 64; skips held from the conditioning frames.
    "svg_mnist": ModelConfig(backbone="dcgan", channels=1, z_dim=10, beta=1e-4, skips="held"),
    "svg_bair": ModelConfig(backbone="vgg", channels=3, z_dim=64, beta=1e-4, skips="held"),
}


# %% [markdown]
# ## What a model returns
#
# A model makes up to three images of each frame, named as in the paper: the prediction
# $\hat x$ (`x_hat`), the appearance prediction $x^p$ (`x_p`, decoded pixels) and the motion
# prediction $x^f$ (`x_f`, the previous frame warped by the flow). They come with the mask and the
# flow field, because the figures and the paper's Table 7 ablation need them. These names are the
# only ones the package uses for the three images: in `Prediction`, in the loss terms, in the
# evaluation's heads and in the figures. `flow` is only ever the field $f$.

# %%
#| export
import warnings

from slamp.renamed import PREDICTION


@dataclass
class Prediction:
    """What a model predicts for steps ``1 .. T-1`` of a video ``(B, T, C, H, W)``.

    Every tensor is ``(B, T-1, ...)`` (or ``(B, S, n_future, ...)`` from ``generate``):
    ``x_hat`` x̂, ``x_p`` x^p, and for SLAMP-Baseline and SLAMP ``x_f`` x^f, ``mask`` m and
    ``flow`` f (pixels). ``kl`` holds the KL term of each latent stream (scalars), ``latents``
    the sampled ``z`` of each stream, ``(B, T-1, z)`` (maps ``(B, T-1, z, h, w)`` for the conv
    backbone), from the posterior in training and from the prior in ``generate``."""

    x_hat: torch.Tensor
    x_p: torch.Tensor
    x_f: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    flow: torch.Tensor | None = None
    kl: dict = field(default_factory=dict)
    latents: dict = field(default_factory=dict)

    IMAGES = ("x_hat", "x_p", "x_f", "mask", "flow")  # the per-frame tensors, in this order

    def images(self) -> dict:
        """The per-frame tensors the model made, ``{name: tensor}`` (``IMAGES`` that are not None)."""
        return {name: getattr(self, name) for name in self.IMAGES if getattr(self, name) is not None}

    # The names of slamp 0.x (slamp.renamed.PREDICTION), kept for a while: each warns and returns the paper's.
    frames = property(lambda self: _renamed(self, "frames"))
    appearance = property(lambda self: _renamed(self, "appearance"))
    motion = property(lambda self: _renamed(self, "motion"))


def _renamed(prediction: Prediction, old: str):
    new = PREDICTION[old]
    warnings.warn(f"Prediction.{old} is now Prediction.{new} (the paper's name)", DeprecationWarning, stacklevel=3)
    return getattr(prediction, new)


# %% [markdown]
# ## A latent stream
#
# Posterior, prior and predictor always travel together, so we group them. Given the features of
# the previous step (for the prior and the predictor) and, while the target frame is known, the
# features of the current step (for the posterior), a stream returns the predictor's output $g_t$
# and the two Gaussians, whose KL enters the loss:
#
# $$z_t \sim q_\phi(z_t \mid \cdot) \text{ (training)}, \qquad z_t \sim p_\psi(z_t \mid \cdot)
#   \text{ (generation)}, \qquad g_t = \mathrm{LSTM}_\theta(h_{t-1}, z_t).$$
#
# The noise $\varepsilon$ of the reparameterisation $z = \mu + \sigma\varepsilon$ is drawn by the
# caller, once for the whole sequence, so that the two computation paths below use the same
# random numbers and can be compared exactly.

# %%
#| export
class LatentStream(nn.Module):
    """One latent stream: a posterior q(z_t | ·), a learned prior p(z_t | ·) and a predictor LSTM.

    Fed the features of the previous step ``previous`` ``(B, T, g)`` (prior and predictor) and,
    when the target is known, the features of the current step ``current`` ``(B, T, g)``
    (posterior). Returns the predictor's output ``(B, T, g)``, the Gaussian parameters and the
    recurrent states. ``T`` is a whole sequence (teacher forcing) or one step (``T = 1``)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c, spatial = config, config.backbone == "conv"
        self.posterior = GaussianLSTM(c.g_dim, c.z_dim, c.rnn_size, c.posterior_layers, spatial)
        self.prior = GaussianLSTM(c.g_dim, c.z_dim, c.rnn_size, c.prior_layers, spatial)
        self.predictor = PredictorLSTM(c.g_dim + c.z_dim, c.g_dim, c.rnn_size, c.predictor_layers, spatial)

    def forward(self, previous, current, noise, state=None):
        state = state or {}
        mu_p, logvar_p, state["prior"] = self.prior(previous, state.get("prior"))
        if current is None:  # the future: sample from the learned prior
            z, posterior = reparameterize(mu_p, logvar_p, noise=noise), None
        else:
            mu_q, logvar_q, state["posterior"] = self.posterior(current, state.get("posterior"))
            z, posterior = reparameterize(mu_q, logvar_q, noise=noise), (mu_q, logvar_q)
        out, state["predictor"] = self.predictor(torch.cat([previous, z], 2), state.get("predictor"))  # feature axis
        return out, {"z": z, "posterior": posterior, "prior": (mu_p, logvar_p)}, state


# %% [markdown]
# ## The model: its parts, one step, two paths
#
# A video predictor is a handful of modules: the frame **encoder**, the appearance
# **`LatentStream`**, the **pixel decoder** and, with a motion head, the **flow decoder** and the
# **mask net**. SLAMP adds a **motion stream** (`04_slamp`); here it is `None`. With the conv
# backbone a frame first passes the shared **image encoder**, whose maps the encoders read and
# whose skips the decoders read. `PredictorParts` builds them (sizes from a `ModelConfig`, weights
# initialised as in the public code) and draws the noise $\varepsilon$ of every step and stream up
# front, so that both paths below and several processes can use the same numbers.
#
# Two guards stand at the door, from the plain module `slamp.guards`: `check_backbone` refuses a
# frame size the backbone cannot make, and `check_video` refuses anything that is not a video
# `(B, T, C, H, W)` of the configured frames, finite floats in [0, 1] (with a hint when it looks
# like 0–255 pixel values); `check_past` refuses a count of past frames that is not a whole number
# (Python's or NumPy's) in $[1, T-1]$ and a `teacher_forcing` that is not a probability.

# %%
#| export
from slamp.guards import (batchnorm_statistics, check_backbone, check_past, check_video, is_count, is_finite,
                          restore_batchnorm_statistics)


class PredictorParts(nn.Module):
    """The modules of a video predictor, sized by a :class:`ModelConfig`.

    ``motion_head``: a flow decoder, warp and mask (SLAMP-Baseline, SLAMP) or not (SVG).
    ``motion_stream``: the class of the second latent stream (SLAMP's), or None.
    ``skips``: the skip rule when the config names none; ``zero_biases``: SVG's initialisation."""

    motion_head = True
    motion_stream = None
    skips = "mean"
    zero_biases = False

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        check_backbone(config)
        config = replace(config, skips=config.skips or self.skips)  # the rule, named in the config
        c, self.config, conv = config, config, config.backbone == "conv"
        # One latent per stream and step: a vector, or a map of the conv backbone's feature-map size.
        self.latent_shape = (c.z_dim, *latent_map_size(c)) if conv else (c.z_dim,)
        Encoder, Decoder = BACKBONES[c.backbone]
        self.image_encoder = ConvEncoder(2 * c.g_dim, c.channels, c.width, c.conv_levels) if conv else None
        self.encoder = Encoder(c.g_dim, encoded_channels(c), c.width)
        self.appearance = LatentStream(c)
        sized = {"size": c.image_size} if conv else {}  # the conv decoders end at the frame's size
        self.pixel_decoder = Decoder(c.g_dim, c.channels, c.width, **sized)
        if self.motion_head:
            self.flow_decoder = Decoder(c.g_dim, 2, c.width, output=None, **sized)
            self.mask_net = MaskNet(c.channels, c.mask_width)
        self.motion = self.motion_stream(c) if self.motion_stream is not None else None
        init_public(self, self.zero_biases)  # the public code's initialisation, after every module exists
        if c.output_bias is not None:
            nn.init.constant_(self.pixel_decoder.out.bias, c.output_bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def encoder_dtype(self) -> torch.dtype:  # the dtype the model computes in (its first parameter's)
        return next(self.parameters()).dtype

    @property
    def streams(self) -> tuple[str, ...]:
        """The latent streams: ``("appearance",)``, and ``"motion"`` with a motion stream."""
        return ("appearance",) if self.motion is None else ("appearance", "motion")

    def draw_noise(self, batch: int, steps: int, device="cpu") -> dict:
        """ε ``(batch, steps, *latent_shape)`` of every stream, from the global generator."""
        return {s: torch.randn(batch, steps, *self.latent_shape, device=device) for s in self.streams}

# %% [markdown]
# Two sizes follow from the backbone: the channels the encoders read (a frame's, or with the conv
# backbone the image encoder's $2g$), and the size of the feature and latent maps (the image
# encoder's last level). The KL of a stream compares its posterior with its learned prior
# (`slamp.losses.kl_loss`, from `00_elbo`); a latent *map* `(B, T, z, h, w)` counts as `z·h·w`
# latent dimensions.

# %%
#| export
def encoded_channels(config: ModelConfig) -> int:
    """Channels of what the encoders read of a frame: its own, or the conv backbone's image maps (2g)."""
    return 2 * config.g_dim if config.backbone == "conv" else config.channels


def latent_map_size(config: ModelConfig) -> tuple[int, int]:
    """``(h, w)`` of the conv backbone's feature and latent maps: the image encoder's last level."""
    if config.conv_levels is not None:
        return tuple(config.conv_levels[-1][1:])
    return tuple(-(-n // 32) for n in config.image_size)  # five stride-2 levels


def stream_kl(stats: dict) -> torch.Tensor:
    """KL(posterior ‖ prior) of one stream's Gaussians ``(B, T, z[, h, w])``: summed over latent
    dimensions and steps, averaged over the batch."""
    (mu_q, logvar_q), (mu_p, logvar_p) = stats["posterior"], stats["prior"]
    return kl_loss(mu_q.flatten(2), logvar_q.flatten(2), mu_p.flatten(2), logvar_p.flatten(2))


# %% [markdown]
# **Encoding frames.** `encode_frames` gives what a step needs of a frame: the appearance
# features $h$, the skips, and what the motion encoder pairs. With the 64×64 backbones that is
# the frame itself; with the conv backbone it is the frame's map from the shared image encoder,
# which runs once per frame for the appearance features, the motion features and the skips.
# Generation runs many samples of a sequence side by side, and while they read the same true
# frame, `shared` encodes it once per sequence (`encode_shared`, evaluation mode only: a speed-up
# that changes no number).

# %%
#| export
def encode_shared(encoder, *frames, shared: int = 1):
    """``encoder(*frames)`` for frames ``(B, ...)`` whose rows come in groups of ``shared``
    identical rows (the samples of one sequence reading its true frames): each group is encoded
    once and its outputs repeated. Only in evaluation mode, where a row's output does not depend on
    the others; in training mode BatchNorm's statistics would see fewer rows."""
    if shared == 1 or encoder.training:
        return encoder(*frames)
    return repeat_rows(encoder(*(f[::shared] for f in frames)), shared)


def repeat_rows(value, times: int):
    """Every row (first axis) of a tensor, or of each tensor in (nested) lists and tuples, ``times`` times."""
    if torch.is_tensor(value):  # a view expanded, then one copy: repeat_interleave's result, without an index
        return value.unsqueeze(1).expand(-1, times, *value.shape[1:]).flatten(0, 1)
    return type(value)(repeat_rows(item, times) for item in value)


def encode_frames(model: PredictorParts, frames, shared: int = 1):
    """Frames ``(N, C, H, W)`` → the appearance features ``h``, the skips, and what the motion
    encoder pairs: the frames, or with the conv backbone their image maps."""
    if model.image_encoder is None:
        return (*encode_shared(model.encoder, frames, shared=shared), frames)
    maps, skips = encode_shared(model.image_encoder, frames, shared=shared)
    return encode_shared(model.encoder, maps, shared=shared)[0], skips, maps

# %% [markdown]
# **Decoding.** The predictor's features become the images of Eq. 1: the pixel decoder makes
# $x^p$; with a motion head the flow decoder makes the flow $f$ (it reads the appearance
# encoder's skips too, as in the public code), the previous frame warped by it is $x^f$, the mask
# net compares the two, and the blend is $\hat x = m \odot x^p + (1 - m) \odot x^f$. Without a
# motion head $\hat x = x^p$.

# %%
#| export
def decode(model: PredictorParts, g_p, g_f, skips, x_prev) -> dict:
    """Predictor features ``(N, g)`` of the appearance (``g_p``) and motion (``g_f``) predictors, the
    skips and the previous frames ``(N, C, H, W)`` → ``{"x_hat", "x_p"}``, with a motion head also
    ``x_f``, ``mask`` and ``flow``: the fields of :class:`Prediction`."""
    x_p = model.pixel_decoder(g_p, skips)
    if not model.motion_head:
        return {"x_hat": x_p, "x_p": x_p}
    flow = model.flow_decoder(g_f, skips)
    x_f = warp(x_prev, flow)
    mask = model.mask_net(x_p, x_f)
    return {"x_hat": blend(x_p, x_f, mask), "x_p": x_p, "x_f": x_f, "mask": mask, "flow": flow}

# %% [markdown]
# **One time step.** This is the whole model, one step at a time: step $t$ reads a frame
# `x_in` (true, or the previous prediction) and, while it is known (training, or the
# conditioning frames of generation), the `target` frame after it. The encoder maps both to
# features. The appearance stream draws $z^p$ from its posterior (target known) or its learned
# prior (the future), and its predictor LSTM turns the features of `x_in` and $z^p$ into $g^p$.
# SLAMP's motion stream (`04_slamp`) does the same on frame *pairs*: its posterior reads the
# motion into the target, its prior and predictor the motion history (the motion into `x_in`;
# zero motion, a frame paired with itself, at the first step), and its $g^f$ feeds the flow
# decoder; without it the flow decoder reads $g^p$. The skips follow the model's rule
# (`step_skips`), and `decode` makes the images. `state` carries the recurrent states, the
# skips and the motion history to the next step.

# %%
#| export
def step(model: PredictorParts, x_in, target, eps: dict, state: dict, t: int, n_past: int,
         decoded: bool = True, shared: int = 1):
    """Time step ``t`` (from 1): predict the frame after ``x_in`` ``(B, C, H, W)``; ``target`` is
    that frame while it is known, else None. ``eps``: ε of this step ``{stream: (B, 1, ...)}``;
    ``state``: what step ``t - 1`` left (``{}`` at ``t = 1``). Returns the images of :func:`decode`
    (None unless ``decoded``), ``{stream: {"z", "posterior", "prior"}}`` and the next state.
    ``shared``: see :func:`encode_shared`."""
    h_in, skips, pair_in = encode_frames(model, x_in, shared)  # encoder
    h_target, _, pair_target = encode_frames(model, target, shared) if target is not None else (None,) * 3
    g_p, gaussians_p, lstm_p = model.appearance(h_in[:, None], None if target is None else h_target[:, None],
                                                eps["appearance"], state.get("appearance"))  # z^p, g^p
    gaussians, new = {"appearance": gaussians_p}, {"appearance": lstm_p}
    g_f = g_p  # SLAMP-Baseline: the flow decoder reads the appearance predictor
    if model.motion is not None:  # SLAMP: the motion stream z^f on frame pairs (or image maps)
        motion = model.motion
        observed = encode_shared(motion.encoder, pair_in, pair_target, shared=shared) if target is not None else None
        if "motion_history" in state:  # the motion observed into x_in
            history = state["motion_history"]
        elif "motion_from" in state:  # x_in was generated: the motion from the step before's input into it
            history = motion.encoder(state["motion_from"], pair_in)
        else:  # first step: zero motion
            history = encode_shared(motion.encoder, pair_in, pair_in, shared=shared)
        g_f, gaussians["motion"], new["motion"] = motion.latent(
            history[:, None], None if observed is None else observed[:, None], eps["motion"], state.get("motion"))
        if observed is not None:  # the next step's history: the motion observed now
            new["motion_history"] = observed
        else:  # the next step reads the frame generated now: its history is the motion from x_in into it
            new["motion_from"] = pair_in
    new["skips"], seen = step_skips(model.config.skips, state.get("skips"), skips, t, n_past)
    images = decode(model, g_p[:, 0], g_f[:, 0], seen, x_in) if decoded else None
    return images, gaussians, new

# %% [markdown]
# **Step by step.** Generation feeds each prediction back as the next input, and scheduled
# sampling sometimes does; then steps must run in order. `rollout` calls `step` for `steps`
# steps: step $t$ reads the true frame while $t \le n_\text{past}$, afterwards the true frame
# with probability `teacher_forcing` (one coin per step for the batch) or the previous
# prediction; the first `posterior_steps` steps draw $z$ from the posterior, the rest from the
# prior. It collects the images, the KL of each stream (summed over the steps that had a
# posterior) and the latents.

# %%
#| export
def rollout(model: PredictorParts, x, n_past: int, steps: int, noise: dict, teacher_forcing: float = 1.0,
            posterior_steps: int | None = None, decode_from: int = 1, shared: int = 1) -> Prediction:
    """Predict ``steps`` frames of ``x`` ``(B, T, C, H, W)`` one at a time (see above). Frames are
    decoded from step ``decode_from`` on (generation skips the conditioning steps' frames).
    ``shared``: the rows of ``x`` come in groups of that many copies (the samples of a sequence),
    so true frames are encoded once per group."""
    posterior_steps = steps if posterior_steps is None else posterior_steps
    state, outputs, kls, latents = {}, [], {}, {}
    x_in, use_truth = x[:, 0], True
    for t in range(1, steps + 1):
        if t > 1:
            coin = teacher_forcing >= 1 or bool(torch.rand(()) < teacher_forcing)
            use_truth = t <= n_past or (t - 1 < x.shape[1] and coin)
            x_in = x[:, t - 1] if use_truth else outputs[-1]["x_hat"].detach()
        target = x[:, t] if t <= posterior_steps else None
        eps = {name: value[:, t - 1:t] for name, value in noise.items()}
        images, gaussians, state = step(model, x_in, target, eps, state, t, n_past, t >= decode_from,
                                        shared if use_truth else 1)
        for name, stats in gaussians.items():
            latents.setdefault(name, []).append(stats["z"])
            if stats["posterior"] is not None:
                kls[name] = kls.get(name, 0) + stream_kl(stats)
        if images is not None:
            outputs.append(images)
    stacked = {k: torch.stack([o[k] for o in outputs], 1) for k in outputs[0]}
    latents = {name: torch.cat(z, 1)[:, decode_from - 1:] for name, z in latents.items()}  # decoded steps
    return Prediction(**stacked, kl=kls, latents=latents)

# %% [markdown]
# **Teacher forcing, batched over time.** While training, every input frame is the true previous
# frame, so nothing in a step depends on the previous step's *prediction*: only the LSTMs are
# recurrent. This second path computes what `step` computes, for all steps at once: it encodes
# all $T$ frames in one batch (each frame once — the public code encodes each frame twice, as
# target and as next input), runs each LSTM over the whole sequence, and decodes all $T-1$
# predictions in one batch. It exists for speed alone (several times faster on a CPU); the motion
# stream's pairs are $(x_1, x_1), (x_1, x_2), \dots, (x_{T-1}, x_T)$, where the prior of a step
# reads the pair before the one its posterior reads.
#
# `tests/test_models.py` checks that the two paths give the same prediction and loss for the
# same noise. One difference is deliberate: in training mode, BatchNorm normalises over the
# frames in a call, i.e. over all $B\cdot T$ frames in the batched path but over the $B$ frames of
# one step in the step-by-step path (as in the public code). In evaluation mode (running
# statistics) the two paths agree to float precision.

# %%
#| export
from slamp.nn import previous_frames  # written in 04_slamp, where the motion stream is


def teacher_forced(model: PredictorParts, x, noise: dict, n_past: int) -> Prediction:
    """Predict frames 1..T-1 of ``x`` ``(B, T, C, H, W)`` from the true previous frames, batched over
    time: the function :func:`rollout` computes with ``teacher_forcing=1``."""
    batch, length = x.shape[:2]
    h, skips, pairs = encode_frames(model, x.flatten(0, 1))  # every frame encoded once
    h = h.unflatten(0, (batch, length))
    g_p, gaussians, _ = model.appearance(h[:, :-1], h[:, 1:], noise["appearance"])
    kls, latents = {"appearance": stream_kl(gaussians)}, {"appearance": gaussians["z"]}
    g_f = g_p
    if model.motion is not None:  # pairs (x_{t-1}, x_t), zero motion first; the prior reads the pair before
        motion = model.motion.encoder(previous_frames(pairs.unflatten(0, (batch, length))).flatten(0, 1), pairs)
        motion = motion.unflatten(0, (batch, length))
        g_f, gaussians, _ = model.motion.latent(motion[:, :-1], motion[:, 1:], noise["motion"])
        kls["motion"], latents["motion"] = stream_kl(gaussians), gaussians["z"]
    # The prediction of frame t + 1 sees the skips of frames 1..t as the model's rule combines them (`decoder_skips`).
    skips = [decoder_skips(model.config.skips, s.unflatten(0, (batch, length)), n_past).flatten(0, 1) for s in skips]
    out = decode(model, g_p.flatten(0, 1), g_f.flatten(0, 1), skips, x[:, :-1].flatten(0, 1))
    return Prediction(**{k: v.unflatten(0, (batch, length - 1)) for k, v in out.items()}, kl=kls, latents=latents)

# %% [markdown]
# **The objective** of `00_elbo`: an L2 term for each image the model makes ($\hat x$, and with a
# motion head $x^p$ and $x^f$) plus β times the KL of each stream. L2 is a mean over batch and
# pixels per step, summed over steps; KL is summed over latent dimensions and steps and averaged
# over the batch (the public code's reductions).

# %% [markdown]
# **Exercise: `prediction_loss`**
#
# Write `prediction_loss`: the loss of Eq. 3 as training minimises it, an L2 term
# (`reconstruction_loss`) for x̂ and, with a motion head, for x^p and x^f, plus β times every
# stream's KL. Shapes: the prediction's tensors `(B, T−1, C, H, W)` are predictions of frames 2..T
# of `x` `(B, T, C, H, W)`; returns `(total, terms)` with terms named after the images, `x_hat`, `x_p`, `x_f`,
# and `kl_<stream>`. Checked on a made-up prediction with two streams.
#
# The cell after the function runs the grader's own checks on it, `check(prediction_loss)`: it
# prints ✓ when they pass, or ✗ and the hint the grader gives for the mistake it finds, and stops
# there.

# %%
#| export
def prediction_loss(prediction: Prediction, x, beta: float) -> tuple[torch.Tensor, dict]:
    """The loss training minimises, ``(total, terms)``, for a prediction of frames 2..T of ``x``
    ``(B, T, C, H, W)``: terms ``x_hat`` (x̂), with a motion head ``x_p`` (x^p) and ``x_f``
    (x^f), and ``kl_<stream>`` for every latent stream; ``beta`` weighs the KL terms (Eq. 3)."""
    # BEGIN SOLUTION prediction_loss
    target = x[:, 1:]
    terms = {"x_hat": reconstruction_loss(prediction.x_hat, target)}
    if prediction.x_f is not None:
        terms["x_p"] = reconstruction_loss(prediction.x_p, target)
        terms["x_f"] = reconstruction_loss(prediction.x_f, target)
    total = sum(terms.values())
    for name, kl in prediction.kl.items():
        terms[f"kl_{name}"] = kl
    return total + beta * sum(prediction.kl.values()), terms
    # END SOLUTION


# %%
from slamp.exercises import check
from slamp.notebook import use

check(prediction_loss)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(prediction_loss)  # from here on the package runs this prediction_loss: in a student's notebook, yours

# %% [markdown]
# **Generation** conditions on the past through the posterior and samples the future from the
# learned prior, every sample of every sequence in one batch: row `b·S + s` is sample `s` of
# sequence `b`. The conditioning steps are not decoded (nobody reads their frames), and the true
# frames the samples of a sequence share are encoded once, not once per sample (in evaluation mode).

# %%
#| export
def sample_futures(model: PredictorParts, x_past, n_future: int, num_samples: int, noise: dict) -> Prediction:
    """``num_samples`` futures of ``n_future`` frames after ``x_past`` ``(B, n_past, C, H, W)``;
    ``noise``: ε ``{stream: (B * num_samples, n_past - 1 + n_future, ...)}``. Returns tensors
    ``(B, num_samples, n_future, ...)``."""
    batch, n_past = x_past.shape[:2]
    x = repeat_rows(x_past, num_samples)  # sample s of sequence b is row b*S + s
    prediction = rollout(model, x, n_past, n_past - 1 + n_future, noise, teacher_forcing=0.0,
                         posterior_steps=n_past - 1, decode_from=n_past, shared=num_samples)
    parts = {name: value.reshape(batch, num_samples, n_future, *value.shape[2:])
             for name, value in prediction.images().items()}
    latents = {name: z.reshape(batch, num_samples, n_future, *z.shape[2:]) for name, z in prediction.latents.items()}
    return Prediction(**parts, latents=latents)

# %% [markdown]
# **Guarding the running statistics.** In training mode every BatchNorm layer updates its running
# mean and variance from the batch it sees. A batch that turns to NaN inside the model (weights
# blown up by a too-large learning rate) would write NaN into them, and every prediction after it,
# in evaluation mode too, would be NaN. The training forward therefore keeps a copy of the
# statistics and puts it back when its prediction is not finite (`slamp.guards`; the training
# loop then stops on the non-finite loss, before any weight changes).

# %% [markdown]
# **The interface.** `VideoPredictor` adds the three calls every model shares: `forward` (the
# training prediction, batched unless scheduled sampling needs steps), `loss` (the objective of
# `00_elbo`) and `generate` (condition through the posterior, sample the future from the learned
# prior). Each takes `noise=` to fix the draws instead of making fresh ones.

# %%
#| export
class VideoPredictor(PredictorParts):
    """SVG, SLAMP-Baseline and SLAMP behind one interface: videos ``(B, T, C, H, W)`` in [0, 1]."""

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "VideoPredictor":
        """The model with a preset's sizes (``slamp.models.PRESETS``), any field overridden by keyword."""
        return cls(replace(ModelConfig.preset(name), **overrides))

    def _check_noise(self, noise: dict, shape: tuple) -> None:
        found = {name: tuple(value.shape) for name, value in noise.items()}
        if found != {name: shape for name in self.streams}:
            raise ValueError(f"noise must hold {list(self.streams)}, each of shape {shape}, found {found}")

    def forward(self, x, n_past: int = 1, teacher_forcing: float = 1.0, per_step: bool = False,
                noise: dict | None = None) -> Prediction:
        """Predict frames 1..T-1 of ``x`` ``(B, T, C, H, W)``, each z from the posterior. With
        ``teacher_forcing < 1`` (scheduled sampling) a step after the first ``n_past`` reads the
        true previous frame with that probability, else the prediction: the per-step path.
        ``noise``: ε ``{stream: (B, T-1, *latent_shape)}`` (default: fresh draws)."""
        check_video(self.config, x, min_frames=2, dtype=self.encoder_dtype)
        check_past(x, n_past, teacher_forcing)
        if noise is None:
            noise = self.draw_noise(x.shape[0], x.shape[1] - 1, x.device)
        self._check_noise(noise, (x.shape[0], x.shape[1] - 1, *self.latent_shape))
        saved = batchnorm_statistics(self) if self.training else None
        if teacher_forcing >= 1.0 and not per_step:
            prediction = teacher_forced(self, x, noise, n_past)
        else:
            prediction = rollout(self, x, n_past, x.shape[1] - 1, noise, teacher_forcing)
        if saved is not None and not is_finite(prediction.x_hat, *prediction.kl.values()):  # one bad batch must not poison later ones
            restore_batchnorm_statistics(self, saved)
        return prediction

    def loss(self, x, n_past: int = 1, teacher_forcing: float = 1.0, per_step: bool = False,
             noise: dict | None = None):
        """The training objective on ``x`` ``(B, T, C, H, W)``: ``(total, terms, prediction)``
        (see :func:`prediction_loss`)."""
        prediction = self(x, n_past, teacher_forcing, per_step, noise)
        total, terms = prediction_loss(prediction, x, self.config.beta)
        return total, terms, prediction

    @torch.no_grad()
    def generate(self, x_past, n_future: int, num_samples: int = 1, noise: dict | None = None) -> Prediction:
        """Condition on ``x_past`` ``(B, n_past, C, H, W)`` through the posterior and sample
        ``num_samples`` futures from the learned prior (call ``model.eval()`` first: BatchNorm then
        uses its running statistics, so a sample does not depend on the other sequences in the
        batch — the public code kept BatchNorm in training mode here). ``noise`` fixes the draws:
        ``{stream: (B * num_samples, n_past - 1 + n_future, *latent_shape)}``, e.g. to redraw one
        stream and keep the other. Returns a :class:`Prediction` of ``(B, num_samples, n_future, ...)``."""
        check_video(self.config, x_past, "x_past", min_frames=1, dtype=self.encoder_dtype)
        if not (is_count(n_future) and is_count(num_samples)) or n_future < 1 or num_samples < 1:
            raise ValueError(f"n_future and num_samples must be >= 1 (whole numbers), found {n_future!r} and "
                             f"{num_samples!r}")
        rows, steps = x_past.shape[0] * num_samples, x_past.shape[1] - 1 + n_future
        if noise is None:
            noise = self.draw_noise(rows, steps, x_past.device)
        self._check_noise(noise, (rows, steps, *self.latent_shape))
        return sample_futures(self, x_past, n_future, num_samples, noise)


# %% [markdown]
# Every model is known by a short name (`slamp train --set model=NAME`, the shipped models, the
# latents of `07`): `register_model` (from the plain module `slamp.model_registry`) enters a class in the
# one registry, `MODELS`, that training, checkpoints, `slamp.pretrained`, `slamp.latents` and the
# benchmarks read. Adding a model is a subclass and this decorator; `docs/contributing.md` shows it.
#
# Without the motion head a model is SVG: one latent, one pixel decoder, $\hat x = x^p$. Two such
# models are registered, and they are different functions. **`SVG`** is SVG-LP as its public code
# computes it: skips `held` (or `previous`), and its initialisation, which also zeroes the biases of
# linear and output layers; `svg_mnist` and `svg_bair` are its README's settings. **`AppearanceOnly`**
# is SLAMP-Baseline without its motion head: SLAMP's `mean` skips and initialisation. It is the
# fair ablation of the motion head (everything else equal), and it is what slamp called SVG before
# its SVG matched the public SVG-LP code. SLAMP-Baseline is the same with the motion head.

# %%
#| export
from slamp.model_registry import register_model


@register_model("svg")
class SVG(VideoPredictor):
    """SVG-LP (Denton & Fergus, 2018) as its public code computes it: one latent, one pixel decoder,
    x̂ = x^p; skips held from the conditioning frames (``skips="held"``) or the previous frame
    (``"previous"``, its ``--last_frame_skip``). Presets ``svg_mnist``, ``svg_bair``."""

    motion_head = False
    skips = "held"
    zero_biases = True

    def __init__(self, config: ModelConfig = ModelConfig()):
        if config.skips == "mean":
            raise ValueError("SVG-LP takes its skips from the conditioning frames (skips='held') or the previous "
                             "frame ('previous'); skips='mean' is SLAMP's rule: that model is AppearanceOnly "
                             "(model name 'appearance_only')")
        super().__init__(config)


@register_model("appearance_only")
class AppearanceOnly(VideoPredictor):
    """SLAMP-Baseline without its motion head: one latent, one pixel decoder, x̂ = x^p, with SLAMP's
    skips (the running mean) and initialisation. Not SVG-LP: see :class:`SVG`."""

    motion_head = False

    def __init__(self, config: ModelConfig = ModelConfig()):
        if config.skips not in (None, "mean"):
            raise ValueError(f"AppearanceOnly uses SLAMP's skips (skips='mean'), found {config.skips!r}; with "
                             f"SVG-LP's skips the model is SVG (model name 'svg')")
        super().__init__(config)


@register_model("slamp_baseline")
class SLAMPBaseline(VideoPredictor):
    """SLAMP-Baseline: one latent z; the predictor's output is decoded into pixels x^p and into a
    flow that warps the previous frame into x^f; a mask blends them."""


# %% [markdown]
# The two have the same modules, so the same weights fit both; what differs is which skips the
# decoder reads. With three conditioning frames, the first prediction ($x_2$) reads $s(x_1)$ under
# both rules and must agree; from $x_3$ on SVG reads $s(x_2)$ and AppearanceOnly a running mean, so
# the frames part.
# The float noise floor beside it: one model's batched and step-by-step paths on the same input.

# %%
torch.manual_seed(0)
svg = SVG(replace(PRESETS["tiny"], output_bias=-2.0)).eval()  # a darker start, so the skips matter
appearance_only = AppearanceOnly(replace(PRESETS["tiny"], output_bias=-2.0)).eval()
appearance_only.load_state_dict(svg.state_dict())  # the same weights
clip, eps = torch.rand(2, 6, 1, 64, 64), svg.draw_noise(2, 5)
with torch.no_grad():
    held, mean = (m(clip, n_past=3, noise=eps).x_hat for m in (svg, appearance_only))
    floor = (svg(clip, n_past=3, noise=eps, per_step=True).x_hat - held).abs().max().item()
gap = (held - mean).abs().amax(dim=(0, 2, 3, 4))
print("largest difference per step:", [f"{g:.1e}" for g in gap.tolist()], f"(float noise floor {floor:.1e})")
assert gap[0] <= 10 * floor + 1e-7 and (gap[1:] > 100 * (floor + 1e-7)).all()


# %% [markdown]
# A checkpoint names its model by class and config, and `slamp.checkpoint` builds it again from
# that pair (`saved_model`) for every slamp version: a config without `skips` is older than the
# skip rules, when every model used `mean` and the class called SVG was `AppearanceOnly`.
# Weights of an older layout (biases in the convolutions before a BatchNorm) are a different
# function: `load_weights` refuses them with a message rather than dropping them silently.

# %% [markdown]
# ## Checking the model
#
# **Sizes.** The parameter counts of the paper's presets (asserted in `tests/test_models.py`, so
# they cannot drift); AppearanceOnly has SVG's modules, so SVG's counts:

# %%
from slamp.models import SLAMPBaseline, SVG

print(f"  svg_mnist: SVG {SVG.from_preset('svg_mnist').num_parameters() / 1e6:6.2f} M (SVG-LP's own, z = 10)")
for preset in ["mnist", "kth", "bair", "kitti", "cityscapes", "tiny"]:
    counts = {cls.__name__: cls.from_preset(preset).num_parameters() for cls in (SVG, SLAMPBaseline)}
    print(f"{preset:>10}: " + "   ".join(f"{name} {n / 1e6:6.2f} M" for name, n in counts.items()))

# %% [markdown]
# **Shapes and loss terms.** A batch of 3 videos of 6 frames, conditioned on 2: the model predicts
# frames 1..5, and the loss has the three L2 terms and the KL of its one latent stream.

# %%
model = SLAMPBaseline.from_preset("tiny")
video = torch.rand(3, 6, 1, 64, 64)
total, terms, prediction = model.loss(video, n_past=2)
print({name: round(value.item(), 4) for name, value in terms.items()})
print({name: tuple(getattr(prediction, name).shape) for name in Prediction.IMAGES})
assert prediction.x_hat.shape == (3, 5, 1, 64, 64) and prediction.flow.shape == (3, 5, 2, 64, 64)

# %% [markdown]
# **The two paths agree.** Same seed, evaluation mode: the batched and the step-by-step loss are
# equal to float precision.

# %%
model.eval()
torch.manual_seed(1)
batched, _, _ = model.loss(video, n_past=2)
torch.manual_seed(1)
stepwise, _, _ = model.loss(video, n_past=2, per_step=True)
print(f"batched {batched.item():.6f}   step by step {stepwise.item():.6f}")
assert torch.allclose(batched, stepwise, rtol=1e-5)

# %% [markdown]
# **Many futures in one batch.** `generate` repeats each conditioning sequence `num_samples` times
# and runs all samples together; each gets its own $z$ from the learned prior. How much samples
# differ is measured one way throughout slamp, `sample_spread`: the standard deviation over the
# samples of each pixel, averaged over a frame's pixels (the evaluation of `06_evaluation` reports
# it as *diversity*).

# %%
#| export
def sample_spread(samples: torch.Tensor) -> torch.Tensor:
    """How much the samples of a future differ: the standard deviation over the samples axis of
    ``samples`` ``(..., S, T, C, H, W)`` per pixel (over S, not S - 1), averaged over the pixels of
    each frame: ``(..., T)``. The evaluation computes the same from chunks (``SampleSpread``)."""
    return samples.std(-5, unbiased=False).mean((-3, -2, -1))


# %%
futures = model.generate(video[:, :2], n_future=4, num_samples=5)
print("frames", tuple(futures.x_hat.shape), "(B, samples, n_future, C, H, W)")
z_spread = futures.latents["appearance"].std(1).mean().item()  # over the 5 samples
print(f"z^p across samples: std {z_spread:.2f} (the untrained prior's sigma is about 1); frames: "
      f"{sample_spread(futures.x_hat).mean().item():.2e} (untrained: z barely matters yet)")
assert futures.x_hat.shape == (3, 5, 4, 1, 64, 64) and z_spread > 0.5  # each sample draws its own z

# %% [markdown]
# **Bad input gets a clear error.**

# %%
for bad in [torch.rand(6, 1, 64, 64), torch.rand(2, 6, 3, 64, 64), torch.rand(2, 6, 1, 32, 32)]:
    try:
        model.loss(bad, n_past=2)
    except ValueError as error:
        print("ValueError:", error)

# %% [markdown]
# ## Learning something
#
# A sanity check before real data (`02_data`) and real training (`05_training`): fit one batch of
# squares moving at constant speed. If the model, the loss and the gradients are wired correctly,
# the loss falls quickly, the flow head learns to move the square and the mask learns to trust it.

# %%
#| export toy
"""Toy data and a one-batch fit: sanity checks for models, used by notebooks and tests."""
import torch


def moving_squares(batch: int = 4, length: int = 8, size: int = 64, side: int = 12, seed: int = 0) -> torch.Tensor:
    """White squares moving in straight lines at random integer velocities, ``(B, T, 1, size, size)``."""
    generator = torch.Generator().manual_seed(seed)
    video = torch.zeros(batch, length, 1, size, size)
    for b in range(batch):
        x0, y0 = torch.randint(8, size - side - 24, (2,), generator=generator).tolist()
        vx, vy = torch.randint(-2, 3, (2,), generator=generator).tolist()
        for t in range(length):
            x, y = x0 + vx * t + 8, y0 + vy * t + 8
            video[b, t, 0, y:y + side, x:x + side] = 1
    return video


def fit_one_batch(model, video: torch.Tensor, steps: int, lr: float = 2e-3, n_past: int = 2) -> list[dict]:
    """Adam on ``model.loss(video, n_past)`` for ``steps`` steps; the loss terms of every step."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        total, terms, _ = model.loss(video, n_past)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        history.append({name: value.item() for name, value in terms.items()} | {"total": total.item()})
    return history


# %%
torch.manual_seed(0)
squares = moving_squares()
model = SLAMPBaseline.from_preset("tiny")
history = fit_one_batch(model, squares, steps=40 if SMOKE else 300)
print(f"loss {history[0]['total']:.4f} -> {history[-1]['total']:.4f}")
assert history[-1]["total"] < 0.5 * history[0]["total"]

# %%
fig, ax = plt.subplots(figsize=(5, 3))
for name in ["x_p", "x_f", "x_hat"]:
    ax.semilogy([h[name] for h in history], label=name)
ax.set(xlabel="step", ylabel="L2 (summed over steps)", title="one batch of moving squares")
ax.legend()
fig.tight_layout()

# %% [markdown]
# One step of the fitted model: frame 6 of the first video, predicted from the true frames 1–5
# (teacher forcing). The mask is white where $\hat x$ takes $x^p$ and black where it takes $x^f$.
# The flow is the *backward* field of `01_flow_warping` (at each pixel of frame 6, where its content
# was in frame 5), coloured as on the key beside it: hue is the direction, white is no motion, full
# colour the longest vector of the field (printed).

# %%
from slamp.viz import flow_legend, flow_to_colour, show_row

model.eval()
with torch.no_grad():
    parts = model(squares, n_past=2)
t = 4  # output index 4: the prediction of frame 6 (index 5) from frames 1-5
flow = parts.flow[0, t]
print(f"frame {t + 2}: longest flow vector {flow.norm(dim=0).max():.2f} px, mask mean {parts.mask[0, t].mean():.2f}")
show_row([squares[0, t + 1], parts.x_p[0, t], parts.x_f[0, t], parts.mask[0, t], flow_to_colour(flow), flow_legend(),
          parts.x_hat[0, t]],
         [f"truth x_{t + 2}", "appearance x^p", "motion x^f", "mask m\n(white: x^p, black: x^f)", "flow (backward)",
          "flow key: hue =\ndirection, white = 0", "x̂ = m x^p + (1-m) x^f"], size=1.8);

# %% [markdown]
# ## Exercises and what to try next
#
# The exercises of this notebook: **`blend`** (Eq. 1) and **`prediction_loss`** (the loss of
# Eq. 3 as training minimises it).
#
# * The mask off: fix $m = \tfrac12$ (the "average" row of the paper's Table 7; `docs/contributing.md`
#   shows the model) and fit the moving squares again: what does the learned mask add?
# * Leave the `x_p` or the `x_f` term out of `prediction_loss` and fit the squares: which head
#   stops learning, and why (section 3 of `00_elbo`)?
# * Fit AppearanceOnly and SLAMP-Baseline to the same batch for the same number of steps: the only
#   difference is the motion head. How much lower is SLAMP-Baseline's `x_hat` term, and where in
#   the frame does its mask trust $x^f$?
# * Fit SVG (`held` skips) and AppearanceOnly (`mean`) to the squares with `n_past=2`: SVG's
#   decoder keeps reading the first frame's skips while the square moves away. Where does that show
#   in its predictions?

# %% [markdown]
# ## Summary
#
# * `slamp.nn`: DCGAN-64 and VGG-64 encoders/decoders with skips, `PredictorLSTM`,
#   `GaussianLSTM`, `MaskNet` with squeeze-excitation, the three skip rules (`decoder_skips`,
#   `step_skips`).
# * `slamp.models`: `ModelConfig` with the paper's presets and SVG-LP's, `LatentStream`, and
#   `SVG` (SVG-LP), `AppearanceOnly`, `SLAMPBaseline` behind one interface — `loss(x, n_past)`,
#   `generate(x_past, n_future, num_samples)` — with a batched teacher-forcing path and a
#   step-by-step path that agree.
# * Next, `04_slamp` gives motion its own latent stream.
