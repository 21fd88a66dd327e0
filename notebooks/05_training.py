# %% [markdown]
# # 05 · Training: configs, scheduled sampling, AMP, checkpoints, several GPUs
#
# `00_elbo` derived the objective and `03_slamp_baseline`/`04_slamp` built the models; all that
# is left is to *minimise* the negative ELBO,
#
# $$\mathcal L(\theta, \phi, \psi) = \sum_{t} \underbrace{\lVert x^p_t - x_t\rVert^2 + \lVert x^f_t - x_t\rVert^2
#   + \lVert \hat x_t - x_t\rVert^2}_{\text{pixel, flow, final}}
#   + \beta \big(\mathrm{KL}^p_t + \mathrm{KL}^f_t\big),$$
#
# by stochastic gradient descent over random training clips. The recipe is the paper's: Adam with
# $(\beta_1, \beta_2) = (0.9, 0.999)$, **300 epochs of 1,000 updates**, batch 32 and learning
# rate $3\cdot10^{-4}$ on Moving MNIST, batch 20 and $10^{-4}$ on KTH and BAIR. What makes a
# training *engine* out of that loop is everything around it:
#
# * **configs**: one dataclass with the paper's settings as named presets, every field
#   overridable from the command line, bad values caught before anything runs;
# * **scheduled sampling**, which slowly replaces true input frames by the model's own predictions;
# * a **data stream** that is a function of the seed alone, so that a run can stop anywhere and
#   continue exactly, on one process or many;
# * **mixed precision** and `torch.compile` on a GPU, **DDP** over several GPUs with `torchrun`;
# * **checkpoints** written atomically, **validation** with PSNR/SSIM on futures sampled from the
#   learned prior, the best model kept, and a guard that stops on a non-finite loss.
#
# Everything here is exported to `slamp.train`; `slamp train` (the command line) calls it.

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
#| default_exp train

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

SMOKE = os.environ.get("SLAMP_SMOKE", "0") == "1"  # small settings for CI
WORK = Path(tempfile.mkdtemp(prefix="slamp-05-"))  # scratch space for the runs this notebook makes
torch.manual_seed(0)

# %% [markdown]
# ## A config, and the paper's settings as presets
#
# A run is a function of its config and its seed. `TrainConfig` holds every choice; it is frozen
# (a run cannot change it behind our back) and checks itself when it is made, so a typo or a bad
# value fails at once, with a message that names the field, instead of an hour into a run.
#
# The presets hold the paper's settings (learning rates, batch sizes and β from the paper, the
# scheduled-sampling constant $k = 25$ from the public code's README for KTH and BAIR; KITTI and
# Cityscapes, which the paper trains for 151 epochs with batches of 8 and 7, use the public code's
# default learning rate, $3\cdot10^{-4}$). `tiny` is ours: the `tiny` model (about 16× narrower)
# on 2+4-frame Moving MNIST clips in batches of 16, about 1 s an update on two CPU cores, which
# learns to follow the digits within a few hundred updates.

# %%
#| export
"""Training: configs with the paper's settings, scheduled sampling, a data stream that is a
function of the seed, mixed precision, torch.compile, DDP (torchrun), atomic checkpoints that
resume exactly, validation with PSNR/SSIM on sampled futures, and logs (CSV, TensorBoard, tqdm)."""
import csv
import difflib
import json
import math
import os
import random
import shutil
import time
import types
import typing
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from slamp.data.mnist import DIGIT_SOURCES
from slamp.models import PRESETS, SLAMP, SVG, ModelConfig, SLAMPBaseline, VideoPredictor, load_weights

MODEL_CLASSES = {"svg": SVG, "slamp_baseline": SLAMPBaseline, "slamp": SLAMP}
# What each dataset's frames look like: (channels, (height, width)).
DATASET_FRAMES = {"mnist": (1, (64, 64)), "kth": (1, (64, 64)), "bair": (3, (64, 64)),
                  "kitti": (3, (92, 310)), "cityscapes": (3, (128, 256))}
AMP_MODES = ("auto", "off", "bf16", "fp16")


class ConfigError(ValueError):
    """A training config names an unknown field or holds a bad value; the message says which."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. ``TrainConfig.preset(name, **overrides)`` gives the
    paper's settings; intervals are counted in updates (optimiser steps), 0 meaning never."""

    # What to train, on what.
    model: str = "slamp"  # svg | slamp_baseline | slamp
    model_preset: str = "mnist"  # sizes from slamp.models.PRESETS
    beta: float | None = None  # KL weight; None: the model preset's
    dataset: str = "mnist"  # mnist | kth | bair | kitti | cityscapes
    data_root: str | None = None  # real datasets; None: <dataset>/ in the first data folder that has it
    digits: str | None = None  # Moving MNIST: mnist | sklearn (8x8 stand-in, tests only); None: $SLAMP_DIGITS, else mnist
    n_past: int = 5  # conditioning frames of a training clip
    n_future: int = 10  # predicted frames of a training clip
    # Optimisation.
    batch_size: int = 32  # the global batch: split evenly over the processes of a DDP run
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.999)  # Adam
    adam_eps: float = 1e-8  # Adam's epsilon (PyTorch's default, as in the public code)
    epochs: int = 300
    epoch_size: int = 1000  # updates per epoch
    scheduled_sampling_k: float = 0.0  # k of p = k / (k + exp(epoch / k)); 0: always the true frame
    seed: int = 0
    init_from: str | None = None  # start from trained weights (a checkpoint, or pretrained:<name>); fresh optimiser
    # Machinery.
    device: str = "auto"  # auto (cuda if present, else cpu) | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16, or fp16 before Ampere, on GPU; off on CPU) | off | bf16 | fp16
    compile: bool = False  # torch.compile the training step
    sync_batchnorm: bool = True  # DDP: BatchNorm statistics over the global batch, as on one GPU
    workers: int = 4  # DataLoader worker processes
    # Logs, validation and checkpoints.
    log_every: int = 50
    val_every: int = 10_000  # the public code validated every 10 epochs
    val_sequences: int = 256
    val_samples: int = 5  # futures drawn per validation sequence
    val_n_future: int = 20  # predicted frames at validation (the paper's test horizon)
    val_batch_size: int = 32  # validation sequences per generate call (times val_samples futures)
    checkpoint_every: int = 1000
    out: str = "runs/train"

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        problems = []
        for f in fields(self):
            try:
                object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
            except ConfigError as error:
                problems.append(str(error))
        if not problems:
            problems = _value_problems(self)
        if problems:
            raise ConfigError("bad training config:\n  " + "\n  ".join(problems))

    @classmethod
    def preset(cls, name: str, **overrides) -> "TrainConfig":
        """The preset ``name`` (see ``TRAIN_PRESETS``) with any fields overridden by keyword."""
        if name not in TRAIN_PRESETS:
            raise ConfigError(f"unknown training preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
        return apply_overrides(TRAIN_PRESETS[name], overrides)

    def to_dict(self) -> dict:
        return asdict(self)


def _type_name(kind) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(kind, str(kind))


def _coerce(name: str, value, kind):
    """``value`` as the field's type ``kind`` (int, float, bool, str, ``X | None``, tuple of
    floats); ints are accepted for floats and lists for tuples, nothing else is converted."""
    args = typing.get_args(kind)
    if type(None) in args:  # an optional field
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, (tuple, list)) or len(value) != len(typing.get_args(kind)):
            raise ConfigError(f"{name} must be {len(typing.get_args(kind))} numbers, found {value!r}")
        return tuple(_coerce(name, v, t) for v, t in zip(value, typing.get_args(kind)))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{name} must be {_type_name(kind)}, found {value!r}")
    return value


