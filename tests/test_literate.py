"""tools/literate.py: notebooks → slamp/ export and the .py/.ipynb pair check."""
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import literate  # noqa: E402


NOTEBOOK_A = '''# %% [markdown]
# # A

# %%
#| default_exp shapes

# %%
#| export
"""Shapes."""
SIDES = 4


def square(x):
    return x * x

# %%
# not exported
print(square(3))

# %%
#| export viz
def _helper():
    return 1


class Plot:
    pass
'''

NOTEBOOK_B = '''# %%
#| default_exp other

# %%
#| export shapes
def cube(x):
    return x ** 3
'''


def make_project(tmp_path, **notebooks):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name, text in notebooks.items():
        (folder / f"{name}.py").write_text(text)
    package = tmp_path / "slamp"
    package.mkdir()
    return folder, package


def run_tool(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "literate.py"), *map(str, args)],
                          capture_output=True, text=True)


def test_cells_go_to_their_modules_in_notebook_order(tmp_path):
    folder, package = make_project(tmp_path, **{"01_a": NOTEBOOK_A, "02_b": NOTEBOOK_B})
    files = literate.export(literate.notebook_sources(folder), package, tmp_path)
    shapes = files[package / "shapes.py"]
    assert shapes.startswith(literate.MARKER + " from notebooks/01_a.py, notebooks/02_b.py")
    assert shapes.index("def square") < shapes.index("def cube")
    assert "print(square(3))" not in shapes and "#|" not in shapes
    assert shapes.rstrip().endswith("__all__ = ['SIDES', 'square', 'cube']")
    assert files[package / "viz.py"].rstrip().endswith("__all__ = ['Plot']")  # _helper stays private
    namespace = {}
    exec(compile(shapes, "shapes.py", "exec"), namespace)
    assert namespace["__doc__"] == "Shapes." and namespace["cube"](2) == 8


def test_dotted_module_names_become_subpackages(tmp_path):
    folder, package = make_project(tmp_path, a="# %%\n#| export data.mnist\nX = 1\n")
    assert set(literate.export(literate.notebook_sources(folder), package, tmp_path)) == {package / "data" / "mnist.py"}


@pytest.mark.parametrize("text, message", [
    ("# %%\n#| export\nx = 1\n", "before any '#| default_exp'"),
    ("# %%\n#| exprot\nx = 1\n", "unknown directive '#| exprot'"),
    ("# %%\n#| default_exp\n", "needs a module name"),
    ("# %%\n#| export Bad-Name\nx = 1\n", "is not a module name"),
    ("# %%\n#| export m\ndef f(:\n", "do not compile"),
    ("# %%\n#| default_exp m\n\n# %%\nx = 1\n#| export\ny = 2\n", "must be among the first lines"),
    ("# %%\n#| default_exp m\n\n# %%\n# a comment first\n#| export\ny = 2\n", "broken.py, cell 2: line 2"),
])
def test_malformed_directives_are_reported_with_the_notebook(tmp_path, text, message):
    folder, package = make_project(tmp_path, broken=text)
    with pytest.raises(literate.LiterateError, match=message):
        literate.export(literate.notebook_sources(folder), package, tmp_path)
    result = run_tool("export", "--notebooks", folder, "--package", package)
    assert result.returncode == 2 and message in result.stderr


def test_imports_of_every_cell_are_hoisted_grouped_and_merged(tmp_path):
    notebook = '''# %%
#| default_exp m

# %%
#| export
"""Module docstring."""
from __future__ import annotations

import torch
from slamp.warp import warp

X = 1

# %%
#| export
import sys
from slamp.warp import WarpError, flow_to_grid
import os


def f():
    import json  # a function's own import stays in the function
    return json, sys, os
'''
    folder, package = make_project(tmp_path, a=notebook)
    text = literate.export(literate.notebook_sources(folder), package, tmp_path)[package / "m.py"]
    head = text.split("X = 1")[0]
    assert head.index('"""Module docstring."""') < head.index("from __future__") < head.index("import os") \
        < head.index("import sys") < head.index("import torch") < head.index("from slamp.warp")
    assert "from slamp.warp import WarpError, flow_to_grid, warp" in head and head.count("slamp.warp") == 1
    body = text.split("X = 1")[1]
    assert "import sys" not in body and "import json" in body and "    return json, sys, os" in body


