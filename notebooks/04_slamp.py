# %% [markdown]
# # 04 · SLAMP: a latent stream for appearance and one for motion
#
# In SLAMP-Baseline (`03_slamp_baseline`) one latent $z_t$ must explain two different kinds of
# uncertainty: *what* appears (new content, textures, disocclusions) and *how* things move
# (direction, speed, a bounce). SLAMP separates them. Next to the appearance stream of SVG it runs a
# **motion stream** with its own posterior, learned prior and predictor:
#
# $$z^p_t \sim q_{\phi_p}(z^p_t \mid x_{1:t}), \qquad z^f_t \sim q_{\phi_f}(z^f_t \mid x_{1:t}),$$
# $$x^p_t = \mathrm{Dec}\big(\mathrm{LSTM}_{\theta_p}(h_{t-1}, z^p_t)\big), \qquad
#   f_{t-1:t} = \mathrm{FlowDec}\big(\mathrm{LSTM}_{\theta_f}(h^f_{t-1}, z^f_t)\big), \qquad
#   x^f_t = \mathcal W(x_{t-1}, f_{t-1:t}).$$
#
# The motion stream does not read frames but **motion features** $h^f_t = \mathrm{MotionEnc}(x_{t-1},
# x_t)$, from a **motion encoder** that sees a *pair* of consecutive frames stacked along the
# channels (Eq. 4). Its posterior reads the motion into the frame to predict, $h^f_t$; its prior
# (Eq. 5) and predictor (Eq. 6) read the motion *history*, $h^f_{t-1}$ (the motion $t-2 \to t-1$).
# At the first step there is no history: the encoder sees the frame paired with itself, i.e. zero
# motion.
#
# *Paper: Sec. 3.2 ("The Motion History"), Sec. 3.3 (Eqs. 2 and 3), Sec. 3.4 (Eqs. 4–6), App. B.2
# and C.2.* Notation as in the table of `00_elbo` ($m_t$ stays the mask); frame $x_t$ is `x[:, t-1]`.
#
# The loss (the negative ELBO of Eq. 3, derived in `00_elbo`) gains a second KL term, because
# posterior and prior both factorise over the streams:
#
# $$\text{loss} = \sum_t \Big[\mathrm{MSE}_t(x^p) + \mathrm{MSE}_t(x^f) + \mathrm{MSE}_t(\hat x)
#   + \beta\big(\mathrm{KL}(q_{\phi_p} \Vert p_{\psi_p}) + \mathrm{KL}(q_{\phi_f} \Vert p_{\psi_f})\big)\Big],$$
#
# with $\mathrm{MSE}_t(x^p) = \frac1D\lVert x^p_t - x_t\rVert^2$ the mean over the $D$ numbers of
# a frame (§5 of `00_elbo`: with this mean, β means pixel noise $\sigma^2 = \beta D/2$; a summed
# $\lVert\cdot\rVert^2$ would give a different β, $\sigma^2 = \beta/2$).

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
from torch import nn

from slamp.models import SVG, LatentStream, SLAMPBaseline, VideoPredictor
from slamp.nn import BACKBONES

SMOKE = os.environ.get("SLAMP_SMOKE", "0") == "1"  # small settings for CI
torch.manual_seed(0);

# %% [markdown]
# ## The motion encoder
#
# The same backbone encoder as for frames, with twice the input channels: the earlier and the later
# frame of a pair. A frame paired with itself is the "no motion" input of the first step. With the
# conv backbone (KITTI, Cityscapes) the pair is the two frames' maps from the shared image encoder
# of `03_slamp_baseline`, and the motion encoder is a spatial encoder on them ($4g$ channels in).

