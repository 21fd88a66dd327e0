"""Small helpers every part of slamp shares: seeding, the device, the autocast precision.

Imports nothing heavy at import time (torch and numpy are imported inside the functions), so the
notebooks' setup cell, the command line and the benchmarks can use it without pulling in training.
"""
from __future__ import annotations

import random


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (every CUDA device too)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def select_device(name: str = "auto", local_rank: int = 0):
    """``"auto"``: CUDA if present, else the CPU. In a multi-GPU run, process ``local_rank`` gets
    GPU ``local_rank``."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} was requested but CUDA is not available; use device=auto or cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def is_device_name(name: str) -> bool:
    """Whether ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    import torch

    if name == "auto":
        return True
    try:
        return torch.device(name).type in ("cpu", "cuda")
    except RuntimeError:
        return False


AMP_MODES = ("auto", "off", "bf16", "fp16")


def autocast_dtype(amp: str, device):
    """The autocast dtype for ``amp`` (one of ``AMP_MODES``) on ``device``; None: full precision.
    ``auto``: bf16 on Ampere or later, fp16 before (Colab's T4), off on the CPU."""
    import torch

    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":  # bf16 needs Ampere (compute capability 8) or later to be fast
        return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


__all__ = ["seed_everything", "select_device", "is_device_name", "AMP_MODES", "autocast_dtype"]
