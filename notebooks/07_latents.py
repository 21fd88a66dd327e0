# %% [markdown]
# # 07 · Seeing the model: streams, latents and diversity
#
# SLAMP claims a division of labour: the appearance stream, with latent $z^p$, paints what appears;
# the motion stream, with latent $z^f$, decides how things move. This notebook looks inside trained
# models to see whether that holds:
#
# 1. **the streams of a prediction** (the paper's Fig. 5 and 7): the final frame $\hat x_t$, the
#    appearance prediction $x^p_t$, the motion prediction $x^f_t$, the mask $m_t$ that blends them,
#    and the flow $f_{t-1:t}$, for the best sample and for random ones;
# 2. **an explorer** that keeps one stream's random draw and redraws the other's;
# 3. **t-SNE of the latents** (Fig. 14 and 15): coloured by the direction of motion, $z^f$ should
#    form clusters and $z^p$ much less; a $k$-NN classifier and the silhouette score put a number on it;
# 4. **diversity** (appendix E.3): the mean of many samples blurs where the future is uncertain.
#
# *Paper: Sec. 4, "Visualization of Latent Space" (Figs. 5, 7, 14, 15), and App. E.1 (flow
# visualisation), E.2 (static and dynamic latents) and E.3 (diversity of samples).* Notation as in
# the table of `00_elbo`.
#
# Code marked `#| export` becomes `slamp.latents`; figure functions marked `#| export viz` join
# `slamp.viz`.

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
#| default_exp latents

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

SMOKE = os.environ.get("SLAMP_SMOKE", "0") == "1"  # small settings for CI
torch.manual_seed(0)
started = time.perf_counter()

# %% [markdown]
# ## Trained models
#
# A latent is only worth looking at once the model has learned to use it. `slamp.pretrained` ships
# small trained models (`cpu` sizes, trained on Stochastic Moving MNIST); where a checkpoint is
# not there yet, `trained_model` trains the `tiny` preset here instead, for a few updates under the
# CI smoke setting (its pictures then show an untrained model) and for longer otherwise.

# %%
#| export
"""Looking inside trained models: which latent encodes what (t-SNE, k-NN accuracy and silhouette
of a label in each latent space) and an interactive explorer that redraws one latent stream at a
time. Latents are ``(N, T, z)``; videos ``(N, T, C, H, W)`` in [0, 1]."""
import matplotlib.pyplot as plt
import numpy as np
import torch

from slamp.models import VideoPredictor
from slamp.model_registry import MODELS
from slamp.viz import STREAM_TITLES, flow_legend, prediction_parts, stream_images


def trained_model(name: str, steps: int = 600, device="cpu", batch_size: int = 16, n_frames: int = 10,
                  n_past: int = 5, lr: float = 2e-3, seed: int = 0, paper: str = "off") -> tuple[VideoPredictor, str]:
    """The model ``name`` (a name in ``slamp.model_registry.MODELS``: ``"slamp"``, ``"svg"``, ...) in eval mode on ``device``,
    and a line saying where it came from: for SLAMP the paper's own with ``paper`` ``"auto"`` or
    ``"download"`` (see :func:`slamp.pretrained.paper_or_shipped`), else the shipped model when
    :func:`slamp.pretrained.available` lists it, else the ``tiny`` preset trained here for
    ``steps`` updates (Adam, ``lr``) on Stochastic Moving MNIST videos of ``n_frames`` frames,
    seeded by ``seed``."""
    from slamp.pretrained import available, paper_or_shipped

    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if name in available():
        model, label = paper_or_shipped(name, device, paper)
        return model.eval(), label
    from torch.utils.data import DataLoader

    from slamp.data import StochasticMovingMNIST

    torch.manual_seed(seed)
    model = MODELS[name].from_preset("tiny").to(device)
    batches = iter(DataLoader(StochasticMovingMNIST(n_frames=n_frames, seed=seed), batch_size=batch_size))
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        total, _, _ = model.loss(next(batches).to(device), n_past=n_past)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
    return model.eval(), f"{name}: tiny preset trained here for {steps} updates (no shipped model yet)"


# %%
from slamp.pretrained import available

steps = 2 if SMOKE else (3000 if device == "cuda" else 600)
PAPER_MODEL = os.environ.get("SLAMP_PAPER_MODEL", "auto")  # "auto": the paper's SLAMP if found; "download"; "off"
slamp_model, slamp_about = trained_model("slamp", steps, device, paper=PAPER_MODEL)
print(slamp_about)
trained = "slamp" in available() or not SMOKE  # only then is it fair to expect the latents to mean something
svg_model, svg_about = trained_model("svg", steps, device)
print(svg_about)

# %% [markdown]
# ## The streams of a prediction
#
# At every future step SLAMP makes two predictions and blends them with a mask:
#
# $$\hat x_t = m_t \odot x^p_t + (1 - m_t) \odot x^f_t, \qquad x^f_t = \mathcal W(\hat x_{t-1}, f_{t-1:t}).$$
#
# Where $m_t \approx 1$ the frame is painted by the appearance decoder, where $m_t \approx 0$ it is
# copied from the previous frame along the flow. Each row of the figure below is one of these
# tensors; the flow uses the colour wheel of `01_flow_warping` (hue: direction, saturation: length,
# one scale for the whole sequence so that colours compare across time).
#
# We draw many futures of a test sequence and show the **best** (the highest PSNR averaged over
# frames, as in the evaluation protocol of `06_evaluation`) and a **random** one.

# %%
#| export viz
from slamp.viz import _as_numpy_image, flow_to_colour  # from 01 (in slamp.viz itself, already defined)

STREAM_TITLES = {"truth": "ground truth", "x_hat": r"prediction $\hat x$", "x_p": r"appearance $x^p$",
                 "x_f": r"motion $x^f$", "mask": "mask $m$", "flow": "flow $f$"}


