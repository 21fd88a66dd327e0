"""What the first cell of every notebook calls after installing the package (plain glue).

    from slamp.notebook import setup
    device = setup()      # "cuda" when a GPU is present, else "cpu"

It seeds the generators, picks the device, and
prints where the notebook runs and which trained models ship with the package
(``slamp.pretrained.load(name)`` loads them offline).
"""
from __future__ import annotations

import os
import platform


def setup(seed: int = 0, verbose: bool = True) -> str:
    """Seed torch/numpy/random, return ``"cuda"`` when a GPU is present (else ``"cpu"``) and say so."""
    import torch

    from slamp import __version__
    from slamp.pretrained import available
    from slamp.train import seed_everything

    seed_everything(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if verbose:
        where = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({os.cpu_count()} cores)"
        smoke = " · SLAMP_SMOKE=1 (small settings)" if os.environ.get("SLAMP_SMOKE") == "1" else ""
        print(f"slamp {__version__} · torch {torch.__version__} · python {platform.python_version()} · "
              f"{where}{smoke}\nshipped models: {', '.join(available()) or 'none'}")
    return device


__all__ = ["setup"]
