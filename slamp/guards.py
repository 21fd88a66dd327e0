"""Guards at the models' door and around their BatchNorm statistics (summed up in 03).

``check_backbone`` refuses a frame size a backbone cannot make; ``check_video`` refuses anything
that is not a video ``(B, T, C, H, W)`` of a model's frames, finite floats in [0, 1], with a
message that says what was expected. ``batchnorm_statistics`` / ``restore_batchnorm_statistics``
let a training forward put BatchNorm's running statistics back when its prediction is not finite,
so one bad batch cannot poison every later prediction.

Plain Python, tested in ``tests/test_models.py`` (the video checks) and ``tests/test_faults.py``.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from slamp.nn import BACKBONES


def is_count(value) -> bool:
    """A whole number (an ``int`` or a NumPy integer such as ``np.int64(2)``; not a ``bool`` or a ``float``)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_past(x: torch.Tensor, n_past, teacher_forcing) -> None:
    """A ``ValueError`` unless ``n_past`` is a whole number in [1, T-1] for the video ``x`` ``(B, T, ...)``
    and ``teacher_forcing`` a probability (not NaN)."""
    if not is_count(n_past) or not 1 <= n_past < x.shape[1]:
        raise ValueError(f"n_past must be in [1, T-1] = [1, {x.shape[1] - 1}] (a whole number), found {n_past!r}")
    if not 0 <= teacher_forcing <= 1:  # NaN too
        raise ValueError(f"teacher_forcing must be a probability in [0, 1], found {teacher_forcing!r}")


def check_backbone(config) -> None:
    """A ``ValueError`` when the backbone of ``config`` (a ``ModelConfig``) cannot make its frames."""
    height, width = config.image_size
    if config.backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, found {config.backbone!r}")
    if config.backbone != "conv" and (height, width) != (64, 64):
        raise ValueError(f"the {config.backbone} backbone works at 64x64, found image_size={config.image_size}; "
                         f"use backbone='conv' for other sizes")
    if config.backbone == "conv" and (height % 2 or width % 2 or min(height, width) < 32):
        raise ValueError(f"the conv backbone needs an even height and width of at least 32, found {config.image_size}")
    levels = config.conv_levels
    if levels is not None and (config.backbone != "conv" or len(levels) != 5 or any(len(v) != 3 for v in levels)):
        raise ValueError(f"conv_levels must be five (stride, height, width) of the conv backbone, found {levels!r}")


def check_video(config, x: torch.Tensor, name: str = "x", min_frames: int = 1,
                dtype: torch.dtype | None = None) -> None:
    """A ``ValueError`` naming what was expected when ``x`` is not a video ``(B, T, C, H, W)`` of
    ``config``'s frames with at least ``min_frames`` frames, finite, in [0, 1], of the model's
    ``dtype`` (any float under autocast)."""
    height, width = config.image_size
    expected = f"(B, T, {config.channels}, {height}, {width})"
    if not torch.is_tensor(x) or x.ndim != 5 or x.shape[0] == 0:
        found = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be a video {expected} with B >= 1, found {found}")
    if x.shape[2] != config.channels:
        raise ValueError(f"{name} must have {config.channels} channel(s) {expected}, found {x.shape[2]} in {tuple(x.shape)}")
    if tuple(x.shape[-2:]) != (height, width):
        raise ValueError(f"{name} must be {height}x{width} for the {config.backbone} backbone {expected}, "
                         f"found {tuple(x.shape[-2:])}")
    if x.shape[1] < min_frames:
        raise ValueError(f"{name} must have at least {min_frames} frames, found {x.shape[1]}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point in [0, 1], found {x.dtype}")
    if dtype is not None and x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(f"{name} is {x.dtype} but the model computes in {dtype}: pass {name}.to({dtype})")
    if torch.compiler.is_compiling():
        # Reading values back would split a torch.compile graph (and stall a CUDA graph); the
        # shapes above are checked while tracing.
        return
    low, high = (value.item() for value in torch.aminmax(x))  # one pass; NaN and inf show in the extremes
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} holds {int((~torch.isfinite(x)).sum())} NaN or infinite values")
    if low < -1e-3 or high > 1 + 1e-3:
        hint = ": it looks like 0-255 pixel values, divide by 255" if high > 2 else ""
        raise ValueError(f"{name} must be in [0, 1], found values in [{low:.3g}, {high:.3g}]{hint}")


def batchnorm_statistics(model: nn.Module) -> dict:
    """A copy of every BatchNorm layer's running statistics, ``{name: tensor}``."""
    return {name: value.clone() for name, value in model.named_buffers()
            if name.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def restore_batchnorm_statistics(model: nn.Module, saved: dict) -> None:
    """Put back the statistics :func:`batchnorm_statistics` copied."""
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for name, value in saved.items():
            buffers[name].copy_(value)


def is_finite(*tensors: torch.Tensor) -> bool:
    """Whether every value of every tensor is finite."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)