def test_editing_an_exported_cell_without_exporting_fails_the_check(tmp_path):
    folder, package = make_project(tmp_path, **{"01_a": NOTEBOOK_A})
    assert run_tool("export", "--notebooks", folder, "--package", package).returncode == 0
    assert run_tool("export", "--check", "--notebooks", folder, "--package", package).returncode == 0

    notebook = folder / "01_a.py"
    notebook.write_text(notebook.read_text().replace("return x * x", "return x * x * 1"))
    result = run_tool("export", "--check", "--notebooks", folder, "--package", package)
    assert result.returncode == 1
    assert "+    return x * x * 1" in result.stdout and "make export" in result.stderr

    assert run_tool("export", "--notebooks", folder, "--package", package).returncode == 0
    assert "x * x * 1" in (package / "shapes.py").read_text()


def test_editing_a_generated_module_by_hand_fails_the_check(tmp_path):
    folder, package = make_project(tmp_path, **{"01_a": NOTEBOOK_A})
    run_tool("export", "--notebooks", folder, "--package", package)
    module = package / "shapes.py"
    module.write_text(module.read_text().replace("SIDES = 4", "SIDES = 5"))
    assert run_tool("export", "--check", "--notebooks", folder, "--package", package).returncode == 1


def test_a_module_no_notebook_exports_any_more_is_stale(tmp_path):
    folder, package = make_project(tmp_path, **{"01_a": NOTEBOOK_A})
    run_tool("export", "--notebooks", folder, "--package", package)
    (package / "old.py").write_text(literate.MARKER + " from notebooks/gone.py\nX = 1\n")
    (package / "handwritten.py").write_text("Y = 2\n")
    result = run_tool("export", "--check", "--notebooks", folder, "--package", package)
    assert result.returncode == 1 and "old.py" in result.stdout and "handwritten" not in result.stdout
    run_tool("export", "--notebooks", folder, "--package", package)
    assert not (package / "old.py").exists() and (package / "handwritten.py").exists()


def test_pair_check_finds_a_missing_or_diverged_ipynb(tmp_path):
    folder, _ = make_project(tmp_path, **{"01_a": NOTEBOOK_A})
    notebook = folder / "01_a.py"
    assert "missing" in "".join(literate.pair_problems([notebook]))

    jupytext.write(jupytext.read(notebook), folder / "01_a.ipynb")
    assert literate.pair_problems([notebook]) == []

    notebook.write_text(notebook.read_text().replace("SIDES = 4", "SIDES = 6"))
    problems = "".join(literate.pair_problems([notebook]))
    assert "differ" in problems and "SIDES = 6" in problems


MAX_CELL_LINES = 60  # "a cell a reader can take in at once": about a screen


def test_no_exported_cell_of_the_notebooks_is_longer_than_a_screen():
    too_long = [f"{cell.notebook.name} -> slamp.{cell.module}: {len(cell.code.splitlines())} lines, starting "
                f"{cell.code.splitlines()[0]!r}"
                for path in literate.notebook_sources() for cell in literate.exported_cells(path)
                if len(cell.code.splitlines()) > MAX_CELL_LINES]
    assert not too_long, "split these cells (each with its paragraph):\n" + "\n".join(too_long)


def test_every_generated_block_names_the_notebook_cell_it_comes_from():
    """`# notebooks/<notebook>.py, cell N` above each block of slamp/: that cell holds the block's
    first line, so a reader of the package finds the paragraph that explains it."""
    marker = re.compile(r"^# (notebooks/[\w.]+\.py), cell (\d+)$", re.MULTILINE)
    checked = 0
    for path in literate.generated_files():
        text = path.read_text()
        for match in marker.finditer(text):
            cells = jupytext.read(literate.ROOT / match[1]).cells
            first = next(line for line in text[match.end():].splitlines() if line.strip())
            assert first in cells[int(match[2]) - 1].source, (path.name, match[0], first)
            checked += 1
    blocks = sum(bool(literate.split_imports(cell.code)[1]) for path in literate.notebook_sources()
                 for cell in literate.exported_cells(path))  # exported cells with more than imports
    assert checked == blocks, (checked, blocks)
