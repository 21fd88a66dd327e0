# %% [markdown]
# # 02 · Data
#
# SLAMP is trained and evaluated on five video datasets (the paper's Sec. 4 and App. D). One is
# synthetic and generated on the fly, four are recordings that users download themselves:
#
# | dataset | frames | channels | condition → predict (test) | train clip |
# |---|---|---|---|---|
# | Stochastic Moving MNIST | 64×64 | 1 | 5 → 20 | 5 + 10 |
# | KTH (human actions) | 64×64 | 1 | 10 → 30 | 10 + 10 |
# | BAIR (robot pushing) | 64×64 | 3 | 2 → 28 | 2 + 10 |
# | KITTI (driving) | 92×310 | 3 | 10 → 20 | 10 + 10 |
# | Cityscapes (driving) | 128×256 | 3 | 10 → 20 | 10 + 10 |
#
# This notebook builds the first, **Stochastic Moving MNIST**, on which the paper's method is
# easiest to see and cheapest to train: how a digit bounces (and why a *random* bounce makes the
# future uncertain, the whole point of a stochastic video model), why overlapping digits are
# added and clipped, how an endless training stream is seeded so that `DataLoader` workers never
# repeat each other, and how the paper's fixed test set (SRVP's) is reproduced bit for bit. Every
# clip is a float32 tensor `(T, C, H, W)` in $[0, 1]$, so a batch is `(B, T, C, H, W)`, the shape
# all models take. The cells marked `#| export` become `slamp.data.moving_mnist`.
#
# The recorded datasets, the MNIST files and the data folder are plumbing, not the paper: they are
# plain modules (`slamp.data.files`, `.mnist`, `.video`, `.kth`, `.bair`, `.kitti`, `.cityscapes`)
# with their own tests, summarised at the end of this notebook and in `data/README.md`.
#
# *Paper: Sec. 4, "Stochastic Moving MNIST" (and the datasets of Sec. 4 and App. D); its test set
# is SRVP's (Franceschi et al., 2020), which the paper's evaluation follows.*

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
#| default_exp data.moving_mnist

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython import display as ipd

from slamp.viz import save_gif, show_row

torch.manual_seed(0)
SMOKE = os.environ.get("SLAMP_SMOKE", "0") == "1"  # small settings for CI
WORK = Path(tempfile.mkdtemp(prefix="slamp-02-"))  # scratch space for the files this notebook writes

# %% [markdown]
# ## The digits
#
# Moving MNIST needs MNIST's 28×28 handwritten digits. The public SVG/SRVP/SLAMP code downloads
# them through torchvision at run time; slamp never downloads at run time. `slamp prepare mnist`
# fetches them once into the **data folder** (`$SLAMP_DATA`, else the user cache folder
# `~/.cache/slamp`, else a clone's `data/`), where `load_digits` reads them; without them it stops
# with a message that says what to run. scikit-learn's 8×8 digits (upscaled) are an explicit
# stand-in for tests only (`SLAMP_DIGITS=sklearn`), never chosen silently. The 60,000 training
# digits are torchvision's `train=True` set; the 10,000 test digits make the test sequences.

# %%
from slamp.data.mnist import fold_indices, load_digits, mnist_fold, sklearn_digits

train_digits = load_digits("train")  # MNIST, unless SLAMP_DIGITS=sklearn chose the stand-in
test_digits = load_digits("test")
print(f"digit source: {train_digits.source}")
print(f"{len(train_digits)} training digits, {len(test_digits)} test digits, {train_digits.images.dtype} {train_digits.images.shape[1:]}")
show_row([torch.from_numpy(d)[None] / 255 for d in train_digits.images[:8]],
         [f"label {l}" for l in train_digits.labels[:8]], size=1.2);

# %% [markdown]
# ### SRVP's training and validation folds
#
# Choosing the best checkpoint must not look at the test digits, so SRVP (whose Moving MNIST code
# SLAMP's public code uses) holds out part of the *training* digits: with numpy's legacy generator
# seeded with 42 it shuffles the indices $0, \dots, 59\,999$ once; the first 95% of that order
# (57,000 indices) are the training fold, the last 5% (3,000) the validation fold. Within a fold
# the digits keep their MNIST order (SRVP filters the list, it does not reorder it).
# `mnist_fold` (in `slamp.data.mnist`) does the same for any `Digits` (95% rounded down, as `int(0.95 * n)`), keeps the
# labels, and says in `source` which fold it is. Training streams draw from the training fold and
# validation clips are made from the validation fold, so the two never share a digit.

# %% [markdown]
# **Check.** The folds split the training digits into two disjoint parts of 95% and 5%.

# %%
train_fold, val_fold = mnist_fold(train_digits, "train"), mnist_fold(train_digits, "val")
print(f"train fold: {len(train_fold):,} digits, val fold: {len(val_fold):,} digits")
both = np.concatenate([fold_indices(len(train_digits), "train"), fold_indices(len(train_digits), "val")])
assert len(train_fold) == int(0.95 * len(train_digits)) and len(val_fold) == len(train_digits) - len(train_fold)
assert np.array_equal(np.sort(both), np.arange(len(train_digits)))  # disjoint, and together all of them
assert "val fold" in val_fold.source and val_fold.is_mnist == train_digits.is_mnist

# %% [markdown]
# ## Bouncing, with a random velocity
#
# A digit is a 28×28 sprite whose top-left corner $p_t = (r_t, c_t)$ (row, column) lives in the
# box $[0, 36]^2$ of a 64×64 frame. It starts at a uniformly random integer position with a
# velocity whose components are uniform integers, $v_0 \in \{-4, \dots, 4\}^2$ (pixels per frame),
# and moves in straight lines:
#
# $$p_{t+1} = p_t + v_t .$$
#
# When the straight line would leave the box, we find the moment $\tau \in [0, 1)$ it touches the
# wall, move it there, and **draw a whole new velocity** $v' \sim \mathcal{U}\{-4..4\}^2$, then
# point its component normal to the wall away from it ($v'_r \leftarrow |v'_r|$ at the top wall,
# $-|v'_r|$ at the bottom, likewise for columns). The digit spends the remaining $1 - \tau$ of the
# frame interval moving with $v'$, so positions are real numbers; the frame draws them rounded.
#
# This is the *stochastic* Moving MNIST of SVG (Denton & Fergus, 2018) in the exact form of SRVP
# (Franceschi et al., 2020), whose data code the public SLAMP code uses. In the *deterministic*
# variant the wall only reverses the normal component, $v'_r = -v_r$, and the whole future follows
# from two frames. Two details follow SRVP: a new normal component may be 0 (the digit then slides
# along the wall), and a digit may start with zero velocity.

# %%
#| export
"""Stochastic Moving MNIST (Denton & Fergus 2018, in the form of Franceschi et al. 2020): MNIST
digits bouncing in a 64x64 frame, drawing a new random velocity at every bounce."""
import itertools
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from slamp.data.files import (NPZ_READ_ERRORS, DataError, MissingDataError, atomic_path, check_frames, data_home,
                              find_data, to_video_tensor, uint8_sha256)
from slamp.data.mnist import Digits, load_digits

