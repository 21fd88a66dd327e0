"""The notebooks read along with the paper: each names the sections and equations it implements,
and all of them use the one notation of the table in 00 (the paper's)."""
import re
from pathlib import Path

import jupytext
import pytest


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.py"))


def markdown(path: Path) -> str:
    return "\n".join(cell.source for cell in jupytext.read(path).cells if cell.cell_type == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_names_the_papers_sections_it_implements(path):
    text = markdown(path)
    assert re.search(r"\*Paper: [^*]*(Sec\. \d|App\. [A-E])", text), f"{path.name}: no '*Paper: Sec. N ...*' line"


def test_the_notation_table_in_00_names_every_symbol():
    text = markdown(ROOT / "notebooks" / "00_elbo.py")
    table = text[text.index("| symbol | meaning | in `slamp` |"):]
    for symbol in ["$x_{1:T}$", "$h^f_t", "$z^p_t$", "$z^f_t$", "$q_\\phi(z_t", "$p_\\psi(z_t", "$x^p_t$",
                   "$f_{t-1:t}$", "$x^f_t", "$m_t", "$\\hat x_t", "$\\beta$", "$\\mathcal L$", "$\\text{loss}$"]:
        assert symbol in table, symbol


# Notation that drifted before the table existed: 0-based frames, the mask's letter for motion
# features, a flow without its pair of frames, and the ELBO's letter for the loss to minimise.
DRIFT = {r"x_\{0:|x_0\b|x_\{0\}": "frames are x_1 .. x_T, as in the paper",
         r"m_\{t-1\}|m_t = M\(": "m_t is the mask; motion features are h^f_t",
         r"(?<![\^\w{])f_t\b": "the flow is f_{t-1:t}",
         r"\\mathcal L = \\sum": "𝓛 is the ELBO (maximised); what training minimises is the loss"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_drifts_from_the_notation(path):
    text = markdown(path)
    for pattern, rule in DRIFT.items():
        found = re.search(pattern, text)
        assert found is None, f"{path.name}: {found.group(0)!r} ({rule})"