def prediction_parts(prediction, sequence: int = 0, sample: int | None = 0) -> dict:
    """The parts of one predicted sequence as ``{name: (T, ...)}`` (``x_hat``, ``x_p`` and, with a
    motion head, ``x_f``, ``mask``, ``flow``), from a ``slamp.models.Prediction``:
    tensors ``(B, S, T, ...)`` from ``generate`` (pick ``sample``) or ``(B, T, ...)`` from a
    training forward (``sample=None``)."""
    return {name: (value[sequence] if sample is None else value[sequence, sample]).detach().float().cpu()
            for name, value in prediction.images().items()}


def stream_images(truth, parts: dict, max_flow: float | None = None) -> dict:
    """Images to show for ``truth`` ``(T, C, H, W)`` (or ``None``) and ``parts`` ``{name: (T, ...)}``
    (see :func:`prediction_parts`): ``{name: (T, C, H, W)}`` in [0, 1], in the order of
    ``STREAM_TITLES``. The flow ``(T, 2, H, W)`` becomes its colour code, with one ``max_flow``
    for all frames (default: the longest vector of the sequence)."""
    images = {} if truth is None else {"truth": truth.detach().float().cpu()}
    for name in STREAM_TITLES:
        if name in parts and name != "truth":
            value = parts[name].detach().float().cpu()
            if name == "flow":
                longest = value.norm(dim=-3).max().item() if max_flow is None else max_flow
                value = flow_to_colour(value, max_flow=max(longest, 1e-6))
            images[name] = value.clamp(0, 1)
    lengths = {name: len(value) for name, value in images.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"truth and parts must have the same number of frames T, found {lengths}")
    return images

# %% [markdown]
# Drawing: one column per frame, one row per stream, the mask in grey and the flow in the colour
# code of `01_flow_warping`; `streams_strip` puts the same images side by side in one array.

