"""The committed notebooks show their figures: GitHub and Colab readers see the stored outputs.

A code cell *draws a figure* when, outside the functions it defines, it calls pyplot's drawing
functions (``plt.subplots``, ``plt.figure``, ``plt.imshow``, ``plt.show`` ...), a function of
``slamp`` that draws (annotated to return a matplotlib ``Figure``, like ``show_row`` or
``plot_training``, or calling pyplot's drawing functions, like ``Explorer.figure``), or a function
the notebook defines that does either; or when its stored outputs hold the text
``<Figure size ...>`` (what a non-inline backend such as ``MPLBACKEND=Agg`` leaves). Such a cell
must store an ``image/png``, unless it closes its figure (``plt.close``). A notebook must store some
outputs. Re-render with ``make notebooks``.

No code cell stores an object's repr as its output (``<torch._C.Generator at 0x7f...>``,
``<function __main__.warp(...)>``): it is what a cell's last expression leaves when its value was
not meant to be shown (end the line with ``;`` or assign it to ``_``), and a reader learns nothing
from a memory address.
"""
import ast
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
PYPLOT_DRAWERS = {"plt." + name for name in ("figure", "subplots", "subplot", "subplot_mosaic", "plot", "imshow",
                                              "matshow", "scatter", "bar", "hist", "show")}
FIGURE_TEXT = re.compile(r"<Figure size \d")
# An object's default repr (`<... at 0x...>`) and IPython's for functions, methods and classes.
# A widget's text repr, what GitHub shows of a stored widget without a picture: `VBox(children=(...`.
WIDGET_TEXT = re.compile(r"^[A-Z]\w*\(children=")
OBJECT_REPR = re.compile(r"<[^<>\n]* at 0x[0-9a-fA-F]+>|<(?:function|bound method|built-in function|class) [^<>\n]*>")


@lru_cache(maxsize=1)
def slamp_figure_functions() -> frozenset:
    """Names of slamp's functions and methods that draw (read from their source): annotated to
    return a matplotlib Figure, or calling pyplot's drawing functions (directly or through each
    other) without closing the figure."""
    definitions = [node for path in sorted((ROOT / "slamp").rglob("*.py")) if path.name not in ("__main__.py", "cli.py")
                   for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)]
    annotated = {node.name for node in definitions if node.returns is not None and "Figure" in ast.unparse(node.returns)}
    calls = {}
    for node in definitions:
        calls.setdefault(node.name, set()).update(_calls(node, top_level=False))
    # Figure() objects made without pyplot show only when returned to the cell, so nothing spreads
    # from the annotated functions; from pyplot's drawers it does (pyplot shows what it made).
    return frozenset((_spread(calls, PYPLOT_DRAWERS) - PYPLOT_DRAWERS) | annotated)


def _spread(calls: dict, drawers) -> set:
    """``drawers`` and every function of ``calls`` (name: names it calls) that calls one of them,
    directly or through each other, and does not close its figure."""
    drawers = set(drawers)
    while True:
        found = {name for name, called in calls.items() if called & drawers and "plt.close" not in called}
        if found <= drawers:
            return drawers
        drawers |= found


