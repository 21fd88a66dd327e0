"""What the first cell of every notebook calls after installing the package (plain glue).

    from slamp.notebook import setup
    device = setup()      # "cuda" when a GPU is present, else "cpu"

It seeds the generators, picks the device, shows figures inline in a Jupyter kernel (so that an
executed notebook stores them as PNG, even where ``MPLBACKEND=Agg`` is set), and prints where the
notebook runs, which trained models ship with the package (``slamp.pretrained.load(name)`` loads
them offline) and where the MNIST digits are. On Colab it also turns on Colab's widget manager
(for the progress bars and 07's explorer) and prepares MNIST when it is missing; elsewhere it says
what to run (``slamp prepare mnist``), since nothing is downloaded without being asked for.
"""
from __future__ import annotations

import os
import platform
import sys

from slamp.console import kernel_shell


def inline_figures() -> bool:
    """In a Jupyter kernel, switch matplotlib to the inline backend (``%matplotlib inline``) and
    return True; elsewhere (a script, pytest) change nothing and return False.

    A kernel started with ``MPLBACKEND=Agg`` in its environment draws into Agg, which displays
    nothing: ``jupyter nbconvert --execute`` would then store no figure in the notebook."""
    shell = kernel_shell()
    if shell is None:
        return False
    shell.run_line_magic("matplotlib", "inline")
    return True


def on_colab() -> bool:
    """Whether this runs in a Google Colab runtime."""
    return "google.colab" in sys.modules


def colab_widgets() -> bool:
    """On Colab, turn on its custom widget manager, without which ipywidgets (tqdm's bars, 07's
    explorer) do not render there; elsewhere change nothing. True if it was turned on."""
    if not on_colab():
        return False
    from google.colab import output  # only on Colab

    output.enable_custom_widget_manager()
    return True


def mnist_status(prepare: bool | None = None) -> str:
    """One line on the digits the notebooks will use. MNIST missing: prepare it when ``prepare``
    (default: on Colab, which is online), else say what to run."""
    from slamp.data.files import DataError, data_home, searched
    from slamp.data.mnist import DIGITS_ENVIRONMENT, locate_mnist, prepare_mnist

    if os.environ.get(DIGITS_ENVIRONMENT) == "sklearn":
        return "digits: scikit-learn's 8x8 stand-in (SLAMP_DIGITS=sklearn), not MNIST"
    found = locate_mnist()
    if found is not None:
        return f"MNIST: {found[1]}"
    if on_colab() if prepare is None else prepare:
        try:
            return f"MNIST was missing: prepared it in {prepare_mnist().parent} (slamp prepare mnist)"
        except DataError as error:
            return f"MNIST is missing and could not be fetched: {error}"
    return (f"MNIST is missing (searched {searched()}). Before the cells that use it, run `slamp prepare mnist` "
            f"in a terminal (or `!slamp prepare mnist` here; it writes to {data_home()}), or set SLAMP_DATA to "
            "a folder that holds it")


def setup(seed: int = 0, verbose: bool = True) -> str:
    """Seed torch/numpy/random, show figures inline in a Jupyter kernel (and widgets on Colab),
    check for MNIST (see :func:`mnist_status`), return ``"cuda"`` when a GPU is present (else
    ``"cpu"``) and say all of it."""
    import torch

    from slamp import __version__
    from slamp.pretrained import available
    from slamp.runtime import seed_everything

    seed_everything(seed)
    inline_figures()
    colab_widgets()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    digits = mnist_status()
    if verbose:
        where = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({os.cpu_count()} cores)"
        smoke = " · SLAMP_SMOKE=1 (small settings)" if os.environ.get("SLAMP_SMOKE") == "1" else ""
        print(f"slamp {__version__} · torch {torch.__version__} · python {platform.python_version()} · "
              f"{where}{smoke}\nshipped models: {', '.join(available()) or 'none'}\n{digits}")
    return device


__all__ = ["colab_widgets", "inline_figures", "mnist_status", "on_colab", "setup"]


STUDENT_MARKER = "STUDENT_PACKAGE"  # a file at the root of a student package (tools/assignments.py make)


def use(function) -> None:
    """From here on, let the package run this notebook's ``function`` in place of its own one of
    the same name (returning nothing, so that a cell ending with it shows no output). An exercise's cell is followed by ``use(answer)``: in a student's
    notebook the package's models and protocol then run the student's answer, so a wrong answer
    shows in every later cell; in the teacher's notebook the answer is the package's own code, and
    nothing changes.

    Every loaded ``slamp`` module that holds a package function named ``function.__name__`` (its
    own, or one it imported, or in a table such as ``METRICS``) gets ``function``; modules imported
    later read it from there. In a student package (``tools/assignments.py make``) the answer is
    also written into the package's source, in place of the blank, so that the later notebooks
    run the student's own answer too."""
    name = function.__name__
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "slamp" or module_name.startswith("slamp.")):
            continue
        current = getattr(module, name, None)
        if callable(current) and current is not function and (getattr(current, "__module__", "") or "").startswith("slamp"):
            if current.__module__ == module_name:
                _save_in_student_package(module, function)
            setattr(module, name, function)
            _replace_in_tables(module, current, function)


def _save_in_student_package(module, function) -> None:
    """In a student package, replace the definition of ``function.__name__`` in ``module``'s source
    file by ``function``'s source (a notebook cell's); elsewhere do nothing."""
    import ast
    import inspect
    import textwrap
    from pathlib import Path

    path = Path(getattr(module, "__file__", "") or ".")
    root = next((folder for folder in path.parents if folder.name == "slamp"), None)
    if root is None or not (root / STUDENT_MARKER).is_file():
        return
    try:
        answer = textwrap.dedent(inspect.getsource(function)).rstrip("\n")
    except (OSError, TypeError):  # defined where no source is kept
        return
    source = path.read_text()
    lines = source.splitlines()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == function.__name__:
            first = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
            lines[first:node.end_lineno] = answer.splitlines()
            path.write_text("\n".join(lines) + "\n")
            return


def _replace_in_tables(module, old, new) -> None:
    """Module-level dicts that hold ``old`` (or a tuple with it) as a value, e.g.
    ``slamp.evaluate.METRICS = {"psnr": (psnr, True)}``, hold ``new`` instead."""
    for table in [value for value in vars(module).values() if isinstance(value, dict)]:
        for key, value in list(table.items()):
            if value is old:
                table[key] = new
            elif isinstance(value, tuple) and any(item is old for item in value):
                table[key] = tuple(new if item is old else item for item in value)
