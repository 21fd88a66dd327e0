"""Small helpers every part of slamp shares: seeding, the device, the autocast precision, the optimiser.

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


MEMORY_FORMATS = ("auto", "contiguous", "channels_last")


def memory_format(name: str, device):
    """The ``torch.memory_format`` of a model's weights (and so of its activations) for ``name``
    (one of ``MEMORY_FORMATS``) on ``device``. ``auto``: channels-last on the CPU, where oneDNN's
    convolutions run faster on it (``benchmarks/training.py --memory-format``); contiguous on a GPU,
    where it has not been measured."""
    import torch

    if name == "auto":
        name = "channels_last" if device.type == "cpu" else "contiguous"
    return {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}[name]


# glibc's mallopt parameters, and the thresholds its dynamic policy settles at on a 64-bit system
# once a tensor of 32 MB or more has been freed (what a process training these models runs with).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
GLIBC_SETTLED = {"mmap_threshold": 32 << 20, "trim_threshold": 64 << 20}


def keep_freed_memory(enabled: bool = True) -> bool:
    """Let the C allocator keep the memory of freed tensors for the next ones (Linux with glibc).

    By default glibc gives every block of 32 MB or more (one activation of a training step at the
    paper's sizes) its own ``mmap`` and hands it back to the kernel when the tensor is freed, so the
    next step's tensors fault in fresh, zeroed pages one 4 KiB page at a time
    (``benchmarks/training.py --allocator`` measures the cost). Enabled, blocks up to 1 GiB come from the heap and
    freed memory is never returned, so after a few steps a step reuses the memory of the ones
    before without a page fault (``tests/test_runtime.py``). The price: the process keeps the
    memory of its largest step until it exits, and a little more while the heap settles (torch's
    64-byte-aligned blocks leave small remainders in glibc's caches that keep a freed block from
    merging with its neighbours, so a few copies of a block size can pile up before it is reused).
    ``enabled=False`` sets glibc's settled defaults (``GLIBC_SETTLED``) back. Returns whether the
    setting took (False where the C library is not glibc, e.g. macOS or Windows: nothing changes)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if enabled:  # -1 as a size_t: never trim the heap
        mmap_threshold, trim_threshold = 1 << 30, -1
    else:
        mmap_threshold, trim_threshold = GLIBC_SETTLED["mmap_threshold"], GLIBC_SETTLED["trim_threshold"]
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))


def adam(parameters, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
    """A ``torch.optim.Adam`` for all parameters (the public code kept one per module, with equal settings: the
    same updates). The fused kernel updates every tensor in one call, faster than the default
    (``benchmarks/optimizer.py``); a torch without it falls back to the default."""
    import torch

    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, betas=betas, eps=eps, fused=True)
    except (RuntimeError, TypeError):  # an older torch, or a device without the fused kernel
        return torch.optim.Adam(parameters, lr=lr, betas=betas, eps=eps)



__all__ = ["adam", "seed_everything", "select_device", "is_device_name", "AMP_MODES", "autocast_dtype", "MEMORY_FORMATS",
           "memory_format", "keep_freed_memory"]