def _parse(source: str):
    """The cell's syntax tree, IPython magics and shell lines blanked; None if it is not Python."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _calls(node, top_level: bool = True) -> set:
    """Names called under ``node`` (``plt.name`` for pyplot), not inside the functions and classes
    it defines when ``top_level``."""
    found = set()
    for child in ast.iter_child_nodes(node):
        if top_level and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(child, ast.Call):
            func = child.func
            if isinstance(func, ast.Name):
                found.add(func.id)
            elif isinstance(func, ast.Attribute):
                is_pyplot = isinstance(func.value, ast.Name) and func.value.id in ("plt", "pyplot")
                found.add(f"plt.{func.attr}" if is_pyplot else func.attr)
        found |= _calls(child, top_level)
    return found


def figure_problems(notebook: dict, name: str) -> list[str]:
    """What ``notebook`` (parsed .ipynb JSON) lacks: a stored PNG for each cell that draws a figure,
    or any output at all. Each problem names the notebook and the cell (numbered from 1, as Jupyter
    lists all cells)."""
    cells = [(number, cell) for number, cell in enumerate(notebook["cells"], start=1) if cell["cell_type"] == "code"]
    if not any(cell.get("outputs") for _, cell in cells):
        return [f"{name}: no code cell stores any output (the notebook was never run, or saved cleared)"]
    trees = {number: _parse("".join(cell["source"])) for number, cell in cells}
    local = {node.name: _calls(node, top_level=False) for tree in trees.values() if tree
             for node in tree.body if isinstance(node, ast.FunctionDef)}  # the notebook's own functions
    drawers = _spread(local, PYPLOT_DRAWERS | slamp_figure_functions())
    problems = []
    for number, cell in cells:
        outputs = cell.get("outputs", [])
        source = "".join(cell["source"])
        tree = trees[number]
        called = _calls(tree) if tree else {d for d in drawers if re.search(rf"\b{re.escape(d)}\(", source)}
        reasons = sorted(called & drawers)
        if any(FIGURE_TEXT.search("".join(o.get("data", {}).get("text/plain", ""))) for o in outputs):
            reasons.append("'<Figure size ...>' text in its outputs")
        if not reasons or "plt.close" in called:
            continue
        if not any("image/png" in o.get("data", {}) for o in outputs):
            first = next((line for line in source.splitlines() if line.strip()), "")[:60]
            problems.append(f"{name}, cell {number} ({first!r}): draws a figure ({', '.join(reasons)}) "
                            f"but stores no image/png")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_stores_its_figures(path):
    problems = figure_problems(json.loads(path.read_text()), f"notebooks/{path.name}")
    assert not problems, ("stored notebooks must show their figures; re-render with `make notebooks`:\n  "
                          + "\n  ".join(problems))


def object_repr_problems(notebook: dict, name: str) -> list[str]:
    """The code cells of ``notebook`` whose stored outputs (printed text or a result's text/plain)
    show an object's repr, each named with its cell number (from 1, as Jupyter lists all cells)."""
    problems = []
    for number, cell in enumerate(notebook["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
            found = OBJECT_REPR.search(text)
            if found:
                problems.append(f"{name}, cell {number}: stores {found.group(0)!r} (end the line with ';' "
                                f"or assign the value to '_')")
            data = output.get("data", {})
            widget = WIDGET_TEXT.match(text) or "application/vnd.jupyter.widget-view+json" in data
            if widget and "image/png" not in data:  # e.g. tqdm's widget bar, stored as its first state: 0%
                problems.append(f"{name}, cell {number}: stores a widget as its text {text[:40]!r}... "
                                f"(give it a picture for readers without a kernel, or use slamp.console's bar)")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_committed_notebook_stores_an_object_repr(path):
    problems = object_repr_problems(json.loads(path.read_text()), f"notebooks/{path.name}")
    assert not problems, "a stored output shows a memory address, not a result:\n  " + "\n  ".join(problems)


def test_the_check_finds_object_reprs():
    result = {"output_type": "execute_result", "data": {"text/plain": "<torch._C.Generator at 0x7ff4381294b0>"}}
    function = {"output_type": "execute_result", "data": {"text/plain": "<function __main__.warp(image, flow)>"}}
    printed = {"output_type": "stream", "name": "stdout", "text": "made <object object at 0x10>\n"}
    assert object_repr_problems(_notebook(("torch.manual_seed(0)", [result])), "nb") == [
        "nb, cell 1: stores '<torch._C.Generator at 0x7ff4381294b0>' (end the line with ';' or assign the value to '_')"]
    assert len(object_repr_problems(_notebook(("warp", [function]), ("print(o)", [printed])), "nb")) == 2
    harmless = _notebook(("fig", [PNG, TEXT]), ("print(1)", [PRINTED]), ("x < y and y > z", [
        {"output_type": "execute_result", "data": {"text/plain": "tensor([0.1000]) <IPython.core.display.Image object>"}}]))
    assert object_repr_problems(harmless, "nb") == []
    widget = {"output_type": "display_data", "data": {"text/plain": "VBox(children=(HBox(children=(Bou",
                                                      "application/vnd.jupyter.widget-view+json": {}}}
    assert "stores a widget as its text" in object_repr_problems(_notebook(("explorer_widget(e)", [widget])), "nb")[0]
    bar = {"output_type": "display_data", "data": {"text/plain": "  0%|          | 0/200 [00:00<?, ?it/s]",
                                                   "application/vnd.jupyter.widget-view+json": {}}}
    assert "stores a widget as its text '  0%|" in object_repr_problems(_notebook(("train(config)", [bar])), "nb")[0]
    pictured = {"output_type": "display_data", "data": dict(widget["data"], **{"image/png": "iVBOR"})}
    assert object_repr_problems(_notebook(("explorer_widget(e)", [pictured])), "nb") == []


def _notebook(*cells):
    return {"cells": [{"cell_type": "code", "source": source, "outputs": outputs} for source, outputs in cells]}


PNG = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure size 640x480 with 1 Axes>"}}
TEXT = {"output_type": "execute_result", "data": {"text/plain": "<Figure size 640x480 with 1 Axes>"}}
PRINTED = {"output_type": "stream", "name": "stdout", "text": "ok\n"}


def test_the_check_finds_figures_without_images():
    assert slamp_figure_functions() >= {"show_row", "show_streams", "plot_training", "sample_figure", "figure"}
    assert not slamp_figure_functions() & {"train", "save_figure", "explorer_widget"}  # no figure shown in the cell
    assert figure_problems(_notebook(("fig, ax = plt.subplots()", [PNG]), ("print(1)", [PRINTED])), "nb") == []
    missing = figure_problems(_notebook(("print(1)", [PRINTED]), ("%matplotlib inline\nshow_row(images);", [])), "nb")
    assert missing == ["nb, cell 2 ('%matplotlib inline'): draws a figure (show_row) but stores no image/png"]
    assert "'<Figure size ...>' text" in figure_problems(_notebook(("make_it()", [TEXT])), "nb")[0]
    # A function that draws is not a drawing until it is called; then its callers count, too.
    helpers = ("def draw(x):\n    fig, ax = plt.subplots()\n    return fig\n\ndef twice(x):\n    return draw(draw(x))", [])
    assert figure_problems(_notebook(helpers, ("print(1)", [PRINTED])), "nb") == []
    assert "(twice)" in figure_problems(_notebook(helpers, ("twice(3)", [PRINTED])), "nb")[0]
    assert figure_problems(_notebook(("fig = plt.figure()\nplt.close(fig)", [PRINTED])), "nb") == []
    assert "no code cell stores any output" in figure_problems(_notebook(("x = 1", [])), "nb")[0]
