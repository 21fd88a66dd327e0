"""slamp as a user gets it without a clone: the wheel, installed into a fresh virtual environment
(torch first, the local build), used from an empty folder. `slamp prepare mnist`, `slamp demo` and
a notebook must find real MNIST in the data folder and the shipped models inside the package."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "07_latents.ipynb"  # uses MNIST (the test set, the training stream) and the shipped models

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("SLAMP_SKIP_INSTALL_TEST") == "1", reason="SLAMP_SKIP_INSTALL_TEST=1")]


def run(command, **kwargs):
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with torch (this machine's build, never an unpinned one) and the slamp wheel."""
    where = tmp_path_factory.mktemp("installed")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", where / "dist", ROOT],
        timeout=600)
    (wheel,) = (where / "dist").glob("slamp-*.whl")
    run([sys.executable, "-m", "venv", where / "venv"])
    python = where / "venv" / "bin" / "python"
    torch_version = __import__("torch").__version__.split("+")[0]
    run([python, "-m", "pip", "install", "-q", f"torch=={torch_version}"], timeout=900)
    # the wheel and its dependencies, and what running a notebook takes (Jupyter and Colab have it)
    run([python, "-m", "pip", "install", "-q", wheel, "nbclient", "ipykernel"], timeout=900)
    return where / "venv" / "bin"


@pytest.fixture
def user(tmp_path):
    """An empty working folder and a user's environment: no checkout on the path, nothing prepared."""
    folder = tmp_path / "empty"
    folder.mkdir()
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "SLAMP_DIGITS", "SLAMP_SMOKE", "MPLBACKEND", "VIRTUAL_ENV")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return folder, env


def test_the_wheel_prepares_mnist_and_runs_the_demo_and_a_notebook_from_an_empty_folder(installed, user):
    folder, env = user
    data = Path(env["XDG_CACHE_HOME"]) / "slamp"  # the data folder of a user who set nothing

    # Before `slamp prepare mnist`: the notebook's first cell says what to do, the demo stops with how.
    said = run([installed / "python", "-c", "from slamp.notebook import setup; setup()"], cwd=folder, env=env)
    assert "MNIST is missing" in said and "slamp prepare mnist" in said
    refused = subprocess.run([installed / "slamp", "demo", "--out", "demo"], cwd=folder, env=env,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "slamp prepare mnist" in refused.stderr

    prepared = run([installed / "slamp", "prepare", "mnist"], cwd=folder, env=env, timeout=600)
    assert str(data / "mnist" / "mnist_digits.npz") in prepared

    run([installed / "slamp", "demo", "--out", "demo"], cwd=folder, env=env, timeout=900)
    metrics = json.loads((folder / "demo" / "metrics.json").read_text())
    assert metrics["model"]["source"] == "pretrained:slamp" and metrics["model"]["updates"] > 0
    digits = metrics["test_set"]["config"]
    assert digits["is_mnist"] and str(data / "mnist" / "mnist_digits.npz") in digits["digits"]
    assert (folder / "demo" / "prediction.png").stat().st_size > 10_000

    notebook = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import slamp\nprint('SLAMP FROM', slamp.__file__)"))
    nbformat.write(notebook, folder / NOTEBOOK)
    run([installed / "python", "-c",
         "import sys, nbformat, nbclient\n"
         "notebook = nbformat.read(sys.argv[1], as_version=4)\n"
         "nbclient.NotebookClient(notebook, timeout=900, kernel_name='python3', resources={'metadata': {'path': '.'}}).execute()\n"
         "nbformat.write(notebook, sys.argv[1])\n", folder / NOTEBOOK],
        cwd=folder, env={**env, "SLAMP_SMOKE": "1", "MPLBACKEND": "Agg"}, timeout=1200)
    executed = nbformat.read(folder / NOTEBOOK, as_version=4)
    text = "\n".join(output.get("text", "") for cell in executed.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []))
    assert f"MNIST: {data / 'mnist' / 'mnist_digits.npz'}" in text
    assert "shipped models: appearance_only, slamp, slamp_baseline, svg" in text
    installed_slamp = next(line for line in text.splitlines() if line.startswith("SLAMP FROM"))
    assert str(installed.parent) in installed_slamp and str(ROOT) not in installed_slamp
