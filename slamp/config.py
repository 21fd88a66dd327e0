"""The training config: one frozen dataclass, every field overridable from the command line, bad
values caught (with a message naming the field) before anything is built; the presets.

``TrainConfig.preset(name)`` gives a dataset's recipe from the paper (``slamp.registry``: one
spec per dataset) or one of ours (``tiny``, ``cpu``, ``mnist_finetune``). Plain Python: 05 shows
the recipes and how to override them.
"""
from __future__ import annotations

import difflib
import math
import typing
from dataclasses import asdict, dataclass, fields, replace

from slamp.data.mnist import DIGIT_SOURCES
from slamp.model_registry import MODELS
from slamp.models import PRESETS, ModelConfig
from slamp.registry import DATASETS, DatasetSpec
from slamp.runtime import AMP_MODES, MEMORY_FORMATS, is_device_name


class ConfigError(ValueError):
    """A training config names an unknown field or holds a bad value; the message says which."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. ``TrainConfig.preset(name, **overrides)`` gives the
    paper's settings; intervals are counted in updates (optimiser steps), 0 meaning never."""

    # What to train, on what.
    model: str = "slamp"  # a name in slamp.model_registry.MODELS: svg | slamp_baseline | slamp
    model_preset: str = "mnist"  # sizes from slamp.models.PRESETS
    beta: float | None = None  # KL weight; None: the model preset's
    dataset: str = "mnist"  # a name in slamp.registry.DATASETS: mnist | kth | bair | kitti | cityscapes
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
    # True: one step at a time, BatchNorm's statistics over the B frames of each step, as the public
    # SVG and SLAMP training loops compute them; False: all B*T frames of a clip at once (faster)
    per_frame_batchnorm: bool = False
    seed: int = 0
    init_from: str | None = None  # start from trained weights (a checkpoint, or pretrained:<name>); fresh optimiser
    # Machinery.
    device: str = "auto"  # auto (cuda if present, else cpu) | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16, or fp16 before Ampere, on GPU; off on CPU) | off | bf16 | fp16
    compile: bool = False  # torch.compile the training step
    # auto: channels_last on a CPU (oneDNN's convolutions are faster on it: benchmarks/training.py), contiguous on GPU
    memory_format: str = "auto"  # auto | contiguous | channels_last
    keep_freed_memory: bool = True  # on a CPU: reuse freed tensors' memory, no page faults (slamp.runtime)
    sync_batchnorm: bool = True  # DDP: BatchNorm statistics over the global batch, as on one GPU
    workers: int = 4  # DataLoader worker processes
    # Logs, validation and checkpoints.
    log_every: int = 50
    val_every: int = 10_000  # the public code validated every 10 epochs
    val_sequences: int = 256
    val_samples: int = 5  # futures drawn per validation sequence
    val_seed: int | None = None  # the validation clips' and noise's seed; None: the run's seed
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
        """The preset ``name`` (see :func:`training_presets`) with any fields overridden by keyword."""
        presets = training_presets()
        if name not in presets:
            raise ConfigError(f"unknown training preset {name!r}; choose one of {sorted(presets)}")
        return apply_overrides(presets[name], overrides)

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


# The largest value a count may take: beyond these a run would only end in a MemoryError traceback
# (a batch of 10^9 clips) or overflow a generator (seeds are 32-bit in NumPy).
COUNT_LIMITS = {"batch_size": 1 << 16, "val_batch_size": 1 << 16, "val_sequences": 1 << 20, "val_samples": 1 << 14,
                "n_past": 1000, "n_future": 1000, "val_n_future": 1000, "workers": 256, "seed": (1 << 32) - 1,
                "val_seed": (1 << 32) - 1}
MAX_COUNT = 10 ** 12  # any other count (updates, epochs, intervals)


def _range_problems(c: TrainConfig) -> list[str]:
    """Every float finite (``inf``, ``nan``: refused), every count below its limit."""
    problems = []
    for f in fields(c):
        values = getattr(c, f.name) if isinstance(getattr(c, f.name), tuple) else (getattr(c, f.name),)
        for value in values:
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{f.name} must be a finite number, found {value}")
            elif isinstance(value, int) and not isinstance(value, bool) and value > COUNT_LIMITS.get(f.name, MAX_COUNT):
                problems.append(f"{f.name} must be at most {COUNT_LIMITS.get(f.name, MAX_COUNT):,}, found {value:,}")
    return problems


