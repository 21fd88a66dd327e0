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


def assert_none_found(rules: dict, text: str, name: str) -> None:
    """Fail on the first pattern of ``rules`` (``{pattern: the rule it breaks}``) found in ``text``."""
    for pattern, rule in rules.items():
        found = re.search(pattern, text)
        assert found is None, f"{name}: {found.group(0)!r} ({rule})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_drifts_from_the_notation(path):
    assert_none_found(DRIFT, markdown(path), path.name)


def notebook_text(path: Path) -> str:
    """All a reader sees of the notebook's own words: its markdown, and its code cells (comments,
    figure titles, printed messages), from the .py half and from the .ipynb half."""
    halves = [jupytext.read(path), jupytext.read(path.with_suffix(".ipynb"))]
    return "\n".join(cell.source for notebook in halves for cell in notebook.cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_has_a_tab_in_its_text(path):
    """A TAB in a notebook is almost always a ``\\t`` eaten by a string escape: ``$n_\\text{past}$``
    written where ``\\t`` is read as a TAB shows as ``n_ ext{past}``."""
    for line in notebook_text(path).splitlines():
        assert "\t" not in line, f"{path.name}: a TAB in {line.strip()!r} (a '\\t' of '\\text' eaten?)"


# Frames are counted from 1, as in the paper and 00's table: x_1 .. x_T, "frames 1-5" conditioning.
# What counts from 0 slipped in from Python's indices: "frames 0-14", "frame 0", "0 is frame
# n_past", a label "frame {n_past + t}" for future step t = 0, 1, ... (that is frame n_past + t + 1).
FROM_ZERO = {r"\bframes? 0\b(?![.,]\d)": "frames are numbered from 1",
             r"\b0 is frame\b": "step 0 is frame 1 (or n_past + 1 for the future)",
             r"frame \{[\w.]*n_past \+ [\w.]*\bt\}": "future step t = 0 is frame n_past + 1: add 1"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_frames_are_counted_from_1(path):
    assert_none_found(FROM_ZERO, notebook_text(path), path.name)


def test_the_frame_and_tab_checks_find_what_they_look_for():
    for wrong in ["frames 0-14", "(frames 0-4)", "frames 0..t-1", "frame 0 of", "(0 is frame ``n_past``)",
                  'f"frame {explorer.n_past + explorer.t} "']:
        assert any(re.search(pattern, wrong) for pattern in FROM_ZERO), wrong
    for right in ["frames 1-15", "frame 0.5 s", "frame {n_past + t + 1}", "frame 10", "x_{t-1}"]:
        assert not any(re.search(pattern, right) for pattern in FROM_ZERO), right