# %%
#| export nn
class MotionEncoder(nn.Module):
    """Features of the motion between two frames: the backbone's encoder on the pair stacked along
    channels, ``(N, C, H, W)`` × 2 → ``(N, g)``. A frame paired with itself is "no motion"."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, earlier, later):
        return self.encoder(torch.cat([earlier, later], 1))[0]


# %% [markdown]
# Under teacher forcing all pairs are encoded in one batch: frame $t$ is paired with the frame
# before it, and the first frame with itself (zero motion, what the motion prior reads at the
# first step, when there is no history yet). `previous_frames` gives the earlier frame of every pair.

# %% [markdown]
# **Exercise: `previous_frames`**
#
# Write `previous_frames`: for every frame of a video, the frame before it, and for the first
# frame the frame itself (zero motion, what the motion prior reads first). Shapes:
# `(B, T, C, H, W)` → `(B, T, C, H, W)`. Checked on a video whose frames are numbered.
#
# The cell after the function runs the grader's own checks on it, `check(previous_frames)`: it
# prints ✓ when they pass, or ✗ and the hint the grader gives for the mistake it finds, and stops
# there.

# %%
#| export nn
def previous_frames(x):
    """The earlier frame of each motion pair of a video ``x`` ``(B, T, C, H, W)`` → ``(B, T, C, H, W)``:
    the frame before at every position ``i >= 1`` and the first frame itself at position 0, so that
    pair ``i`` is the motion into frame ``i`` and pair 0 is zero motion."""
    # BEGIN SOLUTION previous_frames
    return torch.cat([x[:, :1], x[:, :-1]], 1)
    # END SOLUTION


# %%
from slamp.exercises import check
from slamp.notebook import use

check(previous_frames)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(previous_frames)  # from here on the package runs this previous_frames: in a student's notebook, yours

# %%
video = torch.arange(4.0).view(1, 4, 1, 1, 1)  # frames numbered 0, 1, 2, 3
pairs = torch.stack([previous_frames(video), video], -1).flatten().view(4, 2).tolist()
print("motion pairs (earlier, later):", pairs)
assert pairs == [[0, 0], [0, 1], [1, 2], [2, 3]]


# %% [markdown]
# ## The motion stream
#
# `MotionStream` is the second latent stream as one module: the motion encoder and a
# `LatentStream` over motion features. It holds modules only: the one time step of
# `03_slamp_baseline` (`step`) already runs them where `model.motion` is not None, and reads as
# the equations above:
#
# * the posterior of $z^f$ reads the motion *observed* into the target, $h^f_t =
#   \mathrm{MotionEnc}(x_{t-1}, x_t)$, while the target is known;
# * the prior and the predictor read the motion *history* $h^f_{t-1}$: the motion observed one
#   step earlier, or, once the model generates, the motion from the previous input into the frame
#   it generated; at the first step zero motion (a frame paired with itself);
# * the flow decoder reads the motion predictor's $g^f$, but keeps the *appearance* encoder's
#   skips, as in the public code.
#
# The batched path (`teacher_forced`) encodes all pairs $(x_1, x_1), (x_1, x_2), \dots, (x_{T-1},
# x_T)$ at once. What the stream pairs is what `encode_frames` hands it: frames, or with the conv
# backbone their image maps (the image encoder runs once per frame for both streams, as in the
# public code).

# %%
#| export
from slamp.models import LatentStream, ModelConfig, encoded_channels
from slamp.nn import BACKBONES, MotionEncoder


class MotionStream(nn.Module):
    """SLAMP's motion stream z^f: a motion encoder on frame pairs and a :class:`LatentStream` over
    motion features (its posterior reads the motion t-1 → t, its prior and predictor the motion
    history t-2 → t-1). It pairs frames, or with the conv backbone their image maps."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        Encoder = BACKBONES[config.backbone][0]
        self.encoder = MotionEncoder(Encoder(config.g_dim, 2 * encoded_channels(config), config.width))
        self.latent = LatentStream(config)


# %% [markdown]
# ## SLAMP
#
# SLAMP is SLAMP-Baseline with a motion stream:

# %%
#| export
from slamp.model_registry import register_model


@register_model("slamp")
class SLAMP(VideoPredictor):
    """SLAMP: an appearance stream z^p (pixel decoder) and a motion stream z^f (flow decoder)."""

    motion_stream = MotionStream