_WALL_TOLERANCE = 1e-9  # two walls reached within this time count as one corner hit
_MAX_BOUNCES_PER_FRAME = 100  # bounces in one frame interval: 1 or 2 in practice, this guards a loop


def _time_to_wall(position: float, velocity: float, high: float) -> float:
    """Time until a coordinate moving at ``velocity`` leaves [0, high] (inf if it does not move)."""
    if velocity > 0:
        return max((high - position) / velocity, 0.0)
    if velocity < 0:
        return max(-position / velocity, 0.0)
    return math.inf


def random_velocity(rng: np.random.Generator, max_speed: int) -> list[float]:
    """A velocity (row, column) with components uniform in {-max_speed, ..., max_speed}."""
    return [float(v) for v in rng.integers(-max_speed, max_speed + 1, size=2)]


def advance(position, velocity, high, rng=None, max_speed: int = 4, stochastic: bool = True):
    """Move a point for one frame interval inside the box [0, high[0]] x [0, high[1]].

    ``position`` and ``velocity`` are (row, column) pairs. At a wall, ``stochastic`` draws a new
    velocity from ``rng`` and points its normal component away from the wall; otherwise the normal
    component is reversed. Returns ``(position, velocity, bounced)``."""
    position, velocity = [float(p) for p in position], [float(v) for v in velocity]
    remaining, bounced = 1.0, False
    for _ in range(_MAX_BOUNCES_PER_FRAME):
        times = [_time_to_wall(position[a], velocity[a], high[a]) for a in (0, 1)]
        hit = min(times)
        if hit >= remaining:
            return [p + v * remaining for p, v in zip(position, velocity)], velocity, bounced
        position = [p + v * hit for p, v in zip(position, velocity)]
        remaining -= hit
        walls = {a: velocity[a] > 0 for a in (0, 1) if times[a] <= hit + _WALL_TOLERANCE}  # axis: at its high wall?
        for axis, at_high in walls.items():
            position[axis] = float(high[axis]) if at_high else 0.0  # exactly on the wall, never outside
        if stochastic:
            velocity = random_velocity(rng, max_speed)
        for axis, at_high in walls.items():
            velocity[axis] = -abs(velocity[axis]) if at_high else abs(velocity[axis])
        bounced = True
    raise RuntimeError(f"no way out of the walls after {_MAX_BOUNCES_PER_FRAME} bounces at {position}")

# %% [markdown]
# A trajectory is `advance` applied frame after frame: the positions `(T, 2)` of the top-left
# corner, the velocity the digit had in each frame, and whether it bounced on the way there.

# %%
#| export
def bounce_trajectory(position, velocity, n_frames: int, high, rng=None, max_speed: int = 4,
                      stochastic: bool = True):
    """Positions of a bouncing point over ``n_frames`` frames, starting at ``position``.

    Returns ``positions (T, 2)`` (real (row, column)), ``velocities (T, 2)`` (the velocity the
    point has when frame t is shown, i.e. the one it leaves with) and ``bounces (T,)`` (True if it
    bounced between frames t-1 and t). Continuing from ``positions[t], velocities[t]`` reproduces
    the rest of the path up to the next bounce."""
    if stochastic and rng is None:
        raise ValueError("a stochastic trajectory needs a random generator rng")
    positions, velocities, bounces = [], [], []
    bounced = False
    for _ in range(n_frames):
        positions.append(position)
        velocities.append(velocity)
        bounces.append(bounced)
        position, velocity, bounced = advance(position, velocity, high, rng, max_speed, stochastic)
    return (np.array(positions, dtype=np.float64).reshape(n_frames, 2),
            np.array(velocities, dtype=np.float64).reshape(n_frames, 2), np.array(bounces, dtype=bool))


# %% [markdown]
# Three checks: the point never leaves the box; in deterministic mode each velocity component
# keeps its size; in stochastic mode the velocity changes only at bounces.

# %%
rng = np.random.default_rng(0)
high = (36, 36)
for stochastic in (True, False):
    for _ in range(200):
        start = rng.integers(0, 37, size=2).tolist()
        positions, velocities, bounces = bounce_trajectory(start, random_velocity(rng, 4), 40, high, rng,
                                                           stochastic=stochastic)
        assert (positions >= 0).all() and (positions <= 36).all()
        changed = (velocities[1:] != velocities[:-1]).any(axis=1)
        assert not (changed & ~bounces[1:]).any()  # a new velocity only after a bounce
        if not stochastic:
            assert (np.abs(velocities) == np.abs(velocities[0])).all()
print("trajectories stay in the box; velocities change only at bounces")

# %% [markdown]
# One trajectory of 60 frames from the same start, deterministic and stochastic. Dots mark the
# frames, coloured by frame number (the colour bar: frame 1 dark blue, frame 60 yellow), crosses
# the frames right after a bounce.

# %%
fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.4), layout="constrained")
for ax, stochastic in zip(axes, (False, True)):
    positions, _, bounces = bounce_trajectory([10, 5], [3, 2], 60, high, np.random.default_rng(3),
                                              stochastic=stochastic)
    ax.plot(positions[:, 1], positions[:, 0], "-", lw=0.8, color="0.6")
    dots = ax.scatter(positions[:, 1], positions[:, 0], c=np.arange(1, 61), s=10, cmap="viridis")
    ax.scatter(positions[bounces, 1], positions[bounces, 0], marker="x", color="red", s=30)
    ax.set(xlim=(-2, 38), ylim=(38, -2), aspect="equal", title="stochastic" if stochastic else "deterministic",
           xlabel="column of the top-left corner", ylabel="row")
fig.colorbar(dots, ax=axes, label="frame", shrink=0.85);

# %% [markdown]
# ## Drawing frames: add, then clip
#
# Each digit is pasted at its rounded position and the digits are **added**, then clipped to 255:
#
# $$x_t = \min\Big(255,\ \sum_n \mathrm{paste}(d_n, \mathrm{round}(p^n_t))\Big).$$
#
# This is what both SVG (`x[x > 1] = 1` on floats) and SRVP (`x[x > 255] = 255` on bytes) do. We
# keep it rather than a per-pixel maximum because test-set numbers are only comparable on the same
# data, and because it is the more physical picture of two bright strokes on a dark screen: where
# two strokes cross, the light adds up (and saturates); with a maximum, the grey anti-aliased
# edges of one digit would vanish under the other digit's edges.

# %% [markdown]
# **Exercise: `render_digits`**
#
# Write the end of `render_digits`: draw each digit at its rounded top-left corner in every frame,
# **adding** the ink where digits overlap, then clip to 255. Shapes: digits `(N, h, w)` uint8,
# positions `(N, T, 2)` (row, column) → frames `(T, frame_size, frame_size)` uint8. Checked on two
# small digits drawn over each other and apart.
#
# The cell after the function runs the grader's own checks on it, `check(render_digits)`: it prints
# ✓ when they pass, or ✗ and the hint the grader gives for the mistake it finds, and stops there.