def _value_problems(c: TrainConfig) -> list[str]:
    """Everything wrong with the values of a well-typed config (an empty list when all is well)."""
    checks = [
        (c.model in MODEL_CLASSES, f"model must be one of {sorted(MODEL_CLASSES)}, found {c.model!r}"),
        (c.model_preset in PRESETS, f"model_preset must be one of {sorted(PRESETS)}, found {c.model_preset!r}"),
        (c.dataset in DATASET_FRAMES, f"dataset must be one of {sorted(DATASET_FRAMES)}, found {c.dataset!r}"),
        (c.digits in (None, *DIGIT_SOURCES), f"digits must be one of {DIGIT_SOURCES} (or unset), found {c.digits!r}"),
        (c.beta is None or c.beta >= 0, f"beta must be >= 0 (or none), found {c.beta}"),
        (c.n_past >= 1 and c.n_future >= 1, f"n_past and n_future must be >= 1, found {c.n_past} and {c.n_future}"),
        (c.batch_size >= 1, f"batch_size must be >= 1, found {c.batch_size}"),
        (c.lr > 0 and math.isfinite(c.lr), f"lr must be a positive number, found {c.lr}"),
        (all(0 <= b < 1 for b in c.betas), f"betas must be two numbers in [0, 1), found {c.betas}"),
        (c.adam_eps > 0, f"adam_eps must be > 0, found {c.adam_eps}"),
        (c.epochs >= 1 and c.epoch_size >= 1, f"epochs and epoch_size must be >= 1, found {c.epochs} and {c.epoch_size}"),
        (c.scheduled_sampling_k >= 0, f"scheduled_sampling_k must be >= 0 (0: off), found {c.scheduled_sampling_k}"),
        (c.seed >= 0, f"seed must be >= 0, found {c.seed}"),
        (c.amp in AMP_MODES, f"amp must be one of {list(AMP_MODES)}, found {c.amp!r}"),
        (_is_device_name(c.device), f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', found {c.device!r}"),
        (c.workers >= 0, f"workers must be >= 0, found {c.workers}"),
        (c.log_every >= 1 and c.checkpoint_every >= 1,
         f"log_every and checkpoint_every must be >= 1, found {c.log_every} and {c.checkpoint_every}"),
        (c.val_every >= 0, f"val_every must be >= 0 (0: never), found {c.val_every}"),
        (min(c.val_sequences, c.val_samples, c.val_n_future, c.val_batch_size) >= 1,
         "val_sequences, val_samples, val_n_future and val_batch_size must be >= 1"),
        (c.out != "", "out must name a folder"),
    ]
    problems = [message for ok, message in checks if not ok]
    if not problems:  # the model must make frames of the dataset's shape
        model, frames = ModelConfig.preset(c.model_preset), DATASET_FRAMES[c.dataset]
        if (model.channels, model.image_size) != frames:
            problems.append(f"model_preset {c.model_preset!r} makes {model.channels}-channel {model.image_size} frames, "
                            f"but dataset {c.dataset!r} has {frames[0]}-channel {frames[1]} frames")
    return problems


def _is_device_name(name: str) -> bool:
    if name == "auto":
        return True
    try:
        return torch.device(name).type in ("cpu", "cuda")
    except RuntimeError:
        return False


def parse_value(name: str, text: str):
    """The value of field ``name`` written as text on a command line: numbers, ``true``/``false``,
    ``none`` for optional fields, ``0.9,0.999`` for ``betas``."""
    hints = typing.get_type_hints(TrainConfig)
    if name not in hints:
        raise ConfigError(_unknown_field(name))
    kind, text = hints[name], text.strip()
    args = typing.get_args(kind)
    if type(None) in args:
        if text.lower() in ("none", "null"):
            return None
        kind = next(a for a in args if a is not type(None))
    try:
        if typing.get_origin(kind) is tuple:
            return tuple(float(part) for part in text.split(","))
        if kind is bool:
            flags = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
            return flags[text.lower()]
        return kind(text)
    except (ValueError, KeyError):
        raise ConfigError(f"{name} must be {_type_name(kind) if kind in (int, float, bool) else 'numbers like 0.9,0.999'}, "
                          f"found {text!r}") from None


def _unknown_field(name: str) -> str:
    names = [f.name for f in fields(TrainConfig)]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown config field {name!r}{hint}; the fields are: {', '.join(names)}"


def apply_overrides(config: TrainConfig, overrides) -> TrainConfig:
    """``config`` with fields replaced: ``overrides`` is a dict (values, or text to parse) or a list
    of ``"field=value"`` strings as on the command line (``--set lr=1e-3 batch_size=8``)."""
    if not isinstance(overrides, dict):
        pairs = {}
        for item in overrides:
            name, equals, text = item.partition("=")
            if not equals or not name.strip():
                raise ConfigError(f"an override must look like field=value, found {item!r}")
            pairs[name.strip()] = text
        overrides = pairs
    values = {}
    for name, value in overrides.items():
        if name not in TrainConfig.__dataclass_fields__:
            raise ConfigError(_unknown_field(name))
        values[name] = parse_value(name, value) if isinstance(value, str) and name not in _TEXT_FIELDS else value
    return replace(config, **values)


_TEXT_FIELDS = {f.name for f in fields(TrainConfig) if f.type in (str, "str")}

TRAIN_PRESETS = {
    "mnist": TrainConfig(model_preset="mnist", dataset="mnist", n_past=5, n_future=10, batch_size=32, lr=3e-4,
                         val_n_future=20, out="runs/mnist"),
    "kth": TrainConfig(model_preset="kth", dataset="kth", n_past=10, n_future=10, batch_size=20, lr=1e-4,
                       scheduled_sampling_k=25, val_n_future=30, out="runs/kth"),
    "bair": TrainConfig(model_preset="bair", dataset="bair", n_past=2, n_future=10, batch_size=20, lr=1e-4,
                        scheduled_sampling_k=25, val_n_future=28, out="runs/bair"),
    "kitti": TrainConfig(model_preset="kitti", dataset="kitti", n_past=10, n_future=10, batch_size=8, lr=3e-4,
                         epochs=151, val_n_future=20, out="runs/kitti"),
    "cityscapes": TrainConfig(model_preset="cityscapes", dataset="cityscapes", n_past=10, n_future=10, batch_size=7,
                              lr=3e-4, epochs=151, epoch_size=1300, val_n_future=20, out="runs/cityscapes"),
    # Ours: learns visibly on two CPU cores in a few minutes (for CI, laptops and the README).
    "tiny": TrainConfig(model_preset="tiny", dataset="mnist", n_past=2, n_future=4, batch_size=16, lr=1e-3,
                        epochs=4, epoch_size=50, workers=0, log_every=5, val_every=50, val_sequences=16,
                        val_samples=3, val_n_future=8, checkpoint_every=50, out="runs/tiny"),
    # Ours: the shipped models. The paper's clips (5 + 10) and test horizon; a small batch and a
    # larger learning rate, because on two CPU cores updates, not examples, are what is scarce.
    "cpu": TrainConfig(model_preset="cpu", dataset="mnist", n_past=5, n_future=10, batch_size=8, lr=1e-3,
                       epochs=30, epoch_size=100, workers=1, log_every=10, val_every=250, val_sequences=48,
                       val_samples=5, val_n_future=20, checkpoint_every=50, out="runs/cpu"),
}


# %% [markdown]
# The presets side by side:

# %%
from slamp.train import TRAIN_PRESETS, ConfigError, TrainConfig, apply_overrides

shown = ["model_preset", "n_past", "n_future", "batch_size", "lr", "epochs", "epoch_size", "scheduled_sampling_k",
         "val_n_future"]
print(f"{'preset':>11} " + " ".join(f"{name[:12]:>12}" for name in shown))
for name, preset in TRAIN_PRESETS.items():
    print(f"{name:>11} " + " ".join(f"{str(getattr(preset, field)):>12}" for field in shown))

# %% [markdown]
# Overrides come as values or as `field=value` text (what `slamp train --set ...` passes), and
# every mistake gets a message that says what was expected:

# %%
config = apply_overrides(TrainConfig.preset("tiny"), ["lr=2e-3", "batch_size=8", "betas=0.5,0.99"])
print(config.lr, config.batch_size, config.betas)
for bad in [["lrr=1e-3"], ["batch_size=eight"], ["batch_size=0"], ["model=gan"], ["model_preset=bair"]]:
    try:
        apply_overrides(config, bad)
        raise AssertionError(f"{bad} was accepted")
    except ConfigError as error:
        print(f"{bad[0]:>20} -> {error}")

# %% [markdown]
# ## Scheduled sampling
#
# Under teacher forcing the model always reads the *true* previous frame, but at test time it
# reads its own predictions, whose small errors it has never seen. Scheduled sampling (Bengio et
# al., 2015) closes the gap slowly: after the conditioning frames, each step reads the true frame
# with probability $p$ and the model's own (detached) prediction otherwise, and $p$ decays with
# the epoch $e$ along an inverse sigmoid,
#
# $$p(e) = \frac{k}{k + \exp(e / k)},$$
#
# which stays near 1 for the first epochs, crosses ½ at $e = k \ln k$ ($\approx 80$ epochs for the
# public code's $k = 25$), and is almost 0 by the end of 300 epochs. As in the public code, one coin
# per step decides for the whole batch; $k = 0$ switches it off. A step that may read a prediction
# cannot be batched over time, so with $p < 1$ the model runs its step-by-step path.

# %%
#| export
def teacher_forcing_probability(epoch: int, k: float) -> float:
    """Probability that a step reads the true previous frame in ``epoch`` (counted from 0):
    ``k / (k + exp(epoch / k))``, the inverse-sigmoid decay; 1 (teacher forcing) when ``k == 0``."""
    if k == 0:
        return 1.0
    if epoch / k > 700:  # exp would overflow; the probability is 0 to double precision anyway
        return 0.0
    return k / (k + math.exp(epoch / k))


# %%
import math

from slamp.train import teacher_forcing_probability

epochs = range(300)
fig, ax = plt.subplots(figsize=(5, 2.6))
for k in [10, 25, 50]:
    ax.plot(epochs, [teacher_forcing_probability(e, k) for e in epochs], label=f"k = {k}")
ax.axhline(0.5, color="grey", lw=0.5)
ax.set(xlabel="epoch", ylabel="p (true frame)", title="inverse-sigmoid decay")
ax.legend()
fig.tight_layout()
half = 25 * math.log(25)  # where p crosses 1/2
print(f"k = 25: p(0) = {teacher_forcing_probability(0, 25):.3f}, p({half:.0f}) = "
      f"{teacher_forcing_probability(half, 25):.3f}, p(299) = {teacher_forcing_probability(299, 25):.1e}")
assert abs(teacher_forcing_probability(half, 25) - 0.5) < 1e-12 and teacher_forcing_probability(7, 0) == 1

# %% [markdown]
# ## A data stream that is a function of the seed
#
# To resume a run *exactly*, the trainer must be able to produce "the batches that come after
# update $n$" without replaying the first $n$. We therefore define the training stream by
# position: the $i$-th sequence of epoch $e$ is a pure function of $(\text{seed}, e, i)$.
#
# * **Stochastic Moving MNIST** is generated on the fly: sequence $i$ of epoch $e$ is
#   `StochasticMovingMNIST.sample(i)` of the epoch-$e$ stream (its random numbers come from the
#   seed, the epoch and $i$; see `02_data`).
# * **Real datasets** (lists of clips) are walked through random permutations, one per pass over
#   the data: the $g$-th sequence of the run, $g = e \cdot (\text{epoch size} \cdot B) + i$, is
#   clip $\pi_{\lfloor g/N \rfloor}(g \bmod N)$ with $\pi_\ell$ the permutation of pass $\ell$.
#
# Update $j$ of an epoch uses the **global batch** of sequences $jB, \dots, jB + B - 1$. With $W$
# processes (DDP), process $r$ takes the $r$-th of $W$ equal slices of it. The batches are then the
# same whatever the number of processes or DataLoader workers, and resuming at update $j$ is just
# starting the sampler at $j$. A checkpoint records the position anyway, for the record.

# %%
#| export
from slamp.data import BAIR, KITTI, KTH, Cityscapes, MovingMNISTTestSet, StochasticMovingMNIST, load_digits
from slamp.data.files import dataset_root, to_video_tensor
from slamp.data.mnist import mnist_fold

REAL_DATASETS = {"kth": KTH, "bair": BAIR, "kitti": KITTI, "cityscapes": Cityscapes}
VALIDATION_SEED = 2021  # Moving MNIST validation trajectories: unlike the test set's (seed 42)


def data_root(config: TrainConfig) -> Path:
    """Where a real dataset is read from: ``config.data_root``, else ``<dataset>/`` in the first
    data folder that has it (``slamp.data.data_roots()``: ``$SLAMP_DATA``, the user cache, a clone's ``data/``)."""
    return dataset_root(config.dataset, config.data_root)


class TrainingSequences(Dataset):
    """The training stream by position: item ``(epoch, i)`` is the ``i``-th sequence of that epoch,
    ``(T, C, H, W)`` in [0, 1], a function of the seed, ``epoch`` and ``i`` alone.

    ``source`` is a :class:`StochasticMovingMNIST` (generated from its seed) or a dataset of clips,
    walked through one seeded random permutation per pass."""

    def __init__(self, source, seed: int, sequences_per_epoch: int):
        self.source, self.seed, self.sequences_per_epoch = source, seed, sequences_per_epoch
        self._pass, self._order = None, None

    def __len__(self) -> int:
        return self.sequences_per_epoch

    def __getitem__(self, key) -> torch.Tensor:
        epoch, index = key
        if isinstance(self.source, StochasticMovingMNIST):
            self.source.set_epoch(epoch)
            return to_video_tensor(self.source.sample(index).frames)
        position = epoch * self.sequences_per_epoch + index  # in the run-long stream
        lap, position = divmod(position, len(self.source))
        if lap != self._pass:  # one permutation per pass over the clips, cached per worker
            self._pass, self._order = lap, np.random.default_rng([self.seed, lap]).permutation(len(self.source))
        return self.source[int(self._order[position])]


class RankBatches(Sampler):
    """The batches of one process in one epoch, from update ``start`` on: global batch ``j`` holds
    the sequences ``j*B .. j*B + B-1`` of the epoch, and process ``rank`` of ``world_size`` takes
    the ``rank``-th of ``world_size`` equal slices. Yields lists of keys ``(epoch, i)``."""

    def __init__(self, epoch: int, start: int, epoch_size: int, batch_size: int, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ConfigError(f"batch_size {batch_size} is the global batch; it must split evenly over "
                              f"{world_size} processes")
        self.epoch, self.start, self.epoch_size = epoch, start, epoch_size
        self.batch_size, self.rank, self.per_rank = batch_size, rank, batch_size // world_size

    def __len__(self) -> int:
        return self.epoch_size - self.start

    def __iter__(self):
        for j in range(self.start, self.epoch_size):
            first = j * self.batch_size + self.rank * self.per_rank
            yield [(self.epoch, i) for i in range(first, first + self.per_rank)]


def training_sequences(config: TrainConfig) -> TrainingSequences:
    """The training stream of ``config``: clips of ``n_past + n_future`` frames."""
    length = config.n_past + config.n_future
    if config.dataset == "mnist":
        source = StochasticMovingMNIST(mnist_fold(load_digits("train", config.digits), "train"), n_frames=length, seed=config.seed)
    else:
        source = REAL_DATASETS[config.dataset](data_root(config), "train", seq_len=length)
    return TrainingSequences(source, config.seed, config.epoch_size * config.batch_size)


def epoch_loader(sequences: TrainingSequences, config: TrainConfig, epoch: int, start: int,
                 rank: int = 0, world_size: int = 1, pin_memory: bool = False) -> DataLoader:
    """Batches ``(B / world_size, T, C, H, W)`` of updates ``start .. epoch_size-1`` of ``epoch``."""
    batches = RankBatches(epoch, start, config.epoch_size, config.batch_size, rank, world_size)
    # A private generator: creating a loader must not consume the global RNG, which the model's
    # noise and the scheduled-sampling coins draw from (a resumed run would drift otherwise).
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(sequences, batch_sampler=batches, num_workers=config.workers, pin_memory=pin_memory,
                      generator=generator)


def validation_videos(config: TrainConfig) -> torch.Tensor:
    """Up to ``val_sequences`` held-out clips ``(N, n_past + val_n_future, C, H, W)``.

    Moving MNIST: fresh trajectories (seed ``VALIDATION_SEED``) of SRVP's validation fold of the
    training digits (5%, never in the training stream), so choosing the best model never looks at
    the test set. Real datasets have no validation split: clips spread evenly over the test split
    (what the public code validated on), so ``best.pt`` is chosen on test data there; ``last.pt``
    is not."""
    length = config.n_past + config.val_n_future
    if config.dataset == "mnist":
        clips = MovingMNISTTestSet.generate(mnist_fold(load_digits("train", config.digits), "val"), num_sequences=config.val_sequences,
                                            n_frames=length, seed=VALIDATION_SEED, protocol="per-sequence")
    else:
        clips = REAL_DATASETS[config.dataset](data_root(config), "test", seq_len=length)
    keep = np.unique(np.linspace(0, len(clips) - 1, min(config.val_sequences, len(clips))).round().astype(int))
    return torch.stack([clips[int(i)] for i in keep])


# %% [markdown]
# **Check.** Two processes' slices of each update concatenate to the single-process batch, and a
# loader started at update 3 yields exactly what an uninterrupted loader yields from update 3 on.

# %%
from slamp.train import epoch_loader, training_sequences

small = TrainConfig.preset("tiny", batch_size=4, epoch_size=5, workers=0)
sequences = training_sequences(small)
whole = list(epoch_loader(sequences, small, epoch=1, start=0))
halves = [list(epoch_loader(sequences, small, epoch=1, start=0, rank=r, world_size=2)) for r in range(2)]
resumed = list(epoch_loader(sequences, small, epoch=1, start=3))
print(f"{len(whole)} batches of {tuple(whole[0].shape)}; each process gets {tuple(halves[0][0].shape)}")
assert all(torch.equal(torch.cat([a, b]), w) for a, b, w in zip(*halves, whole))
assert all(torch.equal(a, b) for a, b in zip(resumed, whole[3:])) and len(resumed) == 2
assert not torch.equal(whole[0], list(epoch_loader(sequences, small, epoch=2, start=0))[0])  # epochs differ

# %% [markdown]
# ## Devices, mixed precision, compilation
#
# `device="auto"` picks CUDA when it is present, else the CPU; nothing assumes a GPU. On a GPU the
# step runs under **autocast**: bf16 on Ampere and later (same exponent range as float32, so no
# loss scaling), fp16 with a gradient scaler before that (Colab's T4). The losses are computed in
# float32 either way (`slamp.losses` upcasts). `compile=True` hands the training step to
# `torch.compile`; it pays off most for teacher forcing, whose graph is the same every update (the
# step-by-step path of scheduled sampling flips Python coins, which splits the graph).

# %%
#| export
def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``: CUDA if present, else the CPU. In a multi-GPU run, process ``local_rank`` gets
    GPU ``local_rank``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} was requested but CUDA is not available; use device=auto or cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` (see ``TrainConfig.amp``) on ``device``; None: full precision."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":  # bf16 needs Ampere (compute capability 8) or later to be fast
        return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def _grad_scaler(device: torch.device, dtype: torch.dtype | None):
    """Loss scaling, only for fp16 (its small exponent range underflows gradients)."""
    enabled = dtype == torch.float16
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)  # torch < 2.3


# %% [markdown]
# ## Several GPUs: DDP, and a global batch that stays global
#
# `torchrun --nproc_per_node N -m slamp train ...` starts $N$ processes; each holds a replica of
# the model, trains on its slice of the global batch, and DDP averages the gradients, so every
# replica takes the same step. We want more than "the same kind of training": **the same run** as
# on one process, to float precision. Three things would break that, and each is handled:
#
# 1. **Data.** Each process reads its slice of the global batch (above).
# 2. **Latent noise.** Each process would draw its own $\varepsilon$ for $z = \mu + \sigma\varepsilon$.
#    Instead every process draws the noise of the *global* batch (all processes share the seed, so
#    they draw the same numbers) and keeps its own rows; the scheduled-sampling coins then agree
#    across processes too. The noise is tiny next to the images, so drawing it $N$ times is free.
# 3. **BatchNorm.** In training mode BatchNorm normalises with the statistics of the frames in a
#    call: on $N$ processes, of a slice. `sync_batchnorm=True` computes them over the global batch:
#    PyTorch's `SyncBatchNorm` on GPUs and, because it refuses CPU tensors, `GlobalBatchNorm`
#    below on CPUs (the gloo backend), which sums the per-process moments with a differentiable
#    all-reduce.
#
# The loss is summed over steps and averaged over the batch (L2 per element, KL per sequence), so
# the mean of the per-process losses is the global loss, and DDP's gradient average is its
# gradient. `tests/test_train.py` runs two processes on the CPU and checks that the losses and
# the parameters match a one-process run over the same global batch.

# %%
#| export
class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of a CPU (gloo) DDP run, ``(N, C, ...)`` → same shape: the
    per-channel sums of all processes are combined with a differentiable all-reduce, two passes
    (mean, then centred squares) for accuracy. Outside a multi-process run, plain BatchNorm."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected (N, C, ...) input, found {input.dim()}D")

    def forward(self, x):
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce  # sums, and sums the gradients back

        dims, shape = [0, *range(2, x.dim())], (1, -1, *[1] * (x.dim() - 2))
        count = all_reduce(x.new_tensor(float(x.numel() // x.shape[1])))
        mean = all_reduce(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked.item()
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * count / max(count.item() - 1, 1), momentum)  # unbiased
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        return out * self.weight.view(shape) + self.bias.view(shape) if self.affine else out


def synchronise_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``model`` normalising over the global batch: ``nn.SyncBatchNorm`` on
    GPUs, :class:`GlobalBatchNorm` on CPUs. Parameters and buffers are kept (same state dict)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            replacement = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                          child.track_running_stats)
            replacement.load_state_dict(child.state_dict())
            if child.affine:  # keep the Parameter objects themselves
                replacement.weight, replacement.bias = child.weight, child.bias
            setattr(model, name, replacement)
        else:
            synchronise_batchnorm(child, device)
    return model


def share_latent_noise(model: VideoPredictor, rank: int, world_size: int) -> VideoPredictor:
    """Make ``model`` draw the latent noise of the global batch and keep rows
    ``rank*B .. (rank+1)*B - 1`` (``B`` its own batch): with one seed in every process, the
    processes together use exactly the noise of a one-process run."""
    draw = type(model)._noise

    def global_noise(self, batch, steps, device):
        everything = draw(self, batch * world_size, steps, device)
        return {stream: eps[rank * batch:(rank + 1) * batch] for stream, eps in everything.items()}

    model._noise = types.MethodType(global_noise, model)
    return model


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a (possibly one-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str = "auto") -> tuple[Distributed, torch.device, bool]:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``): NCCL on GPUs, gloo on CPUs. Returns the process's place, its device
    and whether this call created the group (and must destroy it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    place = Distributed(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = select_device(device_name, place.local_rank)
    created = False
    if place.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    return place, device, created


# %% [markdown]
# **Check, without a second process.** With the seed fixed, "process 1 of 2" gets exactly the
# second half of the noise that one process draws for the global batch.

# %%
from slamp.models import SLAMP
from slamp.train import share_latent_noise

one = SLAMP.from_preset("tiny")
two = share_latent_noise(SLAMP.from_preset("tiny"), rank=1, world_size=2)
torch.manual_seed(5)
full = one._noise(8, 3, "cpu")
torch.manual_seed(5)
half = two._noise(4, 3, "cpu")
assert all(torch.equal(half[s], full[s][4:]) for s in full)
print({s: tuple(v.shape) for s, v in half.items()}, "= rows 4..7 of the one-process draw")

# %% [markdown]
# ## Checkpoints that resume exactly
#
# A checkpoint holds what the next update depends on: the model, the optimiser (Adam's moment
# estimates), the gradient scaler, the update count (which fixes the epoch, the position in the
# data stream and the scheduled-sampling probability), the config, the best validation score so
# far, and the state of every random generator (torch on CPU and GPUs, numpy, Python). It is
# written **atomically**: to a temporary file next to the target, then renamed over it, so a crash
# mid-write leaves the previous checkpoint intact. It holds only tensors and plain Python values, so
# it loads with `torch.load(weights_only=True)`, which refuses to run code from a file. A truncated
# or foreign file gets a `CheckpointError` that says what was expected.

# %%
#| export
from slamp.data.files import atomic_path

CHECKPOINT_FORMAT = "slamp.train/1"
CHECKPOINT_KEYS = ("format", "step", "config", "model_class", "model_config", "model", "optimizer", "scaler",
                   "rng", "best_psnr", "data")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or is not a slamp training checkpoint."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped before updating the model."""


def rng_state() -> dict:
    """The state of every random generator, as tensors and plain values (``weights_only``-safe)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)],
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(state["python"])


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as temporary:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, temporary)
    return Path(path)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, not a torch file, or objects weights_only refuses
        raise CheckpointError(f"cannot read the checkpoint {path}: truncated, corrupt or not written by "
                              f"slamp.train ({type(error).__name__}: {str(error).splitlines()[0]})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = f"a dict with keys {sorted(map(str, state))[:8]}" if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a slamp training checkpoint: expected a dict with "
                              f"format={CHECKPOINT_FORMAT!r}, found {found}")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete slamp checkpoint: missing {missing}")
    return state


def build_model(config: TrainConfig) -> VideoPredictor:
    """The model ``config`` describes (class, preset sizes, β)."""
    overrides = {} if config.beta is None else {"beta": config.beta}
    return MODEL_CLASSES[config.model].from_preset(config.model_preset, **overrides)


def load_model(path, map_location="cpu") -> tuple[VideoPredictor, TrainConfig]:
    """The trained model of a checkpoint (in eval mode) and its training config."""
    state = load_checkpoint(path, map_location)
    classes = {cls.__name__: cls for cls in MODEL_CLASSES.values()}
    model = classes[state["model_class"]](ModelConfig(**state["model_config"]))
    load_weights(model, state["model"])
    return model.to(map_location).eval(), TrainConfig(**state["config"])


# %% [markdown]
# ## Validation: PSNR and SSIM of futures from the learned prior
#
# Every `val_every` updates the main process conditions on the first `n_past` frames of each
# validation sequence and draws `val_samples` futures of `val_n_future` frames from the learned
# prior (`model.eval()`, so BatchNorm uses its running statistics). Each sample is scored by PSNR
# and SSIM (`slamp.metrics`) averaged over its frames, and we report, per metric, the
# **best sample** (the paper's protocol with a few samples instead of 100) and the **mean over
# samples**. `best.pt` is the model with the highest best-sample PSNR so far. The noise of
# validation comes from a fixed seed inside a forked RNG, so validating neither changes the
# training run nor makes two validations differ by luck.

# %%
#| export
from matplotlib.figure import Figure

from slamp.metrics import psnr, ssim


@torch.no_grad()
def validate(model: VideoPredictor, videos: torch.Tensor, n_past: int, n_future: int, num_samples: int,
             batch_size: int = 32, device="cpu", dtype: torch.dtype | None = None, seed: int = 0):
    """Score futures sampled from the learned prior against ``videos`` ``(N, n_past + n_future', C, H, W)``.

    Returns ``metrics`` (``psnr_best``, ``psnr_mean``, ``ssim_best``, ``ssim_mean``: per sample
    the metric averaged over frames, then the best or the mean over samples, then the mean over
    sequences) and ``example``: the first sequence ``truth (T, C, H, W)``, its ``samples (S, n_future,
    C, H, W)`` and their ``psnr (S,)``."""
    was_training, device = model.training, torch.device(device)
    model.eval()
    scores, example = {"psnr": [], "ssim": []}, None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for chunk in videos.split(batch_size):
            chunk = chunk.to(device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                futures = model.generate(chunk[:, :n_past], n_future, num_samples).frames
            futures = futures.float().clamp(0, 1)  # (b, S, F, C, H, W)
            target = chunk[:, None, n_past:n_past + n_future].expand_as(futures)
            for name, metric in (("psnr", psnr), ("ssim", ssim)):
                per_frame = metric(futures.flatten(0, 2), target.flatten(0, 2))
                scores[name].append(per_frame.view(futures.shape[:3]).mean(2).cpu())  # (b, S)
            if example is None:
                example = {"truth": chunk[0].cpu(), "samples": futures[0].cpu(), "psnr": scores["psnr"][0][0]}
    model.train(was_training)
    metrics = {}
    for name, values in scores.items():
        values = torch.cat(values)  # (N, S)
        metrics[f"{name}_best"] = values.max(1).values.mean().item()
        metrics[f"{name}_mean"] = values.mean().item()
    return metrics, example


def sample_figure(truth: torch.Tensor, samples: torch.Tensor, n_past: int, psnrs=None, max_frames: int = 12,
                  title: str = "") -> Figure:
    """The true video ``(T, C, H, W)`` (conditioning frames, then the future) above sampled futures
    ``(S, F, C, H, W)``, best PSNR first; at most ``max_frames`` columns."""
    order = torch.argsort(torch.as_tensor(psnrs), descending=True).tolist() if psnrs is not None else range(len(samples))
    columns = min(truth.shape[0], max_frames)
    rows = [("truth", truth[:columns], 0)]
    rows += [(f"sample {k}" + (f" ({float(psnrs[k]):.1f} dB)" if psnrs is not None else ""),
              samples[k][:columns - n_past], n_past) for k in order]
    figure = Figure(figsize=(1.0 * columns, 1.1 * len(rows) + 0.3))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for r, (label, frames, offset) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_axis_off()
            if c < offset or c - offset >= len(frames):
                continue
            image = frames[c - offset].float().clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
            if r == 0 and c == n_past:
                ax.set_title("future →", fontsize=7, loc="left")
        axes[r, 0 if offset == 0 else offset].text(0, -4, label, fontsize=7)
    figure.suptitle(title, fontsize=9)
    return figure


def save_figure(figure: Figure, path) -> Path:
    """Write a figure as PNG, atomically."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=80)
    return Path(path)


# %% [markdown]
# ## Logs
#
# Every `log_every` updates the loss terms (`pixel`, `flow`, `final`, one `kl_*` per latent
# stream, and the weighted `total`) go to `train.csv`, with the teacher-forcing probability and the
# updates per second; validation scores go to `validation.csv`. When the `tensorboard` package is
# installed the same numbers and the sample figures go to `tensorboard/` as well (it is optional:
# nothing else needs it). A resumed run drops the rows that the interrupted run wrote after its
# last checkpoint, so each update appears once.

# %%
#| export
class CSVLog:
    """Rows appended to a CSV file, flushed at once. With ``resume_step``, an existing file keeps
    its rows up to that step; otherwise it is started afresh."""

    def __init__(self, path, columns: list[str], resume_step: int | None = None):
        self.path, self.columns = Path(path), list(columns)
        kept = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as file:
                kept = [row for row in csv.DictReader(file) if int(row["step"]) <= resume_step]
        with atomic_path(self.path) as temporary, open(temporary, "w", newline="") as file:
            writer = csv.DictWriter(file, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    def append(self, row: dict) -> None:
        with open(self.path, "a", newline="") as file:
            csv.DictWriter(file, self.columns, extrasaction="ignore").writerow(
                {k: repr(v) if isinstance(v, float) else v for k, v in row.items()})  # repr: exact round trip


def read_log(path) -> dict[str, np.ndarray]:
    """A log written by :class:`CSVLog` as columns of floats."""
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    columns = rows[0].keys() if rows else []
    return {name: np.array([float(row[name]) for row in rows]) for name in columns}


def tensorboard_writer(folder):
    """A TensorBoard ``SummaryWriter`` on ``folder``, or None when ``tensorboard`` is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: the CSV logs hold the same numbers
        return None
    return SummaryWriter(str(folder))


def plot_training(run, smooth: int = 1) -> Figure:
    """Loss curves (L2 terms, KL terms) and, if any, validation scores of the run in folder ``run``;
    ``smooth`` averages that many logged points."""
    log = read_log(Path(run) / "train.csv")
    validation = Path(run) / "validation.csv"
    scores = read_log(validation) if validation.is_file() else {}
    panels = 3 if len(scores.get("step", ())) else 2
    figure = Figure(figsize=(4 * panels, 3))
    axes = figure.subplots(1, panels)
    kernel = np.ones(smooth) / smooth

    def curve(ax, name):
        values = np.convolve(log[name], kernel, mode="valid")
        ax.plot(log["step"][len(log["step"]) - len(values):], values, label=name)

    for name in [n for n in ("pixel", "flow", "final") if n in log]:
        curve(axes[0], name)
    for name in [n for n in log if n.startswith("kl_")]:
        curve(axes[1], name)
    axes[0].set(xlabel="update", ylabel="L2, summed over steps", yscale="log", title="reconstruction")
    axes[1].set(xlabel="update", ylabel="nats per sequence", title="KL (before β)")
    if panels == 3:
        for name in ("psnr_best", "psnr_mean"):
            axes[2].plot(scores["step"], scores[name], marker="o", label=name)
        axes[2].set(xlabel="update", ylabel="dB", title="validation PSNR")
    for ax in axes:
        ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


# %% [markdown]
# ## The training loop
#
# `Trainer` puts the pieces together. One update:
#
# 1. take the next batch of the stream (this process's slice of the global batch);
# 2. compute the loss under autocast, with teacher-forcing probability $p(\text{epoch})$;
# 3. if the loss is not finite in *any* process, stop: raise `NonFiniteLossError` **before** the
#    optimiser step, and keep the last checkpoint on disk as it is (the parameters in memory may
#    already be the cause, so nothing is saved);
# 4. backward (DDP averages the gradients across processes), Adam step.
#
# One optimiser over all parameters: the public code kept one Adam per sub-module with the same
# settings, which is the same thing, since Adam updates each parameter from its own moments.
# The model is wrapped in a small module whose `forward` *is* the loss, because DDP synchronises
# gradients only through `forward` and `torch.compile` compiles a `forward`.
#
# Around the updates: the log every `log_every`, validation (main process; the others wait) every
# `val_every` and at the end, a checkpoint (`last.pt`) every `checkpoint_every`, at the end and when
# stopped early with `stop_after`, and `best.pt` whenever validation improves.

# %%
#| export
import sys

from tqdm.auto import tqdm


class TrainingObjective(nn.Module):
    """``forward(x, n_past, teacher_forcing)`` → ``(total, terms)``: the model's loss as a forward,
    which is what DDP and ``torch.compile`` wrap."""

    def __init__(self, model: VideoPredictor):
        super().__init__()
        self.model = model

    def forward(self, x, n_past: int, teacher_forcing: float):
        total, terms, _ = self.model.loss(x, n_past, teacher_forcing)
        return total, terms


def loss_terms(model: VideoPredictor) -> list[str]:
    """The names of the loss terms ``model.loss`` returns."""
    return ["final"] + (["pixel", "flow"] if model.motion_head else []) + [f"kl_{s}" for s in model.streams]


def adam(parameters, lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> torch.optim.Adam:
    """One Adam for all parameters (the public code kept one per module, with equal settings: the
    same updates). The fused kernel updates every tensor in one call: 4x faster than the default
    on a 2-core CPU at the tiny size, 7x at the paper's MNIST size (``benchmarks/optimizer.py``); a
    torch without it falls back to the default."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, betas=betas, eps=eps, fused=True)
    except (RuntimeError, TypeError):  # an older torch, or a device without the fused kernel
        return torch.optim.Adam(parameters, lr=lr, betas=betas, eps=eps)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every CUDA device too


# Continuing a run in a new one: `--set init_from=pretrained:slamp` (or a checkpoint's path) copies
# the trained weights into the new run's model, then trains with a fresh optimiser. Unlike
# `--resume` (an exact continuation, but the checkpoint holds Adam's moments: three times the
# weights), it needs only the shipped float16 weights: how the shipped models are trained over
# several CPU sessions.
def initialise_from(model: VideoPredictor, source: str) -> VideoPredictor:
    """Copy into ``model`` the weights of ``source``: a training checkpoint's path, or
    ``pretrained:<name>`` for a model shipped in ``slamp.pretrained``. Class and sizes must match:
    this continues a training run in a new one (fresh optimiser and schedule), e.g. spread over
    several sessions on a CPU."""
    if source.startswith("pretrained:"):
        from slamp.pretrained import load

        trained = load(source.removeprefix("pretrained:"))
    else:
        trained, _ = load_model(source)
    if type(trained) is not type(model) or trained.config != model.config:
        raise ConfigError(f"init_from={source!r} holds a {type(trained).__name__} {trained.config}, "
                          f"but this run trains a {type(model).__name__} {model.config}")
    model.load_state_dict(trained.state_dict())
    return model


class Trainer:
    """One training run: ``Trainer(config, place, device).fit()``. See :func:`train`."""

    def __init__(self, config: TrainConfig, place: Distributed = Distributed(), device=None,
                 resume=None, overwrite: bool = False):
        self.config, self.place = config, place
        self.device = torch.device(device) if device is not None else select_device(config.device)
        self.out = Path(config.out)
        self.dtype = autocast_dtype(config.amp, self.device)
        checkpoint = self._resume_point(resume, overwrite)
        seed_everything(config.seed)
        self.model = build_model(config)
        if place.enabled:
            share_latent_noise(self.model, place.rank, place.world_size)
            if config.sync_batchnorm:
                synchronise_batchnorm(self.model, self.device)
        if checkpoint is None and config.init_from:
            initialise_from(self.model, config.init_from)
        self.model.to(self.device)
        self.optimizer = adam(self.model.parameters(), config.lr, config.betas, config.adam_eps)
        self.scaler = _grad_scaler(self.device, self.dtype)
        self.step, self.best_psnr = 0, -math.inf
        if checkpoint is not None:
            self._restore(checkpoint)
        self.objective = self._wrap(TrainingObjective(self.model))
        self.terms = loss_terms(self.model)
        self.sequences = training_sequences(config)
        self.validation = validation_videos(config) if place.is_main and config.val_every else None
        self._open_logs(resumed=checkpoint is not None)

    # ---- set-up ------------------------------------------------------------------------------
    def _resume_point(self, resume, overwrite):
        """The checkpoint to continue from (None for a fresh run), after checking the folder."""
        last = self.out / "last.pt"
        if resume is None or resume is False:
            if last.exists() and not overwrite:
                raise FileExistsError(f"{self.out} already holds a run ({last}); resume it, pass overwrite "
                                      f"(--overwrite), or choose another output folder")
            if overwrite and self.place.is_main:
                for name in ("last.pt", "best.pt", "train.csv", "validation.csv", "summary.json"):
                    (self.out / name).unlink(missing_ok=True)
                shutil.rmtree(self.out / "samples", ignore_errors=True)
                shutil.rmtree(self.out / "tensorboard", ignore_errors=True)
            return None
        path = last if resume is True else Path(resume)
        if not path.is_file():
            raise CheckpointError(f"no checkpoint to resume at {path}")
        return load_checkpoint(path)  # on the CPU: the RNG states must stay there

    def _restore(self, checkpoint):
        load_weights(self.model, checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        # load_state_dict brings back the checkpoint's lr, betas and eps too; the config decides
        # them, so that resuming with `--set lr=...` really continues at the new rate (a decay stage).
        for group in self.optimizer.param_groups:
            group.update(lr=self.config.lr, betas=self.config.betas, eps=self.config.adam_eps)
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.step, self.best_psnr = int(checkpoint["step"]), float(checkpoint["best_psnr"])
        set_rng_state(checkpoint["rng"])
        changed = {k: (v, getattr(self.config, k)) for k, v in checkpoint["config"].items()
                   if k in TrainConfig.__dataclass_fields__ and v != getattr(self.config, k)}
        if changed:
            self._say(f"resuming with config changes (checkpoint -> now): {changed}")

    def _wrap(self, objective):
        if self.place.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            objective = nn.parallel.DistributedDataParallel(objective, device_ids=ids)
        if self.config.compile:
            objective = torch.compile(objective)
        return objective

    def _open_logs(self, resumed: bool):
        self.writer = None
        if not self.place.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        since = self.step if resumed else None
        self.train_log = CSVLog(self.out / "train.csv", ["step", "epoch", "teacher_forcing", "total", *self.terms,
                                                         "updates_per_second"], since)
        self.val_log = CSVLog(self.out / "validation.csv", ["step", "epoch", "psnr_best", "psnr_mean",
                                                            "ssim_best", "ssim_mean", "seconds"], since)
        self.writer = tensorboard_writer(self.out / "tensorboard")

    def _say(self, message: str) -> None:
        if self.place.is_main:
            tqdm.write(message, file=sys.stderr)  # stdout stays for results (the CLI prints JSON)

    # ---- the loop ----------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.config.epoch_size

    def fit(self, stop_after: int | None = None) -> dict:
        """Train until ``epochs * epoch_size`` updates, or until update ``stop_after`` (then write a
        checkpoint and return). Returns a summary (updates, updates per second, best PSNR, paths)."""
        c, end = self.config, min(self.total_steps, stop_after or self.total_steps)
        self._say(f"training {type(self.model).__name__} ({self.model.num_parameters() / 1e6:.2f} M parameters) "
                  f"on {c.dataset}, {self.place.world_size} process(es) on {self.device}, "
                  f"autocast {self.dtype}, updates {self.step} -> {end}, writing to {self.out}")
        progress = tqdm(total=self.total_steps, initial=self.step, disable=not self.place.is_main,
                        desc=f"epoch {self.step // c.epoch_size}", dynamic_ncols=True)
        started, busy, first = time.perf_counter(), 0.0, self.step
        while self.step < end:
            epoch, start = divmod(self.step, c.epoch_size)
            p_true = teacher_forcing_probability(epoch, c.scheduled_sampling_k)
            progress.set_description(f"epoch {epoch}")
            loader = epoch_loader(self.sequences, c, epoch, start, self.place.rank, self.place.world_size,
                                  pin_memory=self.device.type == "cuda")
            tick = time.perf_counter()
            for batch in loader:
                total, terms = self._update(batch, p_true)
                self.step += 1
                progress.update()
                busy += time.perf_counter() - tick
                if self.step % c.log_every == 0 or self.step == end:
                    self._log(epoch, p_true, total, terms, (self.step - first) / max(busy, 1e-9), progress)
                self._after_update(end)
                tick = time.perf_counter()
                if self.step >= end:
                    break
        progress.close()
        return self._finish(first, busy, time.perf_counter() - started)

    def _update(self, batch, p_true):
        x = batch.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            total, terms = self.objective(x, self.config.n_past, p_true)
        if not self._finite(total):
            self._stop_on_non_finite(total, terms)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return total.detach(), {k: v.detach() for k, v in terms.items()}

    def _finite(self, total) -> bool:
        finite = torch.isfinite(total.detach()).float()
        if self.place.enabled:  # every process must stop together, or the others hang in backward
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item())

    def _stop_on_non_finite(self, total, terms):
        last = self.out / "last.pt"
        kept = f"the last good checkpoint is {last} (update {load_checkpoint(last)['step']})" if last.is_file() \
            else "no checkpoint was written yet"
        values = {k: f"{v.item():.4g}" for k, v in terms.items()}
        raise NonFiniteLossError(f"the loss is {total.item()} at update {self.step + 1} (terms {values}); stopped "
                                 f"before updating the model. {kept}; resume from it with a lower lr "
                                 f"(--set lr=...) or amp=off.")

    def _log(self, epoch, p_true, total, terms, rate, progress):
        values = torch.stack([total.float()] + [terms[name].float() for name in self.terms])
        if self.place.enabled:  # the mean over processes is the loss of the global batch
            dist.all_reduce(values)
            values = values / self.place.world_size
        if not self.place.is_main:
            return
        numbers = dict(zip(["total", *self.terms], values.tolist()))
        row = {"step": self.step, "epoch": epoch, "teacher_forcing": p_true, **numbers, "updates_per_second": rate}
        self.train_log.append(row)
        progress.set_postfix({k: f"{v:.3g}" for k, v in numbers.items()}, refresh=False)
        if self.writer is not None:
            for name, value in numbers.items():
                self.writer.add_scalar(f"train/{name}", value, self.step)
            self.writer.add_scalar("train/teacher_forcing", p_true, self.step)

    def _after_update(self, end):
        c, done = self.config, self.step >= end
        finished = self.step == self.total_steps
        if c.val_every and (self.step % c.val_every == 0 or finished):
            self._validate()
        if self.step % c.checkpoint_every == 0 or done:
            self._checkpoint(self.out / "last.pt")

    # ---- validation, checkpoints, the end -----------------------------------------------------
    def _validate(self):
        if self.place.is_main:
            c, started = self.config, time.perf_counter()
            metrics, example = validate(self.model, self.validation, c.n_past, c.val_n_future, c.val_samples,
                                        c.val_batch_size, self.device, self.dtype, seed=c.seed)
            seconds = time.perf_counter() - started
            epoch = (self.step - 1) // c.epoch_size
            self.val_log.append({"step": self.step, "epoch": epoch, **metrics, "seconds": seconds})
            figure = sample_figure(example["truth"], example["samples"], c.n_past, example["psnr"],
                                   title=f"update {self.step}: futures from the learned prior")
            save_figure(figure, self.out / "samples" / f"step_{self.step:07d}.png")
            if self.writer is not None:
                for name, value in metrics.items():
                    self.writer.add_scalar(f"validation/{name}", value, self.step)
                self.writer.add_figure("validation/samples", figure, self.step)
            improved = metrics["psnr_best"] > self.best_psnr
            self._say(f"update {self.step}: validation PSNR {metrics['psnr_best']:.2f} dB best-of-{c.val_samples} "
                      f"({metrics['psnr_mean']:.2f} mean), SSIM {metrics['ssim_best']:.4f} ({seconds:.1f} s)"
                      + (" -- new best" if improved else ""))
            if improved:
                self.best_psnr = metrics["psnr_best"]
                self._checkpoint(self.out / "best.pt")
        if self.place.enabled:
            # Every process tracks the best score, so that any of them could write the checkpoint.
            best = torch.tensor([self.best_psnr], dtype=torch.float64, device=self.device)  # NCCL: on the GPU
            dist.broadcast(best, 0)
            self.best_psnr = best.item()

    def _checkpoint(self, path):
        if self.place.is_main:
            c = self.config
            save_checkpoint(path, {
                "step": self.step, "config": c.to_dict(), "model_class": type(self.model).__name__,
                "model_config": asdict(self.model.config), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": rng_state(), "best_psnr": self.best_psnr, "world_size": self.place.world_size,
                # The stream is a function of the step; recorded so a reader can see where it stood.
                "data": {"epoch": self.step // c.epoch_size, "update_in_epoch": self.step % c.epoch_size,
                         "sequences_seen": self.step * c.batch_size}})
        if self.place.enabled:
            dist.barrier()

    def _finish(self, first, busy, seconds) -> dict:
        summary = {"updates": self.step, "updates_this_run": self.step - first,
                   "updates_per_second": (self.step - first) / max(busy, 1e-9), "seconds": seconds,
                   "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
                   "last": str(self.out / "last.pt"),
                   "best": str(self.out / "best.pt") if (self.out / "best.pt").is_file() else None,
                   "device": str(self.device), "processes": self.place.world_size}
        if self.place.is_main:
            with atomic_path(self.out / "summary.json") as temporary:
                temporary.write_text(json.dumps(summary, indent=2) + "\n")
            if self.writer is not None:
                self.writer.close()
        return summary


def train(config: TrainConfig, resume=None, stop_after: int | None = None, overwrite: bool = False) -> dict:
    """Run (or continue) training as ``config`` says; inside ``torchrun`` as one of its processes.

    ``resume``: True for ``<out>/last.pt``, or a checkpoint path; the run then continues exactly
    where the checkpoint stood. ``stop_after``: stop after that many updates in all (a checkpoint is
    written). ``overwrite``: start afresh in a folder that holds a run. Returns the summary of
    :meth:`Trainer.fit`."""
    place, device, created = init_distributed(config.device)
    try:
        return Trainer(config, place, device, resume=resume, overwrite=overwrite).fit(stop_after)
    finally:
        if created:
            dist.destroy_process_group()


# %% [markdown]
# ## Training
#
# On a GPU (Colab: *Runtime → Change runtime type*), this cell trains the paper's Moving MNIST
# model for a few epochs (set `EPOCHS = 300` for the paper's schedule); on a CPU it runs the `tiny`
# preset, and under CI (`SLAMP_SMOKE=1`) a handful of updates of it. From a shell the same runs are
#
# ```bash
# slamp train --preset tiny --out runs/tiny                      # a few minutes on a CPU
# slamp train --preset mnist --set epochs=20 --out runs/mnist    # on a GPU
# torchrun --nproc_per_node 4 -m slamp train --preset kth        # four GPUs, one global batch of 20
# slamp train --resume --out runs/tiny                           # continue where last.pt stood
# ```

# %%
from slamp.train import TrainConfig, plot_training, train

if SMOKE:
    config = TrainConfig.preset("tiny", epochs=1, epoch_size=6, log_every=1, val_every=6, val_sequences=4,
                                val_samples=2, val_n_future=4, batch_size=8, out=str(WORK / "tiny"))
elif torch.cuda.is_available():
    EPOCHS = 10  # the paper: 300 (about 300k updates)
    config = TrainConfig.preset("mnist", epochs=EPOCHS, val_every=1000, val_sequences=64, out="runs/05_training_mnist")
else:
    config = TrainConfig.preset("tiny", out="runs/05_training_tiny")
summary = train(config, overwrite=True)
print({k: summary[k] for k in ["updates", "updates_per_second", "best_psnr", "device"]})
assert Path(summary["last"]).is_file() and summary["updates"] == config.epochs * config.epoch_size

# %% [markdown]
# The loss curves: the reconstruction terms fall as the model learns to paint the background, then
# the digits; the KL terms first rise (the posterior starts to carry information the prior cannot
# predict), then settle.

# %%
plot_training(config.out, smooth=1 if SMOKE else 5)

# %% [markdown]
# Futures drawn from the learned prior by the best model, for a validation sequence (the sample
# with the highest PSNR first):

# %%
from slamp.train import load_model, sample_figure, validate, validation_videos

best, _ = load_model(Path(config.out) / "best.pt")
videos = validation_videos(config)
metrics, example = validate(best, videos, config.n_past, config.val_n_future, num_samples=4)
print({k: round(v, 3) for k, v in metrics.items()})
sample_figure(example["truth"], example["samples"], config.n_past, example["psnr"], title="best model")

# %% [markdown]
# ## Checks
#
# **A resumed run continues exactly.** Train 6 updates with scheduled sampling (so the coins must
# come out the same too) in one go; train the same config again but stop after 4, then resume:
# updates 5 and 6 have bit-identical losses.

# %%
from dataclasses import replace

from slamp.train import read_log

check = TrainConfig.preset("tiny", epochs=2, epoch_size=3, batch_size=4, n_past=2, n_future=2, log_every=1,
                           val_every=0, scheduled_sampling_k=1.0)
train(replace(check, out=str(WORK / "straight")), overwrite=True)
stopped = replace(check, out=str(WORK / "stopped"))
train(stopped, stop_after=4, overwrite=True)
train(stopped, resume=True)
straight, resumed = read_log(WORK / "straight" / "train.csv"), read_log(WORK / "stopped" / "train.csv")
print("straight:", straight["total"].round(5), "\nresumed: ", resumed["total"].round(5))
assert list(resumed["step"]) == [1, 2, 3, 4, 5, 6] and (straight["total"] == resumed["total"]).all()

# %% [markdown]
# **A damaged checkpoint gets a clear error**, not a stack trace from deep inside `torch.load`:

# %%
from slamp.train import CheckpointError, load_checkpoint

damaged = WORK / "damaged.pt"
damaged.write_bytes((WORK / "stopped" / "last.pt").read_bytes()[:5000])
for path in [damaged, WORK / "stopped" / "train.csv"]:
    try:
        load_checkpoint(path)
        raise AssertionError("no error")
    except CheckpointError as error:
        print(error)

# %% [markdown]
# ## Summary
#
# * `slamp.train.TrainConfig` with the paper's presets (`mnist`, `kth`, `bair`, `kitti`,
#   `cityscapes`) and `tiny`; `apply_overrides` (the command line's `--set field=value`).
# * Scheduled sampling with the inverse-sigmoid decay `teacher_forcing_probability`.
# * A data stream defined by position (`TrainingSequences`, `RankBatches`): resumable anywhere, the
#   same on any number of processes; DDP with shared latent noise and synchronised BatchNorm
#   (`GlobalBatchNorm` on CPUs) is the same run as one process.
# * `train` / `Trainer`: AMP on GPUs, `torch.compile`, atomic checkpoints (`last.pt`, `best.pt`)
#   that resume exactly and load with `weights_only=True`, validation with PSNR/SSIM on futures
#   from the learned prior, CSV/TensorBoard logs, a stop on non-finite losses.
# * From a shell: `slamp train --preset tiny`; `torchrun --nproc_per_node N -m slamp train ...`.
# * Next: the paper's evaluation protocol (`06_evaluation`).