# %% [markdown]
# ## One SLAMP time step, by hand
#
# Here is the first step written out with the modules of a `tiny` SLAMP: predict $x_2$ from $x_1$
# while the target $x_2$ is known (training), every shape printed. It is `step` of
# `03_slamp_baseline` line for line (encoder, the two streams, the decoders, warp, mask, blend),
# and what the batched path computes for all steps at once: the check at the end compares it with
# the model's own first prediction for the same noise.

# %%
from slamp.losses import reparameterize
from slamp.nn import blend
from slamp.warp import warp

model = SLAMP.from_preset("tiny").eval()  # eval: BatchNorm uses running statistics, so one step = the batch
x = torch.rand(2, 4, 1, 64, 64)  # a video (B, T, C, H, W)
noise = model.draw_noise(2, 3)  # ε of each stream: (B, T-1, z)


def shown(name, value):
    """Print a tensor's shape beside its name; return the tensor."""
    print(f"{name:<48} {tuple(value.shape)}")
    return value


with torch.no_grad():
    h_1, skips = model.encoder(x[:, 0])  # features (B, g) and the skips of x_1
    shown("h_1 = Enc(x_1)", h_1)
    h_2 = shown("h_2 = Enc(x_2), the target", model.encoder(x[:, 1])[0])
    mu_q, logvar_q, _ = model.appearance.posterior(h_2[:, None])  # (B, 1, z): one step of a sequence
    shown("mean of the posterior of z^p_2 (reads x_2)", mu_q)
    shown("mean of the learned prior of z^p_2 (reads x_1)", model.appearance.prior(h_1[:, None])[0])
    z_p = shown("z^p_2 = mu + sigma * eps", reparameterize(mu_q, logvar_q, noise=noise["appearance"][:, :1]))
    g_p = shown("g^p_2 = LSTM_p(h_1, z^p_2)", model.appearance.predictor(torch.cat([h_1[:, None], z_p], 2))[0])
    moving = shown("h^f_2 = MotionEnc(x_1, x_2), observed", model.motion.encoder(x[:, 0], x[:, 1]))
    still = shown("h^f_1 = MotionEnc(x_1, x_1): zero motion", model.motion.encoder(x[:, 0], x[:, 0]))
    mu_qf, logvar_qf, _ = model.motion.latent.posterior(moving[:, None])  # Eq. 4
    z_f = shown("z^f_2 (posterior, reads h^f_2)", reparameterize(mu_qf, logvar_qf, noise=noise["motion"][:, :1]))
    g_f = shown("g^f_2 = LSTM_f(h^f_1, z^f_2)  (Eq. 6)", model.motion.latent.predictor(torch.cat([still[:, None], z_f], 2))[0])
    x_p = shown("x^p_2 = Dec(g^p_2), appearance", model.pixel_decoder(g_p[:, 0], skips))
    flow = shown("f_{1:2} = FlowDec(g^f_2), pixels", model.flow_decoder(g_f[:, 0], skips))
    x_f = shown("x^f_2 = warp(x_1, f_{1:2}), motion", warp(x[:, 0], flow))
    mask = shown("m_2 = MaskNet(x^p_2, x^f_2)", model.mask_net(x_p, x_f))
    x_hat = shown("x̂_2 = m ⊙ x^p + (1 − m) ⊙ x^f  (Eq. 1)", blend(x_p, x_f, mask))
    batched = model(x, n_past=1, noise=noise)  # all steps at once, the same noise
print(f"by hand vs batched: max difference {(x_hat - batched.x_hat[:, 0]).abs().max().item():.1e}")
assert torch.allclose(x_hat, batched.x_hat[:, 0], atol=1e-5)

# %% [markdown]
# ## Checking SLAMP
#
# **Sizes.** The second stream adds a motion encoder and three LSTMs. At the MNIST preset SLAMP has
# 25,366,628 parameters, at KTH 45,726,932, at BAIR 45,769,798 and at KITTI and Cityscapes
# 50,221,382 each: exactly the public code's counts.

# %%
for preset in ["mnist", "kth", "bair", "kitti", "cityscapes", "tiny"]:
    counts = {cls.__name__: cls.from_preset(preset).num_parameters() for cls in (SVG, SLAMPBaseline, SLAMP)}
    print(f"{preset:>10}: " + "   ".join(f"{name} {n / 1e6:6.2f} M" for name, n in counts.items()))