# %%
#| export
def render_digits(digit_images: np.ndarray, positions: np.ndarray, frame_size: int = 64) -> np.ndarray:
    """Frames ``(T, H, W)`` uint8 of digits ``(N, h, w)`` uint8 whose top-left corners are at
    ``positions (N, T, 2)`` (rounded to pixels); overlapping digits are added, then clipped to 255."""
    n_digits, height, width = digit_images.shape
    corners = np.rint(positions).astype(np.int64)
    if corners.shape[:1] != (n_digits,) or corners.ndim != 3:
        raise ValueError(f"positions must be (N, T, 2) with N = {n_digits}, found {positions.shape}")
    if corners.min(initial=0) < 0 or (corners + [height, width]).max(initial=0) > frame_size:
        raise ValueError(f"a digit of {height}x{width} at these positions leaves the {frame_size}x{frame_size} frame")
    frames = np.zeros((corners.shape[1], frame_size, frame_size), dtype=np.uint16)
    # BEGIN SOLUTION render_digits
    for digit, path in zip(digit_images, corners):
        for t, (row, column) in enumerate(path):
            frames[t, row:row + height, column:column + width] += digit
    return np.minimum(frames, 255).astype(np.uint8)
    # END SOLUTION


# %%
from slamp.exercises import check
from slamp.notebook import use

check(render_digits)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(render_digits)  # from here on the package runs this render_digits: in a student's notebook, yours

# %%
two = train_digits.images[:2]
overlap = render_digits(two, np.array([[[10, 10]], [[14, 14]]]))[0]
alone = [render_digits(two[i:i + 1], np.array([[[10 + 4 * i, 10 + 4 * i]]]))[0].astype(int) for i in (0, 1)]
assert np.array_equal(overlap, np.minimum(alone[0] + alone[1], 255))
print(f"pixels where both digits have ink: {((alone[0] > 0) & (alone[1] > 0)).sum()}, saturated at 255: {(overlap == 255).sum()}")

# %% [markdown]
# ## Sequences and the endless training stream
#
# A sequence draws `num_digits` digits (two by default; one also works), a start and a trajectory
# for each, and renders the frames. For training, the public code samples a fresh sequence every
# time; there is no fixed training set. We write that as an `IterableDataset`, an endless stream.
#
# **Seeding.** With `num_workers > 0`, a `DataLoader` runs a copy of the dataset in each worker
# process. If every copy drew from the same random state, every worker would yield the *same*
# sequences (a classic bug: with 4 workers, each batch appears 4 times). We instead derive the
# random generator of the $k$-th sequence of worker $w$ from the tuple
# `(seed, epoch, shard, w, k)` with numpy's `SeedSequence`, which mixes such tuples into
# statistically independent streams. So:
#
# * workers never repeat each other, and the stream is reproducible from `seed` alone (for a given
#   number of workers);
# * `set_epoch(e)` starts a different stream, for loaders that are re-created every epoch;
# * `shard` separates processes in distributed training (pass the rank).

# %%
#| export
@dataclass
class MovingMNISTSample:
    """One sequence: ``frames (T, H, W)`` uint8, and per digit: ``positions (N, T, 2)`` (top-left
    corner, row and column), ``velocities (N, T, 2)``, ``bounces (N, T)`` and ``digit_indices (N,)``."""
    frames: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    bounces: np.ndarray
    digit_indices: np.ndarray


def sample_sequence(digit_images: np.ndarray, n_frames: int, rng: np.random.Generator, num_digits: int = 2,
                    frame_size: int = 64, max_speed: int = 4, stochastic: bool = True) -> MovingMNISTSample:
    """Draw digits (from ``digit_images (M, h, w)`` uint8), starts and trajectories, and render
    ``n_frames`` frames; every random number comes from ``rng``."""
    _, height, width = digit_images.shape
    high = (frame_size - height, frame_size - width)
    if min(high) < 0:
        raise ValueError(f"digits of {height}x{width} do not fit in a {frame_size}x{frame_size} frame")
    indices = rng.integers(len(digit_images), size=num_digits)
    paths = []
    for _ in range(num_digits):
        start = [float(rng.integers(0, high[0] + 1)), float(rng.integers(0, high[1] + 1))]
        paths.append(bounce_trajectory(start, random_velocity(rng, max_speed), n_frames, high, rng,
                                       max_speed, stochastic))
    positions, velocities, bounces = (np.stack(parts) for parts in zip(*paths))
    frames = render_digits(digit_images[indices], positions, frame_size)
    return MovingMNISTSample(frames, positions, velocities, bounces, indices)

# %% [markdown]
# The stream checks its settings once, takes the digits it is given (or loads them by name), and
# yields, for item $k$ of worker $w$, the `sample_sequence` of the generator seeded with
# `(seed, epoch, shard, w, k)`.

# %%
#| export
def _check_config(n_frames, num_digits, max_speed, seed):
    if n_frames < 1 or num_digits < 1 or max_speed < 0 or seed < 0:
        raise ValueError(f"need n_frames >= 1, num_digits >= 1, max_speed >= 0, seed >= 0; found "
                         f"{n_frames}, {num_digits}, {max_speed}, {seed}")


def digits_for(split: str, digits: Digits | str | None) -> Digits:
    """``digits`` as given, or, for a source name or None, what :func:`~slamp.data.mnist.load_digits`
    gives for ``split`` (duck-typed: a notebook's own ``Digits`` class is accepted too)."""
    return load_digits(split, digits) if digits is None or isinstance(digits, str) else digits


class StochasticMovingMNIST(IterableDataset):
    """An endless stream of Moving MNIST sequences ``(T, 1, H, W)`` float32 in [0, 1] (batches
    ``(B, T, 1, H, W)``), drawn on the fly from ``digits``: :class:`Digits`, or a source for
    :func:`~slamp.data.mnist.load_digits` ("mnist", "sklearn"; default: ``$SLAMP_DIGITS``, else MNIST).

    Sequence ``k`` of DataLoader worker ``w`` is generated from ``(seed, epoch, shard, w, k)``:
    workers never repeat each other and the stream is reproducible from the seed."""

    def __init__(self, digits: Digits | str | None = None, n_frames: int = 15, num_digits: int = 2,
                 frame_size: int = 64, max_speed: int = 4, seed: int = 0, stochastic: bool = True, shard: int = 0):
        _check_config(n_frames, num_digits, max_speed, seed)
        self.digits = digits_for("train", digits)
        self.n_frames, self.num_digits, self.frame_size = n_frames, num_digits, frame_size
        self.max_speed, self.seed, self.stochastic, self.shard = max_speed, seed, stochastic, shard
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Switch to the stream of another epoch (call before creating the DataLoader iterator)."""
        self.epoch = int(epoch)

    def sample(self, index: int, worker: int = 0) -> MovingMNISTSample:
        """Sequence ``index`` of worker ``worker``'s stream, with its trajectories."""
        rng = np.random.default_rng([self.seed, self.epoch, self.shard, worker, index])
        return sample_sequence(self.digits.images, self.n_frames, rng, self.num_digits, self.frame_size,
                               self.max_speed, self.stochastic)

    def __iter__(self):
        info = get_worker_info()
        worker = 0 if info is None else info.id
        for index in itertools.count():
            yield to_video_tensor(self.sample(index, worker).frames)


