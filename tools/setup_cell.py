"""The first code cell of every notebook, kept identical everywhere (one source, no drift).

    python tools/setup_cell.py          write it into every notebook (.py; then `make sync`)
    python tools/setup_cell.py --check  fail if a notebook's first code cell differs
"""
from __future__ import annotations

import sys
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
SETUP_CELL = '''\
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

device = setup()  # "cuda" or "cpu"'''


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9]*.py"))


def first_code_cell(notebook):
    return next(cell for cell in notebook.cells if cell.cell_type == "code")


def main(argv=None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    wrong = []
    for path in notebooks():
        notebook = jupytext.read(path)
        cell = first_code_cell(notebook)
        if cell.source != SETUP_CELL:
            wrong.append(path)
            if not check:
                cell.source = SETUP_CELL
                jupytext.write(notebook, path, fmt="py:percent")
    if check and wrong:
        print("first code cell differs from tools/setup_cell.py in: " + ", ".join(p.name for p in wrong))
        return 1
    print(f"{'rewrote' if wrong and not check else 'checked'} {len(wrong) if wrong else len(notebooks())} notebook(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