public_code = {"mnist": 25_366_628, "kth": 45_726_932, "bair": 45_769_798,  # kaanakan/slamp, instantiated
               "kitti": 50_221_382, "cityscapes": 50_221_382}
assert all(SLAMP.from_preset(name).num_parameters() == n for name, n in public_code.items())

# %% [markdown]
# **The motion prior reads the motion history** (Eq. 5). We record what the motion prior receives
# at each step $t = 2, \dots, T$ and compare it with the motion encoder applied to the frame pairs:
# at step 2 the pair $(x_1, x_1)$ (zero motion), at step $t \ge 3$ the pair $(x_{t-2}, x_{t-1})$.

# %%
model = SLAMP.from_preset("tiny").eval()
video = torch.rand(2, 5, 1, 64, 64)
seen = []
hook = model.motion.latent.prior.register_forward_hook(lambda module, args, out: seen.append(args[0]))
with torch.no_grad():
    model.loss(video, n_past=2)
hook.remove()
prior_inputs = seen[0]  # (B, T-1, g): batched over time
for t in range(2, 6):  # x_t is video[:, t - 1]
    earlier = max(t - 2, 1)
    with torch.no_grad():
        expected = model.motion.encoder(video[:, earlier - 1], video[:, t - 2])
    error = (prior_inputs[:, t - 2] - expected).abs().max().item()
    print(f"step {t}: the prior reads MotionEnc(x_{earlier}, x_{t - 1})  (max difference {error:.1e})")
    assert error < 1e-5

# %% [markdown]
# **Both paths agree**, with two streams of noise.

# %%
torch.manual_seed(1)
batched, terms, _ = model.loss(video, n_past=2)
torch.manual_seed(1)
stepwise, _, _ = model.loss(video, n_past=2, per_step=True)
print({name: round(value.item(), 4) for name, value in terms.items()})
print(f"batched {batched.item():.6f}   step by step {stepwise.item():.6f}")
assert torch.allclose(batched, stepwise, rtol=1e-5)
assert set(terms) == {"x_hat", "x_p", "x_f", "kl_appearance", "kl_motion"}

# %% [markdown]
# ## Learning something
#
# The same one-batch sanity check as for the baseline, on squares moving at constant speeds: here
# the motion history alone predicts the motion, which is what the motion prior is for.

# %%
from slamp.toy import fit_one_batch, moving_squares

torch.manual_seed(0)
squares = moving_squares()
model = SLAMP.from_preset("tiny")
history = fit_one_batch(model, squares, steps=40 if SMOKE else 300)
print(f"loss {history[0]['total']:.4f} -> {history[-1]['total']:.4f}")
assert history[-1]["total"] < 0.5 * history[0]["total"]

# %%
fig, ax = plt.subplots(figsize=(5, 3))
for name in ["x_p", "x_f", "x_hat", "kl_appearance", "kl_motion"]:
    ax.semilogy([h[name] for h in history], label=name)
ax.set(xlabel="step", title="SLAMP on one batch of moving squares")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# Finally, the whole point of a stochastic model: condition on two frames and draw several futures
# from the learned priors. These squares move at constant speed and never reach a wall, so their
# future is certain, and a model that has fitted them should draw the same future every time.

# %%
model.eval()
with torch.no_grad():
    futures = model.generate(squares[:1, :2], n_future=4, num_samples=3)


from IPython.display import display

from slamp.viz import show_futures

display(show_futures(squares[0, 2:6], futures.x_hat[0], first_frame=3, size=1.5))


from slamp.models import sample_spread


def spread(frames):
    """How much samples ``(S, T, C, H, W)`` differ (``sample_spread``), averaged over the frames."""
    return sample_spread(frames).mean().item()


print(f"the 3 futures of the squares differ by {spread(futures.x_hat[0]):.4f} (per-pixel std; pixels in [0, 1])")

