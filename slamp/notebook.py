"""What the first cell of every notebook calls after installing the package (plain glue).

    from slamp.notebook import setup
    device = setup()      # "cuda" when a GPU is present, else "cpu"

It seeds the generators, picks the device, shows figures inline in a Jupyter kernel (so that an
executed notebook stores them as PNG, even where ``MPLBACKEND=Agg`` is set), and prints where the
notebook runs and which trained models ship with the package (``slamp.pretrained.load(name)``
loads them offline).
"""
from __future__ import annotations

import os
import platform


def inline_figures() -> bool:
    """In a Jupyter kernel, switch matplotlib to the inline backend (``%matplotlib inline``) and
    return True; elsewhere (a script, pytest) change nothing and return False.

    A kernel started with ``MPLBACKEND=Agg`` in its environment draws into Agg, which displays
    nothing: ``jupyter nbconvert --execute`` would then store no figure in the notebook."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:  # plain IPython has no inline display
        return False
    shell.run_line_magic("matplotlib", "inline")
    return True


def setup(seed: int = 0, verbose: bool = True) -> str:
    """Seed torch/numpy/random, show figures inline in a Jupyter kernel, return ``"cuda"`` when a
    GPU is present (else ``"cpu"``) and say so."""
    import torch

    from slamp import __version__
    from slamp.pretrained import available
    from slamp.train import seed_everything

    seed_everything(seed)
    inline_figures()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if verbose:
        where = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({os.cpu_count()} cores)"
        smoke = " · SLAMP_SMOKE=1 (small settings)" if os.environ.get("SLAMP_SMOKE") == "1" else ""
        print(f"slamp {__version__} · torch {torch.__version__} · python {platform.python_version()} · "
              f"{where}{smoke}\nshipped models: {', '.join(available()) or 'none'}")
    return device


__all__ = ["inline_figures", "setup"]
