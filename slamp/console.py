"""Where a long run's progress and messages go: a terminal, or a notebook (plain Python, the engine).

In a terminal, tqdm's bar and the messages go to stderr (stdout stays for results: the command
line prints JSON there). In a Jupyter kernel, the bar is one output replaced in place and the
messages go to stdout, so that a saved notebook reads as the run ended (see :class:`DisplayLine`).
"""
from __future__ import annotations

import sys


def kernel_shell():
    """The IPython shell of the Jupyter kernel this runs in, or None (a terminal, a script, pytest,
    plain IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (a notebook, Colab)."""
    return kernel_shell() is not None


class DisplayLine:
    """A file for tqdm that shows the last line written to it as one output of the notebook,
    replaced in place (an IPython display with an id).

    Why not tqdm's widget bar: a notebook saved after a run stores a widget as the text of its
    *first* state (``0%| | 0/200``), which is what GitHub, nbviewer and a freshly opened notebook
    show of a finished run, and a stopped run ends as a red bar that reads as a failure. A display
    updated in place is stored in its last state (``100%|██████████| 200/200 [02:51, 1.17it/s]``),
    and needs no widget manager (Colab, VS Code)."""

    encoding = "utf-8"  # tqdm draws its bar in Unicode blocks where the file's encoding allows

    def __init__(self):
        from IPython.display import display

        self.handle = display({"text/plain": ""}, raw=True, display_id=True)

    def write(self, text: str) -> None:
        line = text.strip("\r\n")  # tqdm writes "\r" + the bar, and "\n" when it closes
        if line:
            self.handle.update({"text/plain": line}, raw=True)

    def flush(self) -> None:
        pass


def progress_bar(iterable=None, **options):
    """A tqdm progress bar: in a Jupyter kernel a text bar kept in one output (:class:`DisplayLine`),
    elsewhere tqdm's terminal bar on stderr. ``options`` are tqdm's (``total``, ``desc``,
    ``disable``, ...).

    The bar is ``tqdm.asyncio``'s class, the one ``tqdm.auto`` gave before this function existed.
    It matters for the scores: that class opens the iterable's iterator as soon as it is made, and
    a ``DataLoader``'s iterator draws its base seed from torch's global generator when it opens. So
    evaluating over a ``DataLoader`` takes one more number from the generator than plain tqdm
    would, and the samples drawn after it, and every score recorded with them (the README's
    tables, the recorded check, the notebooks), stay what they were."""
    from tqdm.asyncio import tqdm

    if in_kernel() and not options.get("disable") and "file" not in options:
        options.pop("dynamic_ncols", None)  # no terminal to measure: the bar keeps tqdm's 10 cells
        options["file"] = DisplayLine()
    return tqdm(iterable, **options)


def say(message: str, program: str | None = None) -> None:
    """Print a progress message: on stderr in a terminal (stdout stays for results: the command
    line prints JSON there), on stdout in a notebook, where stderr's pink background would make
    every ordinary line read as a warning. Keeps a running bar intact (``tqdm.write``)."""
    from tqdm import tqdm

    tqdm.write(f"{program}: {message}" if program else message, file=sys.stdout if in_kernel() else sys.stderr)


__all__ = ["kernel_shell", "in_kernel", "DisplayLine", "progress_bar", "say"]