# %% [markdown]
# The samples agree, as they should. Stochastic futures are for uncertain ones: in Stochastic
# Moving MNIST a digit that reaches a wall leaves in a *random* new direction. Here is a trained
# SLAMP, conditioned on 5 frames of a test sequence whose digits bounce during the predicted
# frames. Its samples go different ways, and not only from the bounce on: how far apart they are is
# measured against the spread that moving the true frames one or two pixels either way would give
# (computed in the cell; the printout gives the spread frame by frame). With the shipped model the
# spread in frame 6 is already about that of a one-pixel jitter, passes the two-pixel jitter by
# frame 8 and then levels off above it; the digits bounce into frames 12 and 14 and the spread does
# not jump there. The model is unsure where the digits go well before they reach a wall. Which
# SLAMP: the paper's own (the public release's weights, 25 M parameters) when its file is in the
# data folder — set `PAPER_MODEL = "download"` to fetch it once (about 100 MB) — else the small one
# that ships with the package (`slamp.pretrained`, trained on two CPU cores; see the README). The
# figure's title says which.

# %%
from slamp.data import MovingMNISTTestSet
from slamp.pretrained import paper_or_shipped

PAPER_MODEL = os.environ.get("SLAMP_PAPER_MODEL", "auto")  # "auto": the paper's if found; "download"; "off"
trained, trained_name = paper_or_shipped("slamp", "cpu", PAPER_MODEL)
test_set = MovingMNISTTestSet.generate(num_sequences=16, n_frames=15, seed=42, protocol="srvp")
index = next(i for i in range(len(test_set)) if test_set.bounces[i, :, 5:].any())  # a bounce after frame 5
video = test_set[index][None]  # (1, 15, 1, 64, 64)
torch.manual_seed(0)
with torch.no_grad():
    sampled = trained.generate(video[:, :5], n_future=10, num_samples=3).x_hat[0]  # (3, 10, 1, 64, 64)
display(show_futures(video[0, 5:], sampled, first_frame=6,
                     title=f"{trained_name}: test sequence {index}, frames 6-15 predicted from frames 1-5"))
bounced = sorted({t + 1 for t in range(5, 15) if test_set.bounces[index, :, t].any()})
truth = video[0, 5:]
jitter = {k: spread(torch.stack([truth.roll(-k, -1), truth, truth.roll(k, -1)])) for k in (1, 2)}  # the floor
print(f"bounces at frames {bounced}; the 3 futures differ by {spread(sampled):.4f} (per-pixel std), "
      f"{spread(sampled[:, :1]):.4f} in the first predicted frame and {spread(sampled[:, -1:]):.4f} in the last; "
      f"per frame {[round(v, 4) for v in sample_spread(sampled).tolist()]}")
print(f"the true frames moved 1 px either way: {jitter[1]:.4f}; 2 px: {jitter[2]:.4f}")
assert spread(sampled[:, -1:]) > jitter[2]  # the futures end further apart than a 2-pixel jitter of the truth

# %% [markdown]
# ## Exercises and what to try next
#
# The exercise of this notebook: **`previous_frames`** (the earlier frame of every motion pair,
# the first frame paired with itself).
#
# * The motion history off: feed the motion prior zero motion at every step (pair each frame with
#   itself) and compare the spread of the samples after a bounce with SLAMP's.
# * Run the step by hand for step 3: which pair does the prior read, which the posterior?
# * Count the parameters of each part (`model.motion.encoder`, `model.motion.latent`, the mask net)
#   for the `mnist` preset: where does SLAMP spend its 25 M parameters?

# %% [markdown]
# ## Summary
#
# * `slamp.nn.MotionEncoder` encodes frame pairs; `slamp.models.MotionStream` is the second latent
#   stream as one module (`teacher_forced`, `step`, `after_step`); `slamp.models.SLAMP` is the
#   machinery of `03_slamp_baseline` with a motion stream, and keeps its interface:
#   `loss(x, n_past)` with terms `final`, `pixel`, `flow`, `kl_appearance`, `kl_motion`, and
#   `generate(x_past, n_future, num_samples)`.
# * The motion prior reads the motion history (checked above), zero motion at the first step.
# * Next: training for real (`05_training`).