# %%
#| export viz
def _show(ax, image: torch.Tensor) -> None:
    ax.imshow(_as_numpy_image(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def show_streams(truth, parts: dict, steps=None, first_frame: int = 1, title: str | None = None,
                 size: float = 1.0) -> plt.Figure:
    """The paper's Fig. 5/7 layout: one row per stream (ground truth, x̂, x^p, x^f, mask, flow; the
    rows a model has), one column per step. ``truth`` ``(T, C, H, W)`` or ``None``, ``parts``
    ``{name: (T, ...)}`` (:func:`prediction_parts`), ``steps`` indices into T (default: all),
    labelled as frame ``first_frame + step``."""
    images = stream_images(truth, parts)
    length = len(next(iter(images.values())))
    steps = list(range(length)) if steps is None else list(steps)
    fig, axes = plt.subplots(len(images), len(steps), figsize=(size * len(steps) + 1.2, size * len(images)),
                             squeeze=False)
    for row, (name, frames) in enumerate(images.items()):
        for column, step in enumerate(steps):
            _show(axes[row, column], frames[step])
            if row == 0:
                axes[row, column].set_title(f"{first_frame + step}", fontsize=8)
        axes[row, 0].set_ylabel(STREAM_TITLES[name], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def streams_strip(truth, parts: dict, gap: int = 2) -> torch.Tensor:
    """The images of :func:`stream_images` side by side, one RGB frame per step: ``(T, 3, H, W')``
    with white gaps, ready for :func:`save_gif`."""
    images = [im.expand(-1, 3, -1, -1) for im in stream_images(truth, parts).values()]
    length, _, height, _ = images[0].shape
    white = torch.ones(length, 3, height, gap)
    pieces = [piece for image in images for piece in (image, white)][:-1]
    return torch.cat(pieces, dim=-1)


# %%

from slamp.data import MovingMNISTTestSet
from slamp.evaluate import best_of_n, score_frames
from slamp.viz import prediction_parts, save_gif, show_streams, stream_images, streams_strip

n_past, n_future = 5, 20
test_set = MovingMNISTTestSet.generate(num_sequences=8 if SMOKE else 64, n_frames=n_past + n_future, seed=42)
num_samples = 10 if SMOKE else 100
video = test_set[0][None].to(device)
with torch.no_grad():
    futures = slamp_model.generate(video[:, :n_past], n_future=n_future, num_samples=num_samples)
truth = video[0, n_past:].cpu()
best, _ = best_of_n(score_frames(futures.x_hat, video[:, n_past:], "psnr"))
best = best.item()
random_sample = (best + 1) % num_samples  # any sample but the best

steps_shown = range(0, n_future, 2)
fig = show_streams(truth, prediction_parts(futures, 0, best), steps_shown, first_frame=n_past + 1,
                   title=f"{slamp_about}: best of {num_samples} samples (by PSNR)")

# %%
fig = show_streams(truth, prediction_parts(futures, 0, random_sample), steps_shown, first_frame=n_past + 1,
                   title=f"{slamp_about}: a random sample")

# %% [markdown]
# The blend is exactly the equation above, and the mask is a probability per pixel:

# %%
parts = prediction_parts(futures, 0, best)
blend = parts["mask"] * parts["x_p"] + (1 - parts["mask"]) * parts["x_f"]
print(f"max |x̂ - (m x^p + (1 - m) x^f)| = {(blend - parts['x_hat']).abs().max():.2e};  "
      f"mask in [{parts['mask'].min():.3f}, {parts['mask'].max():.3f}], mean {parts['mask'].mean():.3f}")
assert torch.allclose(blend, parts["x_hat"], atol=1e-5)
assert 0 <= parts["mask"].min() and parts["mask"].max() <= 1
assert len(fig.axes) == 6 * len(steps_shown)  # six rows: truth, x̂, x^p, x^f, mask, flow

# %% [markdown]
# **Why a digit moving right is coloured as "left".** The flow row shows what the flow decoder
# outputs and `warp` reads: the *backward* field, at each pixel of the new frame the displacement
# to where it was in the previous one (`01_flow_warping`; the paper's App. E.1 says the same of its
# figures). A digit that moves right by 2 pixels has $f = (-2, 0)$, the colour of the wheel's
# left; read the flow row's hues opposite to the motion:

# %%
from slamp.viz import flow_to_colour

rightward = torch.zeros(1, 2, 8, 8)
rightward[:, 0] = -2.0  # backward flow of a motion 2 px to the right: each pixel came from 2 px left
swatches = flow_to_colour(torch.cat([rightward, -rightward]), max_flow=2.0)  # (2, 3, 8, 8)
fig, axes = plt.subplots(1, 2, figsize=(3.2, 1.7))
for ax, swatch, title in zip(axes, swatches, ["moving right: f = (-2, 0)", "moving left: f = (+2, 0)"]):
    ax.imshow(swatch.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=7)
    ax.set_axis_off()
fig.tight_layout()

# %% [markdown]
# The same rows as an animation, left to right: ground truth, $\hat x$, $x^p$, $x^f$, mask, flow.

# %%
import tempfile
from pathlib import Path

from IPython.display import Image

gif = save_gif(streams_strip(truth, parts), Path(tempfile.mkdtemp()) / "best_sample.gif", fps=4)
Image(filename=str(gif))

# %% [markdown]
# ## An explorer: redraw one stream, keep the other
#
# Every latent is drawn by reparameterisation from noise $\varepsilon$ that `generate` takes up
# front, one tensor per stream:
#
# $$z^p_t = \mu^p_t + \sigma^p_t \odot \varepsilon^p_t, \qquad z^f_t = \mu^f_t + \sigma^f_t \odot \varepsilon^f_t,
#   \qquad \varepsilon \sim \mathcal N(0, I).$$
#
# Keeping $\varepsilon^f$ and redrawing $\varepsilon^p$ asks "same motion draw, another appearance
# draw". The streams still talk to each other — each prior reads the frames generated so far — so
# from the second future step on, $\mu^f$ and $\sigma^f$ change with the new appearance, but the
# random choice of the motion stream is the same one.
#
# `Explorer` holds the state (which sequence, which future step, $\varepsilon$ of each stream) and
# draws the picture; it knows nothing of widgets, so it is tested without a browser.
# `explorer_widget` only wires `ipywidgets` controls to its methods.

# %%
#| export
SYMBOLS = {"appearance": "z^p", "motion": "z^f"}


def latent_symbol(model: VideoPredictor, stream: str) -> str:
    """How the paper writes a stream's latent: ``z^p`` / ``z^f`` for SLAMP, ``z`` for one-stream models."""
    return "z" if len(model.streams) == 1 else SYMBOLS.get(stream, stream)

# %% [markdown]
# The explorer's state is a test sequence, a future step and one noise draw per latent stream;
# changing any of them forgets the prediction, which is made again when it is next read.

# %%
#| export
class ExplorerState:
    """What the interactive explorer holds, and how it changes: a test sequence of ``videos``
    ``(N, T, C, H, W)``, a future step, and the noise ε of each latent stream of ``model``, from
    which ``model.generate`` makes one future of ``n_future`` frames after ``n_past``.
    ``select(i)``, ``scrub(t)`` and ``resample(stream)`` change it (and return the explorer)."""

    def __init__(self, model: VideoPredictor, videos: torch.Tensor, n_past: int = 5, n_future: int | None = None,
                 seed: int = 0):
        if videos.ndim != 5:
            raise ValueError(f"videos must be (N, T, C, H, W), found shape {tuple(videos.shape)}")
        n_future = videos.shape[1] - n_past if n_future is None else n_future
        if n_past < 1 or n_future < 1 or n_past + n_future > videos.shape[1]:
            raise ValueError(f"need n_past >= 1, n_future >= 1 and n_past + n_future <= T = {videos.shape[1]}, "
                             f"found {n_past} and {n_future}")
        self.model, self.videos = model.eval(), videos
        self.n_past, self.n_future = n_past, n_future
        self.sequence, self.t = 0, 0
        self._generator = torch.Generator().manual_seed(seed)
        self.noise = {stream: self._draw() for stream in model.streams}
        self.draws = {stream: 0 for stream in model.streams}  # how often each stream was redrawn
        self._prediction = None

    @property
    def streams(self) -> tuple:
        return self.model.streams

    def _draw(self) -> torch.Tensor:
        steps = self.n_past - 1 + self.n_future  # generate draws noise for conditioning and future steps
        return torch.randn(1, steps, *self.model.latent_shape, generator=self._generator)

    def select(self, sequence: int) -> "Explorer":
        """Show test sequence ``sequence`` (same noise: the same draws, another past)."""
        if not 0 <= sequence < len(self.videos):
            raise ValueError(f"sequence must be in [0, {len(self.videos) - 1}], found {sequence}")
        if sequence != self.sequence:
            self.sequence, self._prediction = int(sequence), None
        return self

    def scrub(self, t: int) -> "Explorer":
        """Show future step ``t``, from 0 (frame ``n_past + 1``, frames counted from 1)."""
        if not 0 <= t < self.n_future:
            raise ValueError(f"t must be in [0, {self.n_future - 1}], found {t}")
        self.t = int(t)
        return self

    def resample(self, stream: str | None = None) -> "Explorer":
        """Redraw the noise of ``stream`` (one of ``self.streams``), keeping the others; ``None``
        redraws every stream."""
        names = self.streams if stream is None else (stream,)
        for name in names:
            if name not in self.streams:
                raise ValueError(f"stream must be one of {list(self.streams)} or None, found {name!r}")
            self.noise[name] = self._draw()
            self.draws[name] += 1
        self._prediction = None
        return self


# %% [markdown]
# What it shows: the prediction for the current sequence and noise (made once, then kept until
# the state changes), the true future, the sampled latents, and the images of the current step.

# %%
#| export
class Explorer(ExplorerState):
    """The explorer without widgets: :class:`ExplorerState` plus what it shows; ``prediction``,
    ``latents``, ``frame()`` and ``figure()`` read the state."""

    @property
    def prediction(self):
        """The ``Prediction`` for the current sequence and noise, tensors ``(1, 1, n_future, ...)``."""
        if self._prediction is None:
            device = next(self.model.parameters()).device
            past = self.videos[self.sequence: self.sequence + 1, :self.n_past].to(device)
            noise = {name: value.to(device) for name, value in self.noise.items()}
            self._prediction = self.model.generate(past, self.n_future, 1, noise=noise)
        return self._prediction

    @property
    def truth(self) -> torch.Tensor:
        """The true future ``(n_future, C, H, W)`` of the current sequence."""
        return self.videos[self.sequence, self.n_past: self.n_past + self.n_future].float().cpu()

    @property
    def latents(self) -> dict:
        """The sampled z of each stream over the future, ``{stream: (n_future, z)}``."""
        return {name: z[0, 0].cpu() for name, z in self.prediction.latents.items()}

    def frame(self) -> dict:
        """The images of the current step, ``{name: (C, H, W)}`` in [0, 1]: ``truth``, ``x_hat``,
        ``x_p`` and (with a motion head) ``x_f``, ``mask``, ``flow`` (colour-coded)."""
        images = stream_images(self.truth, prediction_parts(self.prediction, 0, 0))
        return {name: value[self.t] for name, value in images.items()}

    def figure(self, size: float = 1.6):
        """The current step: see :func:`explorer_figure`."""
        return explorer_figure(self, size)


# %% [markdown]
# The explorer's figure: one panel per image of the step, and below them the value of each latent
# at this step, one bar chart per stream.

# %%
#| export
KEYS = {"mask": "white: $x^p$, black: $x^f$",
        "flow": "backward: against the motion;\nhue = direction (key), vivid = long"}


def explorer_figure(explorer: Explorer, size: float = 1.6):
    """The current step: one panel per image of :func:`frame`, and below them the value of
    each latent at this step (one bar chart per stream)."""
    images = explorer.frame()
    fig = plt.figure(figsize=(size * len(images), 2 * size + 0.6))
    grid = fig.add_gridspec(2, len(images) * len(explorer.streams), height_ratios=[1, 0.7])
    for k, (name, image) in enumerate(images.items()):
        ax = fig.add_subplot(grid[0, k * len(explorer.streams): (k + 1) * len(explorer.streams)])
        ax.imshow(image.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(STREAM_TITLES[name], fontsize=8)
        if name in KEYS:  # what the grey levels and the colours mean
            ax.text(0.5, -0.04, KEYS[name], transform=ax.transAxes, ha="center", va="top", fontsize=6)
        if name == "flow":  # the colour wheel: each colour is the vector from the centre to it
            key = ax.inset_axes([0.68, 0.68, 0.32, 0.32])
            key.imshow(flow_legend(41).permute(1, 2, 0).numpy())
            key.set_axis_off()
    latents, width = explorer.latents, len(images)
    for k, name in enumerate(explorer.streams):
        ax = fig.add_subplot(grid[1, k * width: (k + 1) * width])
        z = latents[name][explorer.t].flatten()
        ax.bar(range(1, len(z) + 1), z.numpy(), color=f"C{k}")
        ax.set(ylim=(-3.5, 3.5), xticks=range(1, len(z) + 1, max(1, len(z) // 5)), xlabel="dimension")
        ax.set_title(f"${latent_symbol(explorer.model, name)}$ (draw {explorer.draws[name]})", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"sequence {explorer.sequence}, frame {explorer.n_past + explorer.t + 1} "
                 f"(future step {explorer.t + 1} of {explorer.n_future})", fontsize=9)
    fig.tight_layout()
    return fig


# %% [markdown]
# A scripted session, shown as static figures (what GitHub and CI see): sequence 1 at its 8th
# future frame; then the appearance draw is replaced and the motion draw kept.

# %%
from slamp.latents import Explorer

explorer = Explorer(slamp_model, torch.stack([test_set[i] for i in range(len(test_set))]), n_past=n_past)
explorer.select(1).scrub(7)
before = {name: z.clone() for name, z in explorer.latents.items()}
fig = explorer.figure()

# %%
noise_f = explorer.noise["motion"].clone()
images_before = explorer.frame()
explorer.resample("appearance")
after = explorer.latents
fig = explorer.figure()
images_after = explorer.frame()
assert torch.equal(explorer.noise["motion"], noise_f)  # the motion draw is kept ...
assert torch.equal(after["motion"][0], before["motion"][0])  # ... so z^f of the first future step is too
assert not torch.allclose(after["appearance"][0], before["appearance"][0])  # z^p is a new draw
print(f"first future step: |Δz^p| = {(after['appearance'][0] - before['appearance'][0]).norm():.2f},"
      f" |Δz^f| = {(after['motion'][0] - before['motion'][0]).norm():.2f}")
moved = (after["appearance"][explorer.t] - before["appearance"][explorer.t]).abs()
changed = ((images_after["x_hat"] - images_before["x_hat"]).abs() > 0.1).float().mean().item()
print(f"this step: {(moved > 0.1).sum().item()} of {moved.numel()} dimensions of z^p moved by more than 0.1 "
      f"(largest {moved.max():.2f}); {changed:.1%} of the pixels of x̂ changed by more than 0.1")
z_p = futures.latents["appearance"][0]  # (S, T, 20): the 100 samples drawn above, sequence 0
wide = z_p.std(0).mean(0)  # per dimension: how much the samples' z^p differ
print(f"z^p over {len(z_p)} samples: std {wide.max():.2f} on dimension {wide.argmax().item() + 1}, "
      f"{wide.median():.2f} (median) on the others")

# %% [markdown]
# The first future step's $z^f$ is unchanged, as promised; later steps change a little even in
# $z^f$, because each prior reads the frames generated so far. Redrawing $z^p$ moves fewer bars
# than one might expect: for the shipped model, the samples' $z^p$ differ on one of its 20
# dimensions (standard deviation about 0.8, printed) and little on the others (a median of about 0.1),
# so most of a new draw is the same. The appearance latent carries little; what a redraw changes
# in the picture is printed above (for the shipped model, at this step, a few per cent of
# $\hat x$'s pixels by more than 0.1).

# %% [markdown]
# The interactive version: pick a sequence, scrub or play through the future, redraw $z^p$, $z^f$
# or both, and watch $x^p$, $x^f$, the mask and the flow follow. It needs a live Jupyter kernel
# (locally or on Colab). Where no kernel runs (GitHub, a notebook opened without running it) the
# cell shows the explorer's figure as it was when the notebook was saved: run the cell to explore.

# %%
#| export
def explorer_widget(explorer: Explorer):
    """Jupyter controls for an :class:`Explorer`: a sequence number, a future-step slider (with a
    play button), one button per latent stream and one for all, and the explorer's figure, redrawn
    on every change. Display the returned widget in a notebook; where widgets do not render (a
    saved notebook on GitHub) it shows as a PNG of the explorer's figure at the time it was shown."""
    import base64
    import io

    import ipywidgets as widgets
    from IPython.display import display

    class ExplorerBox(widgets.VBox):
        def _repr_mimebundle_(self, **kwargs):
            data = super()._repr_mimebundle_(**kwargs)
            fig, buffer = explorer.figure(), io.BytesIO()
            fig.savefig(buffer, format="png", dpi=100)
            plt.close(fig)
            data["image/png"] = base64.b64encode(buffer.getvalue()).decode()
            data["text/plain"] = "the explorer (a static figure here: run the cell to explore)"
            return data

    output = widgets.Output()

    def redraw(*_):
        with output:
            output.clear_output(wait=True)
            fig = explorer.figure()
            display(fig)
            plt.close(fig)

    sequence = widgets.BoundedIntText(value=explorer.sequence, min=0, max=len(explorer.videos) - 1,
                                      description="sequence")
    step = widgets.IntSlider(value=explorer.t, min=0, max=explorer.n_future - 1, description="future step")
    play = widgets.Play(value=explorer.t, min=0, max=explorer.n_future - 1, interval=400)
    widgets.jslink((play, "value"), (step, "value"))
    sequence.observe(lambda change: redraw(explorer.select(change["new"])), names="value")
    step.observe(lambda change: redraw(explorer.scrub(change["new"])), names="value")
    buttons = []
    for stream in (*explorer.streams, None) if len(explorer.streams) > 1 else explorer.streams:
        label = "all" if stream is None else latent_symbol(explorer.model, stream)
        button = widgets.Button(description=f"redraw {label}")
        button.on_click(lambda _, stream=stream: redraw(explorer.resample(stream)))
        buttons.append(button)
    redraw()
    return ExplorerBox([widgets.HBox([sequence, play, step]), widgets.HBox(buttons), output])


# %%
from slamp.latents import explorer_widget

explorer_widget(explorer)

# %% [markdown]
# ## t-SNE of the latents: which one knows the motion?
#
# During training the latents come from the posteriors, which see the frame to predict:
# $z^p_t \sim q(z^p_t \mid x_{1:t})$ reads the appearance encoding of $x_t$, and
# $z^f_t \sim q(z^f_t \mid x_{1:t})$ the motion encoding of the pair $(x_{t-1}, x_t)$. If the motion
# stream does its job, $z^f_t$ should encode **how the digit moved between $t-1$ and $t$**, and $z^p_t$
# should not need to. As in the paper (Fig. 14, SVG's $z$ in Fig. 15) we run the posteriors over test
# sequences, keep every $z_t$ (the `Prediction.latents` of a training forward), and embed them with
# t-SNE, colouring each point by the digit's displacement $d_t = p_t - p_{t-1}$ (top-left corner,
# from the trajectories `MovingMNISTTestSet` keeps). The label is its compass direction, one of 8
# sectors of $45^\circ$:
#
# $$\text{label}_t = \Big\lfloor \tfrac{\operatorname{atan2}(d^{\text{row}}_t,\, d^{\text{col}}_t)}{45^\circ} + \tfrac12 \Big\rfloor \bmod 8
#   \quad (0 = \rightarrow,\ 2 = \downarrow,\ 4 = \leftarrow,\ 6 = \uparrow).$$
#
# To give every frame one unambiguous label we use sequences with **one** digit (the models were
# trained on two). A picture can mislead, so two numbers go with it, both computed in the latent
# space itself, not in the 2-D embedding: the cross-validated accuracy of a 5-nearest-neighbour
# classifier that predicts the label from $z$ (against the chance level of always guessing the most
# frequent label), and the silhouette score of the labels (from $-1$ to $1$; near 0 when the classes
# are mixed).

# %% [markdown]
# **Exercise: `motion_labels`**
#
# Write the `by="direction"` branch of `motion_labels`: the sector (of `bins`) of each step's
# displacement angle, sector 0 centred on "right" and counting clockwise on screen (rows grow
# downwards), −1 where the digit does not move. Shapes: `displacement` `(N, T−1, 2)` (row, column)
# → labels `(N, T−1)` int64. Checked on a digit moving right, down-right, down, left, up, up-left
# and not at all.
#
# The cell after the function runs the grader's own checks on it, `check(motion_labels)`: it prints
# ✓ when they pass, or ✗ and the hint the grader gives for the mistake it finds, and stops there.

# %%
#| export
DIRECTIONS = ("→", "↘", "↓", "↙", "←", "↖", "↑", "↗")  # sectors of 45°, clockwise on screen (rows grow down)


def motion_labels(positions, by: str = "direction", bins: int = 8, digit: int = 0) -> np.ndarray:
    """A label for the motion of one digit between consecutive frames, for steps ``1 .. T-1``.

    ``positions``: top-left corners (row, column) ``(N, D, T, 2)`` as kept by ``MovingMNISTTestSet``
    (``D`` digits; ``digit`` picks one) or ``(N, T, 2)``. ``by="direction"``: the sector of the
    displacement's angle, ``bins`` equal sectors with sector 0 centred on "right" and counting
    clockwise on screen (``DIRECTIONS`` names the 8 sectors), -1 where the digit does not move.
    ``by="speed"``: the displacement's length in ``bins`` classes of (nearly) equal size.
    Returns ``(N, T-1)`` int64."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim == 4:
        positions = positions[:, digit]
    if positions.ndim != 3 or positions.shape[-1] != 2:
        raise ValueError(f"positions must be (N, D, T, 2) or (N, T, 2), found {positions.shape}")
    displacement = np.diff(positions, axis=1)  # (N, T-1, 2): (row, column)
    if by == "direction":
        # BEGIN SOLUTION motion_labels
        angle = np.arctan2(displacement[..., 0], displacement[..., 1])  # clockwise on screen
        labels = np.rint(angle / (2 * np.pi / bins)).astype(np.int64) % bins
        return np.where(np.hypot(*np.moveaxis(displacement, -1, 0)) > 1e-6, labels, -1)
        # END SOLUTION
    if by == "speed":
        speed = np.hypot(displacement[..., 0], displacement[..., 1])
        edges = np.unique(np.quantile(speed, np.linspace(0, 1, bins + 1)[1:-1]))
        return np.searchsorted(edges, speed, side="right").astype(np.int64)
    raise ValueError(f"by must be 'direction' or 'speed', found {by!r}")


# %%
from slamp.exercises import check
from slamp.notebook import use

check(motion_labels)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(motion_labels)  # from here on the package runs this motion_labels: in a student's notebook, yours

# %% [markdown]
# The latents to look at are the posterior's means over test sequences: what the encoder reads off
# each step of the true video, one vector `(z,)` per step and stream.

# %%
#| export
@torch.no_grad()
def posterior_latents(model: VideoPredictor, videos: torch.Tensor, batch_size: int = 64) -> dict:
    """The latents the posteriors draw for steps ``1 .. T-1`` of ``videos`` ``(N, T, C, H, W)``
    (a training forward in eval mode): ``{stream: (N, T-1, z)}`` on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    chunks = {}
    for start in range(0, len(videos), batch_size):
        prediction = model(videos[start: start + batch_size].to(device))
        for name, z in prediction.latents.items():
            chunks.setdefault(name, []).append(z.cpu())
    return {name: torch.cat(parts) for name, parts in chunks.items()}


def _flat(features, labels):
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    features = features.reshape(len(labels), -1)
    if len(features) != len(labels):
        raise ValueError(f"features and labels must have as many items, found {len(features)} and {len(labels)}")
    return features, labels


def embed(features, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE embedding ``(N, 2)`` of ``features`` ``(N, ...)`` (flattened per item)."""
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    perplexity = min(perplexity, (len(features) - 1) / 3)  # t-SNE needs perplexity < N
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def separability(features, labels, k: int = 5, folds: int = 5, seed: int = 0) -> dict:
    """How well ``labels`` ``(N,)`` can be read from ``features`` ``(N, ...)`` (items with a
    negative label, and classes with fewer than ``folds`` items, are left out):

    ``knn_accuracy``: mean accuracy of a ``k``-nearest-neighbour classifier over ``folds``
    stratified cross-validation folds; ``chance``: the accuracy of always guessing the most frequent
    label; ``silhouette``: the silhouette score of the labels in feature space (-1 .. 1)."""
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    features, labels = _flat(features, labels)
    classes, counts = np.unique(labels[labels >= 0], return_counts=True)
    keep = np.isin(labels, classes[counts >= folds])
    features, labels = features[keep], labels[keep]
    if len(np.unique(labels)) < 2:
        raise ValueError(f"need at least 2 labels with {folds} or more items each, found {dict(zip(classes, counts))}")
    folding = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    accuracy = cross_val_score(KNeighborsClassifier(n_neighbors=k), features, labels, cv=folding).mean()
    chance = np.bincount(labels).max() / len(labels)
    return {"knn_accuracy": float(accuracy), "chance": float(chance),
            "silhouette": float(silhouette_score(features, labels)), "items": int(len(labels))}


# %% [markdown]
# First, the two measures on data whose answer we know: two well-separated Gaussian clusters, then
# the same points with labels shuffled.

# %%
from slamp.latents import DIRECTIONS, embed, motion_labels, posterior_latents, separability

rng = np.random.default_rng(0)
points = np.concatenate([rng.normal(0, 1, (100, 8)), rng.normal(6, 1, (100, 8))])
truth_labels = np.repeat([0, 1], 100)
clear, shuffled = separability(points, truth_labels), separability(points, rng.permutation(truth_labels))
print("separate clusters:", clear)
print("shuffled labels:  ", shuffled)
assert clear["knn_accuracy"] > 0.95 and clear["silhouette"] > 0.5
assert abs(shuffled["knn_accuracy"] - 0.5) < 0.15 and abs(shuffled["silhouette"]) < 0.1

# %% [markdown]
# Now the latents of SLAMP ($z^p$, $z^f$) and of SVG-LP ($z$) on one-digit test sequences of 15
# frames (5 + 10, as in training): 14 latents per sequence and stream.

# %%
one_digit = MovingMNISTTestSet.generate(num_sequences=16 if SMOKE else 200, n_frames=15, num_digits=1, seed=7)
videos = torch.stack([one_digit[i] for i in range(len(one_digit))])
direction = motion_labels(one_digit.positions, "direction").reshape(-1)
speed = motion_labels(one_digit.positions, "speed", bins=3).reshape(-1)
slamp_z, svg_z = posterior_latents(slamp_model, videos), posterior_latents(svg_model, videos)
spaces = {"SLAMP $z^f$ (motion)": slamp_z["motion"], "SLAMP $z^p$ (appearance)": slamp_z["appearance"],
          "SVG-LP $z$": svg_z["appearance"]}
spaces = {name: z.flatten(0, 1).numpy() for name, z in spaces.items()}  # (N * 14, z)
moving = direction >= 0
print(f"{len(direction)} latents per space; {np.bincount(direction[moving], minlength=8).tolist()} per direction "
      f"{' '.join(DIRECTIONS)}; {(~moving).sum()} without motion (left out)")
assert all(z.shape == (len(direction), slamp_model.config.z_dim) for z in spaces.values())

# %%
#| export viz
def show_tsne(embeddings: dict, labels, names=None, title: str | None = None, cmap: str = "hsv",
              size: float = 3.4) -> plt.Figure:
    """Scatter plots of 2-D embeddings ``{panel title: (N, 2)}``, one panel each, with every point
    coloured by its integer label ``(N,)``; ``names`` (a sequence indexed by label, or a dict) name
    the labels in the legend. The default colour map is cyclic, for directions."""
    labels = np.asarray(labels).reshape(-1)
    values = np.unique(labels)
    colours = plt.get_cmap(cmap)(np.linspace(0, 1, len(values), endpoint=False))
    fig, axes = plt.subplots(1, len(embeddings), figsize=(size * len(embeddings), size + 0.4), squeeze=False)
    for ax, (panel, points) in zip(axes[0], embeddings.items()):
        points = np.asarray(points)
        if points.shape != (len(labels), 2):
            raise ValueError(f"embedding {panel!r} must be (N, 2) with N = {len(labels)}, found {points.shape}")
        for value, colour in zip(values, colours):
            chosen = labels == value
            name = str(value) if names is None else names[value]
            ax.scatter(points[chosen, 0], points[chosen, 1], s=4, color=colour, label=name, alpha=0.8)
        ax.set_title(panel, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# %%
from slamp.viz import show_tsne

embeddings = {name: embed(z[moving]) for name, z in spaces.items()}
fig = show_tsne(embeddings, direction[moving], DIRECTIONS,
                title=f"t-SNE of the posterior latents, coloured by direction of motion ({slamp_about}; {svg_about})")

# %% [markdown]
# And the numbers, in the latent spaces themselves (not in the 2-D embeddings). The last column
# repeats the $k$-NN accuracy with the direction labels shuffled: what a space that knows nothing
# about the label scores.

# %%
scores = {}
print(f"{'latent':>26} | {'direction (8)':^33} | {'speed (3)':^33} | shuffled")
print(f"{'':>26} | {'k-NN acc.':>10} {'chance':>10} {'silhouette':>11} | {'k-NN acc.':>10} {'chance':>10} {'silhouette':>11} | k-NN acc.")
for name, z in spaces.items():
    scores[name] = {"direction": separability(z, direction), "speed": separability(z, speed),
                    "shuffled": separability(z, np.random.default_rng(1).permutation(direction))}
    d, s = scores[name]["direction"], scores[name]["speed"]
    print(f"{name.replace('$', ''):>26} | {d['knn_accuracy']:>10.3f} {d['chance']:>10.3f} {d['silhouette']:>11.3f} | "
          f"{s['knn_accuracy']:>10.3f} {s['chance']:>10.3f} {s['silhouette']:>11.3f} | {scores[name]['shuffled']['knn_accuracy']:.3f}")
motion_z, appearance_z = scores["SLAMP $z^f$ (motion)"]["direction"], scores["SLAMP $z^p$ (appearance)"]["direction"]
claim = motion_z["knn_accuracy"] > max(appearance_z["knn_accuracy"], motion_z["chance"])
print(f"\n'z^f predicts the direction of motion above chance and better than z^p' {'holds' if claim else 'does NOT hold'} "
      f"for this model (k-NN accuracy {motion_z['knn_accuracy']:.3f} vs {appearance_z['knn_accuracy']:.3f}, "
      f"chance {motion_z['chance']:.3f}).")
assert all(0 <= v["direction"]["knn_accuracy"] <= 1 and -1 <= v["direction"]["silhouette"] <= 1 for v in scores.values())
if trained:  # a shipped model, or one trained here at full settings: the paper's claim must hold
    assert claim, scores

# %% [markdown]
# **Two floors in the table.** "chance" is always guessing the most frequent label: 0.167 for the
# direction (464 of the 2,786 frames: the eight directions are not equally common), not 1/8. A
# latent that carries nothing about the label does not reach it, since a nearest-neighbour vote
# does not learn to guess the majority: it scores about what the same classifier scores with the
# labels shuffled among the frames (the last column, 0.127–0.133), near a uniform guess's 0.125.
# That is where SVG-LP's $z$ sits (0.127): it says nothing about the direction. The shipped SLAMP's
# $z^p$ (0.183) sits above the shuffled column and a little above the majority guess (0.167): it
# carries a trace of the direction, while $z^f$ (0.615) carries a lot.
#
# A model trained for a few updates (the CI smoke setting when no trained model ships) is near
# chance everywhere: its posteriors have not learned anything yet, and the check above is skipped.
# With a trained SLAMP the paper's reading can be tested: $z^f$ should predict the direction well
# above chance and better than $z^p$. Note what a posterior needs to carry: only what the prior,
# which has seen the past, cannot predict — for a digit that keeps its velocity until the next
# bounce, much of the motion is predictable, so even $z^f$ need not encode all of it. The table is
# the check; the pictures are the illustration.

# %% [markdown]
# ## Diversity: the mean of the samples blurs where the future is uncertain
#
# Draw $S$ futures $x^{(1)}, \dots, x^{(S)}$ of one sequence. Their mean $\bar x$ is sharp where
# the samples agree and blurred where they disagree. A bounce, whose new direction is random, is one
# reason to disagree, but not the only one: in the plot below (the shipped model) the spread rises
# over the first few predicted frames (printed with the plot), peaks before the first bounce and
# then falls as the samples' digits fade, with no jump at the frames right after the digits bounce
# (dotted). The model is unsure where the digits are going from the first predicted frame on.
# Averaged over samples, the squared error splits exactly into the error of the mean
# and the spread of the samples around it,
#
# $$\frac1S \sum_{s} \lVert x^{(s)} - x \rVert^2 = \lVert \bar x - x \rVert^2 +
#   \frac1S \sum_{s} \lVert x^{(s)} - \bar x \rVert^2,$$
#
# which is why the blurry mean scores better in mean squared error (and PSNR) than a typical sharp
# sample: a model judged only by one sample's error is pushed to blur. The second term, per pixel,
# is the picture of the model's uncertainty.

# %% [markdown]
# One figure shows futures throughout slamp, `show_futures`: the true frames above rows of
# predicted ones, each under the frame it predicts. `04_slamp` shows sampled futures with it,
# training (`05_training`) the samples of each validation, and `show_diversity` here the best and a
# random sample, the mean of all samples and their spread.

# %%
#| export viz
from matplotlib.figure import Figure


def show_futures(truth, rows, labels=None, n_past: int = 0, steps=None, first_frame: int = 1,
                 size: float = 1.0, title: str | None = None) -> Figure:
    """Truth above futures: the true frames ``truth`` ``(T, C, H, W)``, then one row per entry of
    ``rows`` ``(R, T - n_past, C, H, W)`` (frames after the first ``n_past`` true ones, each under
    the frame it predicts), labelled by ``labels`` (default: sample 1, 2, ...). One column per frame
    in ``steps`` (default: all), titled with its number, counted from ``first_frame``."""
    labels = [f"sample {k + 1}" for k in range(len(rows))] if labels is None else list(labels)
    shown = [("truth", truth, 0)] + [(label, frames, n_past) for label, frames in zip(labels, rows)]
    steps = list(range(len(truth))) if steps is None else list(steps)
    width, height = size * len(steps) + 1.2, size * 1.15 * len(shown) + 0.5
    figure = Figure(figsize=(width, height))  # margins by hand: a label may reach over an empty column
    figure.subplots_adjust(left=1.2 / width, right=0.99, bottom=0.01, top=1 - 0.45 / height, wspace=0.08, hspace=0.15)
    axes = figure.subplots(len(shown), len(steps), squeeze=False)
    for r, (label, frames, offset) in enumerate(shown):
        drawn = [c for c, t in enumerate(steps) if offset <= t < offset + len(frames)]
        for c, t in enumerate(steps):
            if c in drawn:
                _show(axes[r, c], frames[t - offset].detach().float().cpu().clamp(0, 1))
            else:
                axes[r, c].set_axis_off()
            if r == 0:
                future = " (future)" if n_past and t == n_past else ""
                axes[r, c].set_title(f"{first_frame + t}{future}", fontsize=8)
        if drawn:
            axes[r, drawn[0]].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def show_diversity(truth, samples, steps=None, best: int | None = None, first_frame: int = 1,
                   size: float = 1.0) -> Figure:
    """:func:`show_futures` of the ``best`` sample (if given), a random sample, the mean of all
    ``samples`` ``(S, T, C, H, W)`` and their spread (standard deviation over samples, ×2 so that
    its largest possible value, 0.5, is white) under the truth ``(T, C, H, W)``."""
    samples = samples.detach().float().cpu()
    rows = {} if best is None else {"best sample": samples[best]}
    rows["random sample"] = samples[(best + 1) % len(samples) if best is not None else 0]
    rows[f"mean of {len(samples)}"] = samples.mean(0)
    rows["spread (2 std)"] = 2 * samples.std(0, unbiased=False)
    return show_futures(truth, list(rows.values()), list(rows), steps=steps, first_frame=first_frame, size=size)


# %%
from slamp.viz import show_diversity

samples = futures.x_hat[0].cpu()  # (S, T, C, H, W), the futures drawn above
mean = samples.mean(0)
per_sample = ((samples - truth) ** 2).mean((2, 3, 4)).mean(0)  # (T,)
error_of_mean = ((mean - truth) ** 2).mean((1, 2, 3))
spread = ((samples - mean) ** 2).mean((2, 3, 4)).mean(0)
print(f"mean squared error, frame average: samples {per_sample.mean():.4f} = mean {error_of_mean.mean():.4f} "
      f"+ spread {spread.mean():.4f}")
assert torch.allclose(per_sample, error_of_mean + spread, atol=1e-6)
fig = show_diversity(truth, samples, steps_shown, best=best, first_frame=n_past + 1)
title = fig.suptitle(slamp_about, fontsize=9)
fig

# %%
frames = range(n_past + 1, n_past + n_future + 1)  # frames counted from 1
after_bounce = [int(t) + 1 for t in np.flatnonzero(test_set.bounces[0].any(0)) if t + 1 > n_past]
fig, ax = plt.subplots(figsize=(5, 2.6))
ax.plot(frames, spread, label="spread of the samples")
ax.plot(frames, error_of_mean, label="error of their mean")
ax.plot(frames, per_sample, label="mean error of a sample")
for t in after_bounce:
    ax.axvline(t, color="0.6", lw=0.8, ls=":", label="right after a bounce" if t == after_bounce[0] else None)
print(f"spread: frame {n_past + 1} {spread[0]:.4f}, frame {n_past + 3} {spread[2]:.4f}, frames {n_past + 4}-"
      f"{n_past + n_future} {spread[3:].min():.4f} to {spread[3:].max():.4f}; bounces into frames {after_bounce}")
ax.set(xlabel="frame", ylabel="mean squared error", title=f"{slamp_about}:\n{num_samples} samples of one sequence")
ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # frames are whole numbers
ax.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## Exercises and what to try next
#
# The exercise of this notebook: **`motion_labels`** (the sector of each step's direction of
# motion, clockwise on screen).
#
# * Colour the t-SNE by speed (`by="speed"`) instead of direction: which latent separates speeds?
# * In the explorer, redraw only $z^f$ several times, then only $z^p$: which one changes where the
#   digits go, which one how they look?
# * Compute `separability` of SVG-LP's $z$ and of SLAMP's $z^f$ on more sequences (the full settings)
#   and check that the gap holds.

# %% [markdown]
# ## Summary
#
# * `slamp.viz`: `prediction_parts`, `stream_images`, `show_streams` (Fig. 5/7: ground truth,
#   $\hat x$, $x^p$, $x^f$, mask, flow), `streams_strip` (for `save_gif`), `show_tsne`,
#   `show_diversity`.
# * `slamp.latents`: `trained_model` (a shipped model, else the `tiny` one trained here);
#   `Explorer` (sequence, step, the noise of each stream; redraw one stream and keep the other)
#   and `explorer_widget`; `motion_labels` (direction or speed of a digit from the test set's
#   trajectories), `posterior_latents`, `embed` (t-SNE) and `separability` ($k$-NN accuracy,
#   chance, silhouette).

# %%
print(f"notebook ran in {time.perf_counter() - started:.0f} s ({'smoke' if SMOKE else 'full'} settings, {device})")