def _value_problems(c: TrainConfig) -> list[str]:
    """Everything wrong with the values of a well-typed config (an empty list when all is well)."""
    ranges = _range_problems(c)
    if ranges:
        return ranges
    checks = [
        (c.model in MODELS, f"model must be one of {sorted(MODELS)}, found {c.model!r}"),
        (c.model_preset in PRESETS, f"model_preset must be one of {sorted(PRESETS)}, found {c.model_preset!r}"),
        (c.dataset in DATASETS, f"dataset must be one of {sorted(DATASETS)}, found {c.dataset!r}"),
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
        (c.memory_format in MEMORY_FORMATS, f"memory_format must be one of {list(MEMORY_FORMATS)}, found {c.memory_format!r}"),
        (is_device_name(c.device), f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', found {c.device!r}"),
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
        model, frames = ModelConfig.preset(c.model_preset), DATASETS[c.dataset].frames
        if (model.channels, model.image_size) != frames:
            problems.append(f"model_preset {c.model_preset!r} makes {model.channels}-channel {model.image_size} frames, "
                            f"but dataset {c.dataset!r} has {frames[0]}-channel {frames[1]} frames")
    return problems


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


def paper_recipe(spec: DatasetSpec) -> TrainConfig:
    """The paper's training run for dataset ``spec``: its clip, its model preset, its recipe, and
    validation over the test protocol's horizon."""
    n_past, n_future = spec.train_clip
    settings = {"model_preset": spec.model_preset, "dataset": spec.name, "n_past": n_past, "n_future": n_future,
                "val_n_future": spec.test_protocol[1], "out": f"runs/{spec.name}", **spec.recipe}
    return TrainConfig(**settings)


# Ours. `tiny` learns visibly on two CPU cores in a few minutes (for CI, laptops and the README).
# `cpu` trains the shipped models: the paper's clips (5 + 10) and test horizon, a small batch and a
# larger learning rate, because on two CPU cores updates, not examples, are what is scarce.
# `mnist_finetune` is the paper's second MNIST stage (App. C.3: lr 1e-5, beta 5e-5, Adam beta1
# 0.7), started from a trained model with `--set init_from=PATH`; the paper does not say how
# long it ran: 50 epochs is our choice.
OUR_PRESETS = {
    "tiny": TrainConfig(model_preset="tiny", dataset="mnist", n_past=2, n_future=4, batch_size=16, lr=1e-3,
                        epochs=4, epoch_size=50, workers=0, log_every=5, val_every=50, val_sequences=16,
                        val_samples=3, val_n_future=8, checkpoint_every=50, out="runs/tiny"),
    "cpu": TrainConfig(model_preset="cpu", dataset="mnist", n_past=5, n_future=10, batch_size=8, lr=1e-3,
                       epochs=30, epoch_size=100, workers=1, log_every=10, val_every=250, val_sequences=48,
                       val_samples=5, val_n_future=20, checkpoint_every=50, out="runs/cpu"),
    "mnist_finetune": TrainConfig(model_preset="mnist", dataset="mnist", n_past=5, n_future=10, batch_size=32,
                                  lr=1e-5, beta=5e-5, betas=(0.7, 0.999), epochs=50, val_n_future=20,
                                  out="runs/mnist_finetune"),
    # SVG-LP as the public SVG code's README trains it (train_svg_lp.py: Adam lr 2e-3, batch 100,
    # 300 epochs of 600 updates, BatchNorm per frame); validated over the SLAMP paper's test horizon.
    "svg_mnist": TrainConfig(model="svg", model_preset="svg_mnist", dataset="mnist", n_past=5, n_future=10,
                             batch_size=100, lr=2e-3, epochs=300, epoch_size=600, per_frame_batchnorm=True,
                             val_n_future=20, out="runs/svg_mnist"),
    "svg_bair": TrainConfig(model="svg", model_preset="svg_bair", dataset="bair", n_past=2, n_future=10,
                            batch_size=100, lr=2e-3, epochs=300, epoch_size=600, per_frame_batchnorm=True,
                            val_n_future=28, out="runs/svg_bair"),
}


def training_presets() -> dict[str, TrainConfig]:
    """Every preset by name: the paper's recipe of each registered dataset, then ours."""
    return {**{name: paper_recipe(spec) for name, spec in DATASETS.items()}, **OUR_PRESETS}


__all__ = ["ConfigError", "TrainConfig", "parse_value", "apply_overrides", "paper_recipe", "OUR_PRESETS",
           "training_presets"]
