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


def test_progress_is_stored_as_its_last_state_and_messages_on_stdout(monkeypatch):
    """A bar in a notebook is one output replaced in place, so the saved notebook shows where the
    run ended (tqdm's widget would store its first state, ``0%``); progress messages go to stdout
    there (stderr's pink reads as a failure). A stopped loop stores where it stopped."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cells = [nbformat.v4.new_code_cell("from slamp.console import progress_bar, say\n"
                                       "for _ in progress_bar(range(200), desc='epoch 1'):\n    pass\nsay('done')"),
             nbformat.v4.new_code_cell("with progress_bar(total=6) as bar:\n    bar.update(4)")]
    executed = NotebookClient(nbformat.v4.new_notebook(cells=cells), timeout=240, kernel_name="python3").execute()
    finished, stopped = executed.cells[0].outputs, executed.cells[1].outputs
    bars = [o for o in finished if o.output_type in ("display_data", "update_display_data")]
    assert len(bars) == 1 and "application/vnd.jupyter.widget-view+json" not in bars[0].data, finished
    assert "epoch 1: 100%|██████████| 200/200" in bars[0].data["text/plain"], bars
    streams = [o for o in finished if o.output_type == "stream"]
    assert [(o.name, o.text) for o in streams] == [("stdout", "done\n")], finished
    assert "4/6" in stopped[0].data["text/plain"] and "67%" in stopped[0].data["text/plain"], stopped


def test_progress_outside_a_kernel_is_tqdm_on_stderr(capsys):
    from slamp.console import progress_bar, say

    assert list(progress_bar(range(3), desc="counting")) == [0, 1, 2]
    say("a message", program="slamp evaluate")
    captured = capsys.readouterr()
    assert captured.out == "" and "counting: 100%" in captured.err and "slamp evaluate: a message\n" in captured.err


def test_the_bar_opens_a_loaders_iterator_as_tqdm_auto_did():
    """The evaluation's random stream must not depend on how its bar is drawn: progress_bar takes
    one number from torch's generator for a DataLoader, as tqdm.auto did when the recorded scores
    were made (tests/test_pretrained.py re-runs one of them)."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from slamp.console import progress_bar

    def next_number(wrap):
        torch.manual_seed(0)
        list(wrap(DataLoader(torch.zeros(4, 1), batch_size=2)))
        return torch.rand(1).item()

    assert next_number(lambda loader: progress_bar(loader, disable=True)) == next_number(
        lambda loader: tqdm(loader, disable=True)) != next_number(lambda loader: loader)