# %% [markdown]
# A batch from a `DataLoader`, and the seeding at work: worker 1's stream differs from worker 0's,
# and the same seed gives the same stream (`tests/test_data_moving_mnist.py` checks the same with
# real worker processes).

# %%
stream = StochasticMovingMNIST(train_digits, n_frames=15, seed=0)
batch = next(iter(torch.utils.data.DataLoader(stream, batch_size=8)))
print("batch:", tuple(batch.shape), batch.dtype, f"values in [{batch.min():.0f}, {batch.max():.0f}]")
assert batch.shape == (8, 15, 1, 64, 64)

again = StochasticMovingMNIST(train_digits, n_frames=15, seed=0)
assert np.array_equal(stream.sample(3).frames, again.sample(3).frames)
assert not np.array_equal(stream.sample(3, worker=0).frames, stream.sample(3, worker=1).frames)
stream.set_epoch(1)
assert not np.array_equal(stream.sample(3).frames, again.sample(3).frames)

# %% [markdown]
# Eight sequences of 15 frames, one per row:

# %%
def show_videos(videos: torch.Tensor, title: str = ""):
    """A grid of videos (B, T, C, H, W) in [0, 1]: one row per video, one column per frame."""
    b, t, c, h, w = videos.shape
    grid = torch.ones(c, b * (h + 2), t * (w + 2))
    for i in range(b):
        for j in range(t):
            grid[:, i * (h + 2):i * (h + 2) + h, j * (w + 2):j * (w + 2) + w] = videos[i, j]
    fig, ax = plt.subplots(figsize=(0.55 * t + 0.5, 0.55 * b + 0.4))
    ax.imshow(grid.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([j * (w + 2) + w / 2 for j in range(t)])
    ax.set_xticklabels(range(1, t + 1), fontsize=7)  # frames from 1
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


show_videos(batch, "Stochastic Moving MNIST: 8 sequences, frames 1-15");

# %% [markdown]
# And as a movie: `save_gif` from `01_flow_warping`, four sequences side by side.

# %%
movie = torch.cat(list(batch[:4]), dim=-1)  # (T, 1, 64, 4 * 64)
gif = save_gif(movie, WORK / "moving_mnist.gif", fps=6, scale=2)
ipd.display(ipd.Image(filename=str(gif)))

# %% [markdown]
# ## A bounce and a collision
#
# Both events are rare in a short clip, so we search seeded sequences for them: a bounce in the
# middle of the clip (with one digit, to see it clearly), and a *collision*, a frame where the ink
# of two digits overlaps (the digits pass through each other; there is no physics between digits).

# %%
def find_sequence(condition, num_digits=2, n_frames=15, seed=7, tries=2000):
    """The first seeded sequence (of a training stream with this seed) for which condition holds,
    among those whose digits are not 1s (too thin to see moving)."""
    search = StochasticMovingMNIST(train_digits, n_frames=n_frames, num_digits=num_digits, seed=seed)
    for index in range(tries):
        sample = search.sample(index)
        if (train_digits.labels[sample.digit_indices] != 1).all() and condition(sample):
            return index, sample
    raise RuntimeError("no sequence found")


def ink_overlap(sample):
    """Per frame: does the ink of digit 0 overlap the ink of digit 1?"""
    digits = train_digits.images[sample.digit_indices]
    ink = [render_digits(digits[n:n + 1], sample.positions[n:n + 1]) > 0 for n in (0, 1)]
    return (ink[0] & ink[1]).any(axis=(1, 2))


def clear_bounce(s):
    """Digit 0 bounces once, mid-clip, and its new velocity is far from a mirror reflection."""
    if not s.bounces[0, 6:9].any() or s.bounces[0, :6].any():
        return False
    t = 6 + int(np.argmax(s.bounces[0, 6:9]))
    return np.abs(np.abs(s.velocities[0, t]) - np.abs(s.velocities[0, t - 1])).sum() >= 4


index, bounce = find_sequence(clear_bounce, num_digits=1)
t_bounce = 6 + int(np.argmax(bounce.bounces[0, 6:9]))
frames = range(t_bounce - 3, t_bounce + 3)
print(f"sequence {index}: the digit bounces between frames {t_bounce} and {t_bounce + 1}; velocity "
      f"{bounce.velocities[0, t_bounce - 1].astype(int).tolist()} -> {bounce.velocities[0, t_bounce].astype(int).tolist()}")
show_row([torch.from_numpy(bounce.frames[t])[None] / 255 for t in frames],
         [f"frame {t + 1}" + (" bounced" if t == t_bounce else "") for t in frames], size=1.5);  # index t: frame t + 1

# %%
index, collision = find_sequence(lambda s: ink_overlap(s)[5:10].any())
touching = ink_overlap(collision)
t_hit = 5 + int(np.argmax(touching[5:10]))
frames = range(max(t_hit - 3, 0), min(t_hit + 3, 15))
print(f"sequence {index}: the digits overlap in frames {(np.flatnonzero(touching) + 1).tolist()}")
show_row([torch.from_numpy(collision.frames[t])[None] / 255 for t in frames],
         [f"frame {t + 1}" + (" overlap" if touching[t] else "") for t in frames], size=1.5);

# %% [markdown]
# ## Why a random bounce makes the future uncertain
#
# Take one past (5 frames, the test protocol's conditioning) of a digit about to hit a wall, and
# continue it several times from the *same* state (exact position and velocity at frame 5, the last of the past) with
# different random generators. Until the bounce all continuations agree; after it, each
# leaves the wall in its own direction. Nothing in the past tells which one will happen: the
# future is a *distribution*. A deterministic predictor trained with a squared error would predict
# the mean of that distribution, the blurred last row below. SLAMP (like SVG) instead samples a
# latent variable per frame and draws one sharp future at a time; evaluation compares the best of
# many samples with the truth.

# %%
def continuations(sample, t_past, n_future, n_samples, stochastic=True, seed=0):
    """Frames (K, t_past + n_future, H, W) uint8: the sample's first t_past frames, then K random
    continuations of its digits from their state in the last past frame (index t_past - 1)."""
    digits = train_digits.images[sample.digit_indices]
    videos = []
    for k in range(n_samples):
        rng = np.random.default_rng([seed, k])
        futures = [bounce_trajectory(sample.positions[n, t_past - 1], sample.velocities[n, t_past - 1], n_future + 1,
                                     (36, 36), rng, stochastic=stochastic)[0][1:] for n in range(len(digits))]
        positions = np.concatenate([sample.positions[:, :t_past], np.stack(futures)], axis=1)
        videos.append(render_digits(digits, positions))
    return np.stack(videos)


t_past, n_future, n_samples = 5, 10, (6 if SMOKE else 16)
index, about_to_bounce = find_sequence(lambda s: s.bounces[0, 6:8].any() and not s.bounces[0, :6].any(), num_digits=1)
futures = continuations(about_to_bounce, t_past, n_future, n_samples)
assert np.array_equal(futures[:, :t_past], np.broadcast_to(about_to_bounce.frames[:t_past], futures[:, :t_past].shape))
assert len({futures[k].tobytes() for k in range(n_samples)}) > 1  # the futures differ ...
same = continuations(about_to_bounce, t_past, n_future, 3, stochastic=False)
assert (same == same[0]).all()  # ... and would not with deterministic bounces
videos = torch.from_numpy(futures[:5]).unsqueeze(2) / 255
mean = torch.from_numpy(futures.astype(np.float32).mean(0)).unsqueeze(1)[None] / 255
show_videos(torch.cat([videos, mean]), f"one past (frames 1-5), 5 sampled futures, and the mean of {n_samples} futures (last row)");

# %% [markdown]
# The top-left corner of the digit in all continuations: one path up to the wall, a fan after it.

# %%
fig, ax = plt.subplots(figsize=(3.4, 3.4))
for k in range(n_samples):
    rng = np.random.default_rng([0, k])
    path = bounce_trajectory(about_to_bounce.positions[0, t_past - 1], about_to_bounce.velocities[0, t_past - 1],
                             n_future + 1, (36, 36), rng)[0]
    ax.plot(path[:, 1], path[:, 0], "-", lw=1, alpha=0.7)
past = about_to_bounce.positions[0, :t_past]
ax.plot(past[:, 1], past[:, 0], "k.-", lw=2, label="the past")
ax.set(xlim=(-2, 38), ylim=(38, -2), aspect="equal", xlabel="column", ylabel="row")
ax.legend(loc="best", fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## The test set: SRVP's 5,000 sequences, bit for bit
#
# Test numbers are only comparable on the same sequences, and SLAMP's Table 1 reports its Moving
# MNIST scores on the fixed test set that SRVP (Franceschi et al., 2020) made once and shipped
# with its code. We rebuild exactly that set, pixel for pixel, rather than a set "of the same
# kind". Its recipe:
#
# * **One random stream.** Everything comes from numpy's legacy generator,
#   `np.random.RandomState(42)`, in a fixed order.
# * **Every test digit exactly once.** The stream first draws one permutation $\pi$ of the 10,000
#   MNIST test digits; sequence $i$ shows digits $\pi(2i)$ and $\pi(2i+1)$. Hence
#   **10,000 / 2 = 5,000 sequences**, no digit repeated and none left out.
# * **Trajectories next, from the same stream**, sequence after sequence and, inside a sequence,
#   digit after digit: a start row, a start column and a velocity (row, then column) by four
#   integer draws, then two draws (row, column) at every wall bounce. The step after the last
#   frame is never taken: with 25 frames there are 24 moves per digit, so the stream is not
#   consumed by a bounce nobody sees.
# * **25 frames** (5 to condition on, 20 to predict), digits added and clipped at 255, uint8.
#
# Because one stream feeds the whole set, sequence $i$ depends on everything drawn before it; the
# first $k$ sequences, on the other hand, only need the beginning of the stream, so
# `generate(num_sequences=k)` is cheap and returns exactly the first $k$ sequences of the full set.
#
# **The arithmetic matters.** The bounces obey the same law as `advance` above, but SRVP computes
# them in another order: it first moves the digit the whole frame interval, and if it ended up
# beyond a wall (by more than $10^{-8}$), it goes back along the straight path, finds the crossing
# point from the line through the two positions (column = slope · row + intercept), and spends
# the time left after the crossing with the new velocity. A corner counts as one bounce when both
# crossings land on the box (within $10^{-8}$); a zero velocity component is a special case with
# no slope. Positions after a bounce are often exact halves, and the last bit of a floating-point
# result then decides on which pixel a digit lands (rounding to the nearest, halves to even). With
# `advance`'s arithmetic and the same random draws, 180 of the 5,000 sequences differ somewhere
# by one pixel. So the test set has its own step, `srvp_step`, that does the same operations in
# the same order; the training stream keeps `advance` (its law is the same, and changing it would
# change every existing training run).
#
# We checked the result against SRVP's own script, `preprocessing/mmnist/make_test_set.py
# --seq_len 25`, run on the same digits: all 5,000 × 25 frames are equal, and so are the rounded
# positions and velocities it records.

# %%
#| export
_SRVP_TOLERANCE = 1e-8  # how far beyond a wall a point must be to count as outside (SRVP's)


def _beyond_walls(row: float, col: float, high) -> list[bool]:
    """Which walls of [0, high[0]] x [0, high[1]] the point is beyond: rows below 0, rows above
    high[0], columns below 0, columns above high[1]."""
    return [row < -_SRVP_TOLERANCE, row > high[0] + _SRVP_TOLERANCE,
            col < -_SRVP_TOLERANCE, col > high[1] + _SRVP_TOLERANCE]


def _wall_crossing(row: float, col: float, v_row: int, v_col: int, high, beyond: list[bool]):
    """Where the straight path that reached ``(row, col)`` with velocity ``(v_row, v_col)`` met the
    walls it is ``beyond``. A wall whose crossing lies off the box (the path met another wall
    first) is dropped from the list; when two remain (a corner), the point is that of the column
    wall. Returns ``(crossing (row, col), walls)``."""
    walls = list(beyond)
    if v_row == 0:  # moving along a row: only a column wall can have been crossed
        return (row, 0 if walls[2] else high[1]), walls
    if v_col == 0:
        return (0 if walls[0] else high[0], col), walls
    slope = v_col / v_row
    intercept = col - slope * row
    crossing = None
    for k, wall in enumerate((0, high[0], 0, high[1])):
        if walls[k]:
            point = (wall, slope * wall + intercept) if k < 2 else ((wall - intercept) / slope, wall)
            other, extent = (point[1], high[1]) if k < 2 else (point[0], high[0])
            walls[k] = -_SRVP_TOLERANCE <= other <= extent + _SRVP_TOLERANCE
            crossing = point if walls[k] else crossing
    if crossing is None:
        raise RuntimeError(f"the path to {(row, col)} with velocity {(v_row, v_col)} crosses no wall of the box")
    return crossing, walls


def srvp_step(position, velocity, high, rng: np.random.RandomState | None = None, max_speed: int = 4,
              stochastic: bool = True):
    """One frame interval computed as SRVP's test set computes it: move by ``velocity``; while the
    point is beyond a wall, go back to where its path crossed it, draw a new velocity (row, then
    column, two ``rng.randint`` draws; ``stochastic=False`` keeps it), point its normal component
    away from that wall and move for the time that was left. Returns ``(position, velocity, bounced)``."""
    (row, col), (v_row, v_col) = (float(p) for p in position), (int(v) for v in velocity)
    row, col = row + v_row, col + v_col
    beyond, bounced = _beyond_walls(row, col, high), False
    for _ in range(_MAX_BOUNCES_PER_FRAME):
        if not any(beyond):
            return [row, col], [v_row, v_col], bounced
        (at_row, at_col), walls = _wall_crossing(row, col, v_row, v_col, high, beyond)
        left = (row - at_row) / v_row if v_row != 0 else (col - at_col) / v_col  # time after the crossing
        if stochastic:
            v_row = int(rng.randint(-max_speed, max_speed + 1))
            v_col = int(rng.randint(-max_speed, max_speed + 1))
        v_row = abs(v_row) if walls[0] else -abs(v_row) if walls[1] else v_row
        v_col = abs(v_col) if walls[2] else -abs(v_col) if walls[3] else v_col
        row, col = at_row + v_row * left, at_col + v_col * left
        beyond, bounced = _beyond_walls(row, col, high), True
    raise RuntimeError(f"no way out of the walls after {_MAX_BOUNCES_PER_FRAME} bounces at {(row, col)}")

# %% [markdown]
# A trajectory draws a start (four draws of the shared generator: row, column, then the velocity)
# and steps; `srvp_sequences` draws the order of the digits once and then two trajectories per
# sequence, every number from one `RandomState(42)`, in SRVP's order.

# %%
#| export
def srvp_trajectory(n_frames: int, high, rng: np.random.RandomState, max_speed: int = 4, stochastic: bool = True):
    """A start drawn from ``rng`` (row, column, then the velocity's row and column: four ``randint``
    draws) and ``n_frames - 1`` steps of :func:`srvp_step` (none after the last frame). Returns
    ``positions (T, 2)``, ``velocities (T, 2)`` and ``bounces (T,)`` as :func:`bounce_trajectory` does."""
    position = [float(rng.randint(0, high[0] + 1)), float(rng.randint(0, high[1] + 1))]
    velocity = [int(rng.randint(-max_speed, max_speed + 1)), int(rng.randint(-max_speed, max_speed + 1))]
    path = [(position, velocity, False)]
    for _ in range(n_frames - 1):
        position, velocity, bounced = srvp_step(position, velocity, high, rng, max_speed, stochastic)
        path.append((position, velocity, bounced))
    positions, velocities, bounces = zip(*path)
    return (np.array(positions, dtype=np.float64), np.array(velocities, dtype=np.float64),
            np.array(bounces, dtype=bool))


def srvp_sequences(digit_images: np.ndarray, num_sequences: int | None = None, n_frames: int = 25,
                   num_digits: int = 2, frame_size: int = 64, max_speed: int = 4, seed: int = 42,
                   stochastic: bool = True):
    """SRVP's test sequences from ``digit_images (M, h, w)`` uint8, as :class:`MovingMNISTSample`:
    ``RandomState(seed)`` permutes the digits once, sequence ``i`` shows digits
    ``perm[i * num_digits + n]`` (at most ``M // num_digits`` sequences, the default), and the same
    stream then gives the trajectories, digit after digit, sequence after sequence."""
    _, height, width = digit_images.shape
    high = (frame_size - height, frame_size - width)
    most = len(digit_images) // num_digits
    num_sequences = most if num_sequences is None else num_sequences
    if not 0 <= num_sequences <= most:
        raise ValueError(f"{len(digit_images)} digits, each used once, make at most {most} sequences of "
                         f"{num_digits} digits, not {num_sequences}")
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(digit_images))
    samples = []
    for i in range(num_sequences):
        indices = order[i * num_digits:(i + 1) * num_digits]
        paths = [srvp_trajectory(n_frames, high, rng, max_speed, stochastic) for _ in indices]
        positions, velocities, bounces = (np.stack(parts) for parts in zip(*paths))
        samples.append(MovingMNISTSample(render_digits(digit_images[indices], positions, frame_size), positions,
                                         velocities, bounces, indices))
    return samples


# %% [markdown]
# **Check.** A digit at row 34 moving down by 4 reaches the wall (row 36) halfway through the
# interval and spends the other half with its new velocity, pointed up; the same arithmetic gives
# the same result as `advance` here (no rounding subtleties), and a digit that does not reach a
# wall draws nothing. The first sequences of a set do not depend on how many are made, and every
# digit appears once.

# %%
rng = np.random.RandomState(0)
expected = np.random.RandomState(0).randint(-4, 5, size=2)  # the draws a bounce will take
position, velocity, bounced = srvp_step([34, 10], [4, 1], (36, 36), rng)
assert bounced and velocity == [-abs(expected[0]), expected[1]]
assert position == [36 - abs(expected[0]) * 0.5, 10.5 + expected[1] * 0.5]
before = rng.get_state()
assert srvp_step([10, 10], [4, -4], (36, 36), rng) == ([14.0, 6.0], [4, -4], False)
assert rng.get_state()[2] == before[2] and np.array_equal(rng.get_state()[1], before[1])  # no bounce, no draw
few = srvp_sequences(test_digits.images, num_sequences=3)
more = srvp_sequences(test_digits.images, num_sequences=6)
assert all(np.array_equal(a.frames, b.frames) for a, b in zip(few, more))
used = np.concatenate([s.digit_indices for s in more])
assert len(set(used.tolist())) == len(used)  # no digit twice
print(f"{len(test_digits) // 2} sequences from {len(test_digits)} test digits; sequence 0 shows digits "
      f"{more[0].digit_indices.tolist()} (labels {test_digits.labels[more[0].digit_indices].tolist()})")

# %% [markdown]
# ## Frozen once, then reloaded and checked
#
# `MovingMNISTTestSet` keeps the frames `(N, T, H, W)` uint8 together with the trajectories (the
# real-valued top-left corners, float64, and where the bounces are), the digit indices and the
# settings. `MovingMNISTTestSet.generate()` makes it, by default SRVP's set from the MNIST test
# digits (`protocol="srvp"`); `protocol="per-sequence"` is an older variant of this project, kept
# for the validation clips of `05_training` (sequence $i$ from its own generator seeded with
# `(seed, i)`, digits drawn with replacement): it is *not* the paper's test set.
#
# `MovingMNISTTestSet.cached(path)` saves the set to a compressed `.npz` once and reloads it
# afterwards, checking that it was made with the requested settings **and from the same digits**:
# the check includes the SHA-256 of the digit images and whether they were MNIST, and the default
# file name says where the digits came from, `<data folder>/mnist/smmnist_test_srvp_2digits_25frames_seed42_mnist.npz`
# (`..._sklearn.npz` for scikit-learn's stand-in digits). A set drawn from the stand-in can
# therefore never be reloaded as the MNIST set.
#
# **A fingerprint.** `np.savez_compressed` files are not byte-for-byte reproducible (the zip
# records times), so the fingerprint of a set is the SHA-256 of its frames themselves:
# `test_set.sha256()` hashes `sequences.tobytes()`, the uint8 array of shape
# `(N, T, H, W) = (5000, 25, 64, 64)` (sequence, frame, row, column) in C order, 512,000,000
# bytes. SRVP's file stores `sequences` as `(T, N, H, W)`; the same bytes are
# `np.ascontiguousarray(sequences.transpose(1, 0, 2, 3))`. For SRVP's set from the MNIST test
# digits it is `SRVP_TEST_SET_SHA256` below, and `tests/test_data_moving_mnist.py` asserts it.

# %%
#| export
TEST_SET_KEYS = ("sequences", "positions", "bounces", "digit_indices", "config")
TEST_SET_PROTOCOLS = ("srvp", "per-sequence")
SRVP_TEST_SET_SHA256 = "6d9c8c1f209d03b8595e5867961a3ae60cab3904d43a35384d1365a22e8a78d7"  # 5,000 x 25 frames, MNIST
SRVP_TEST_SET = dict(protocol="srvp", num_sequences=5000, n_frames=25, num_digits=2, frame_size=64, max_speed=4,
                     seed=42, stochastic=True, is_mnist=True)  # the settings SRVP_TEST_SET_SHA256 is for


def digits_tag(digits: Digits) -> str:
    """A short name for where ``digits`` came from, for file names: "mnist", "sklearn" or "other"."""
    if digits.is_mnist:
        return "mnist"
    return "sklearn" if digits.source.startswith("scikit-learn") else "other"


def digits_sha256(digits: Digits) -> str:
    """SHA-256 of the digit images (uint8, ``(N, h, w)`` in C order)."""
    return uint8_sha256(digits.images)


def test_set_name(num_digits: int = 2, n_frames: int = 25, seed: int = 42, protocol: str = "srvp",
                  source: str = "mnist") -> str:
    """The file name of a test set; ``source`` is :func:`digits_tag` of its digits."""
    return f"smmnist_test_{protocol}_{num_digits}digits_{n_frames}frames_seed{seed}_{source}.npz"


def default_test_set_path(*args, **kwargs) -> Path:
    """Where a test set is kept by default: the first data folder that already holds it, else
    ``mnist/`` of the data folder (:func:`~slamp.data.files.data_home`); arguments as :func:`test_set_name`."""
    relative = Path("mnist") / test_set_name(*args, **kwargs)
    return find_data(relative) or data_home() / relative


# %% [markdown]
# Making a set: `test_set_arrays` draws the sequences by one of the two protocols and returns the
# arrays to keep, with the settings and the fingerprint of the digits they were drawn from.

# %%
#| export
def test_set_arrays(digits: Digits, num_sequences: int | None = None, n_frames: int = 25, num_digits: int = 2,
                    frame_size: int = 64, max_speed: int = 4, seed: int = 42, stochastic: bool = True,
                    protocol: str = "srvp") -> dict:
    """``sequences (N, T, H, W)`` uint8, ``positions (N, D, T, 2)``, ``bounces (N, D, T)``,
    ``digit_indices (N, D)`` and ``config`` of a test set from ``digits`` (see
    :meth:`MovingMNISTTestSet.generate`)."""
    _check_config(n_frames, num_digits, max_speed, seed)
    if protocol not in TEST_SET_PROTOCOLS:
        raise ValueError(f"protocol must be one of {TEST_SET_PROTOCOLS}, found {protocol!r}")
    num_sequences = len(digits) // num_digits if num_sequences is None else num_sequences
    if protocol == "srvp":
        samples = srvp_sequences(digits.images, num_sequences, n_frames, num_digits, frame_size, max_speed,
                                 seed, stochastic)
    else:
        samples = [sample_sequence(digits.images, n_frames, np.random.default_rng([seed, i]), num_digits,
                                   frame_size, max_speed, stochastic) for i in range(num_sequences)]
    sequences = np.stack([s.frames for s in samples])
    config = dict(protocol=protocol, num_sequences=num_sequences, n_frames=n_frames, num_digits=num_digits,
                  frame_size=frame_size, max_speed=max_speed, seed=seed, stochastic=stochastic,
                  digits=digits.source, digits_sha256=digits_sha256(digits), is_mnist=digits.is_mnist,
                  sequences_sha256=uint8_sha256(sequences))  # checked whenever the file is read
    return {"sequences": sequences,
            "positions": np.stack([s.positions for s in samples]).astype(np.float64),
            "bounces": np.stack([s.bounces for s in samples]),
            "digit_indices": np.stack([s.digit_indices for s in samples]).astype(np.int64), "config": config}


# %% [markdown]
# The set itself is a `Dataset` over those arrays that can write itself to a file and read itself
# back; `cached` (below) adds "reuse the file only if it holds what was asked for".

# %%
#| export
class MovingMNISTTestSet(Dataset):
    """A fixed set of Moving MNIST sequences, stored as ``sequences (N, T, H, W)`` uint8 with their
    trajectories; item ``i`` is ``(T, 1, H, W)`` float32 in [0, 1]."""

    def __init__(self, sequences: np.ndarray, positions: np.ndarray, bounces: np.ndarray,
                 digit_indices: np.ndarray, config: dict):
        self.sequences, self.positions, self.bounces = sequences, positions, bounces
        self.digit_indices, self.config = digit_indices, dict(config)

    @classmethod
    def generate(cls, digits: Digits | str | None = None, **settings) -> "MovingMNISTTestSet":
        """Make a test set from ``digits`` (:class:`Digits`, or a source for
        :func:`~slamp.data.mnist.load_digits`; default: the MNIST test digits). ``settings``:
        ``num_sequences``, ``n_frames`` (25), ``num_digits`` (2), ``frame_size`` (64), ``max_speed``
        (4), ``seed`` (42), ``stochastic`` (True), ``protocol``: ``"srvp"`` (the default), SRVP's set
        (:func:`srvp_sequences`), the first ``num_sequences`` of its ``len(digits) // num_digits``;
        or ``"per-sequence"``: sequence ``i`` from ``default_rng([seed, i])``, digits drawn with
        replacement."""
        return cls(**test_set_arrays(digits_for("test", digits), **settings))

    @classmethod
    def cached(cls, path=None, digits: Digits | str | None = None, **settings) -> "MovingMNISTTestSet":
        """Load the set at ``path`` (default :func:`default_test_set_path`) if it exists and was made
        with ``settings`` from the same ``digits`` (as in :meth:`generate`); otherwise generate it
        and save it there."""
        return cached_test_set(cls, path, digits_for("test", digits), settings)

    def sha256(self) -> str:
        """SHA-256 of the frames: ``sequences`` uint8 ``(N, T, H, W)``, C order (see the notebook)."""
        return uint8_sha256(self.sequences)

    def save(self, path) -> Path:
        """Write the set to ``path`` (a compressed ``.npz``), atomically."""
        with atomic_path(path) as temporary, open(temporary, "wb") as file:
            np.savez_compressed(file, sequences=self.sequences, positions=self.positions, bounces=self.bounces,
                                digit_indices=self.digit_indices, config=np.array(json.dumps(self.config)))
        return Path(path)

    @classmethod
    def load(cls, path) -> "MovingMNISTTestSet":
        """Read a set written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise MissingDataError(f"test set {path} does not exist; make it with MovingMNISTTestSet.cached({str(path)!r})")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in TEST_SET_KEYS}
        except NPZ_READ_ERRORS as err:  # .npz files are zips
            raise DataError(f"cannot read the Moving MNIST test set {path} ({err}); expected an .npz "
                            f"with {', '.join(TEST_SET_KEYS)}: delete it and generate it again") from err
        config = json.loads(str(arrays.pop("config")))
        check_test_set(path, arrays["sequences"], config)
        return cls(**arrays, config=config)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_video_tensor(self.sequences[index])


# %% [markdown]
# A file is reused only when it was made with the requested settings from the same digits (the
# SHA-256 of their images); anything else is an error that says what differs. Every load checks
# the frames themselves too: the shape the settings give and the SHA-256 recorded when the set was
# made (or SRVP's, for SRVP's set), so a file cut short, zeroed or resized is refused, not scored.

# %%
#| export
def check_test_set(path, sequences: np.ndarray, config: dict) -> None:
    """The frames of a test set file are what its config says: their shape, dtype and SHA-256 (the
    one recorded when it was made, or SRVP's for SRVP's set); a ``DataError`` naming the file otherwise."""
    srvp = {key: config.get(key) for key in SRVP_TEST_SET} == SRVP_TEST_SET
    check_frames(path, sequences, tuple(config.get(k) for k in ("num_sequences", "n_frames", "frame_size", "frame_size")),
                 (config.get("sequences_sha256"), srvp and SRVP_TEST_SET_SHA256),
                 "delete it and make it again (MovingMNISTTestSet.cached, or `slamp prepare mnist --test-set`)")


def cached_test_set(cls, path, digits: Digits, settings: dict):
    """:meth:`MovingMNISTTestSet.cached`: the set at ``path`` if it matches, else made and saved."""
    settings = {"protocol": "srvp", "num_sequences": None, "n_frames": 25, "num_digits": 2, "frame_size": 64,
                "max_speed": 4, "seed": 42, "stochastic": True, **settings}
    if settings["num_sequences"] is None:
        settings["num_sequences"] = len(digits) // settings["num_digits"]
    if path is None:
        path = default_test_set_path(settings["num_digits"], settings["n_frames"], settings["seed"],
                                     settings["protocol"], digits_tag(digits))
    path = Path(path)
    if not path.is_file():
        test_set = cls.generate(digits, **settings)
        try:
            test_set.save(path)
        except OSError as error:  # a read-only data folder: use the set without keeping it, and say so
            warnings.warn(f"cannot keep the test set in {path} ({error.strerror or error}); it is made again on "
                          f"each run: set SLAMP_DATA to a folder you can write to")
        return test_set
    test_set = cls.load(path)
    wanted = {**settings, "digits_sha256": digits_sha256(digits), "is_mnist": digits.is_mnist}
    found = {key: test_set.config.get(key) for key in wanted}
    if found != wanted:
        differ = {key: (found[key], wanted[key]) for key in wanted if found[key] != wanted[key]}
        raise DataError(f"{path} was made with other settings or digits (found, requested): {differ}; "
                        "delete it or pass another path")
    return test_set


# %% [markdown]
# **Check.** A set survives the round trip through its file bit for bit, `cached` refuses a file
# made from other digits, and, with the real MNIST test digits, the full set has SRVP's
# fingerprint (about 10 s).

# %%
n_test = 16 if SMOKE else 200
test_set = MovingMNISTTestSet.generate(test_digits, num_sequences=n_test)
path = test_set.save(WORK / "smmnist_test.npz")
reloaded = MovingMNISTTestSet.load(path)
for key in ("sequences", "positions", "bounces", "digit_indices"):
    before, after = getattr(test_set, key), getattr(reloaded, key)
    assert before.dtype == after.dtype and np.array_equal(before, after), key
assert reloaded.config == test_set.config
assert np.array_equal(MovingMNISTTestSet.generate(test_digits, num_sequences=4).sequences, test_set.sequences[:4])
print(f"{len(reloaded)} test sequences {reloaded.sequences.shape[1:]} uint8, {path.stat().st_size / 1e3:.0f} kB on disk, "
      f"reloaded bit for bit; {reloaded.bounces.any(axis=(1, 2)).mean():.0%} contain a bounce")
print("settings:", {k: v for k, v in reloaded.config.items() if k not in ("digits", "digits_sha256")})
stand_in = sklearn_digits("test")
MovingMNISTTestSet.cached(WORK / "small.npz", stand_in, num_sequences=4)
try:
    MovingMNISTTestSet.cached(WORK / "small.npz", test_digits, num_sequences=4)
    raise AssertionError("a set of other digits was reloaded")
except DataError as err:
    print("refused:", str(err).replace(str(WORK), "<tmp>")[:120], "...")
if test_digits.is_mnist:
    full = MovingMNISTTestSet.generate(test_digits)
    assert full.sequences.shape == (5000, 25, 64, 64) and full.sha256() == SRVP_TEST_SET_SHA256
    print(f"the full set: {full.sequences.shape}, SHA-256 {full.sha256()} = SRVP's")
    del full
else:
    print("MNIST digits absent: the full set's fingerprint is not checked here")

# %% [markdown]
# ## The recorded datasets, in brief
#
# KTH, BAIR, KITTI and Cityscapes come as official downloads that users fetch themselves
# (licences and logins apply); `slamp prepare <dataset> --source ...` turns each into folders of
# frames in the data folder, and `slamp.data.video.VideoClips` cuts a list of videos into clips of
# consecutive frames. Each dataset is described once, in `slamp.registry`: its frames, its
# training clip, its test protocol, the model preset sized for it and how to load it. Layouts,
# downloads and the differences from the public code's loaders are in `data/README.md`.

# %%
from slamp.registry import DATASETS

print(f"{'dataset':>11} {'frames':>13} {'train clip':>11} {'test':>9}  loaded by")
for name, spec in DATASETS.items():
    (height, width), (past, future) = spec.frame_size, spec.test_protocol
    print(f"{name:>11} {spec.channels} x {height:>3}x{width:<3} {'+'.join(map(str, spec.train_clip)):>11} "
          f"{past:>3} -> {future:<3}  {spec.clips.__doc__.splitlines()[0]}")

# %% [markdown]
# ## Exercises and what to try next
#
# The exercise of this notebook: **`render_digits`** (draw each digit at its position, add where
# digits overlap, clip to 255).
#
# * Make a deterministic stream (`stochastic=False`) and draw several futures of a bounce with
#   `continuations`: the future is certain again.
# * Three digits, or `max_speed=8`: how often do digits overlap, and how do the frames look?
# * Draw the overlapping digits with `np.maximum` instead of adding them: which frames change, and
#   would a model notice?

# %% [markdown]
# ## Summary
#
# * `slamp.data.moving_mnist`: `bounce_trajectory` (a new random velocity at every bounce, exact
#   wall times), `render_digits` (add, then clip), `StochasticMovingMNIST` (an endless stream
#   seeded by `(seed, epoch, shard, worker, index)`) and `MovingMNISTTestSet`: by default SRVP's
#   test set, the paper's (5,000 sequences of 5 + 20 frames, every MNIST test digit once, one
#   `RandomState(42)` stream, `srvp_step`'s arithmetic), identical to SRVP's own file (SHA-256
#   `SRVP_TEST_SET_SHA256`), frozen to a `.npz` and reloaded only for the same settings and digits.
# * `mnist_fold`: SRVP's training (95%) and validation (5%) folds of the 60,000 training digits.
# * Plain modules, with their own tests: `slamp.data.files` (the data folder, atomic writes,
#   `DataError`s that name the path), `slamp.data.mnist` (the digits without a network),
#   `slamp.data.video` and `.kth`, `.bair`, `.kitti`, `.cityscapes` (the recorded datasets);
#   `slamp.registry` describes each dataset once.
# * Random bounces make Moving MNIST's future genuinely uncertain: after a bounce the past no longer
#   determines the frames, and the mean of the possible futures is a blur. That is what the
#   learned prior of SVG and SLAMP is for (`03_slamp_baseline`, `04_slamp`).
