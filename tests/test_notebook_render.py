"""slamp.notebook.setup() makes an executed notebook store its figures as PNG, even when the
kernel's environment says MPLBACKEND=Agg (which displays nothing)."""
import nbformat
from nbclient import NotebookClient

from slamp import notebook


def test_inline_figures_changes_nothing_outside_a_kernel(monkeypatch):
    assert notebook.inline_figures() is False  # pytest is no Jupyter kernel

    class KernelShell:
        kernel, magics = object(), []

        def run_line_magic(self, name, line):
            self.magics.append((name, line))

    monkeypatch.setattr("IPython.get_ipython", lambda: KernelShell())
    assert notebook.inline_figures() is True and KernelShell.magics == [("matplotlib", "inline")]


def test_an_executed_notebook_stores_png_under_mplbackend_agg(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the kernel inherits it, as under `make nbval`
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cells = [nbformat.v4.new_code_cell("from slamp.notebook import setup\ndevice = setup(verbose=False)"),
             nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([0, 1]);")]
    executed = NotebookClient(nbformat.v4.new_notebook(cells=cells), timeout=240, kernel_name="python3").execute()
    outputs = executed.cells[1].outputs
    assert any("image/png" in output.get("data", {}) for output in outputs), outputs
