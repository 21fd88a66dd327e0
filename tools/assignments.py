"""Course assignments from the notebooks: student notebooks and a student build of the package
without the solutions, and an autograder that runs each submission in a process of its own.

In a notebook's source, the code of an exercise sits between two marker lines:

    # BEGIN SOLUTION warp
    coords = pixel_grid(...) + flow...
    # END SOLUTION

The package keeps the code (tools/literate.py drops the two lines); a student version replaces the
block with ``raise NotImplementedError(...)`` at the same indentation.

    python tools/assignments.py make [--out assignments]   student notebooks (.py + .ipynb, no outputs)
                                                          and the student package, <out>/slamp
    python tools/assignments.py grade FILE [FILE ...]      check each notebook's exercises
    python tools/assignments.py list                       the exercises and where they are

**The student package** is the package exported from the student notebooks: every exercise
function raises ``NotImplementedError``, so ``import slamp`` gives no solution away. The student
notebooks' setup cell puts it first on the path; after each exercise a notebook calls
``slamp.notebook.use(function)``, so that the package's later code (the models, the protocol) runs
the student's function and a wrong answer shows downstream.

**Grading** runs each submission in a subprocess with a time limit (``--timeout``, default 60 s).
For each exercise it takes the cell that defines the function, runs it in the namespace of the
function's module (its imports and helpers, the package's versions of the other exercises), and
runs the exercise's checks, which name the likely mistake when one fails. A function that imports the package, calls
the package's version or is the package's object is rejected, and the report says why; so is a
cell that repeats a comment of the hidden solution (a copy: the student version has none). Exit
status: the number of exercises that did not pass.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jupytext


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(ROOT / "tools"))
import assignment_checks as checks  # noqa: E402  (the checks and their hints, beside this file)
import literate  # noqa: E402

from slamp.notebook import STUDENT_MARKER  # noqa: E402  (what slamp.notebook.use looks for)


BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?:\s+(?P<name>\S+))?\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
TIMEOUT = 60  # seconds per submitted notebook


class AssignmentError(ValueError):
    """Solution markers that do not pair up, or a notebook without exercises; the message says where."""


# ---- student versions ------------------------------------------------------------------------
def remove_solutions(source: str, where: str = "") -> str:
    """``source`` with every marked solution replaced by ``raise NotImplementedError``."""
    out, inside = [], None
    for number, line in enumerate(source.splitlines(), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if inside is not None:
                raise AssignmentError(f"{where} line {number}: BEGIN SOLUTION inside another solution")
            inside = begin
            name = begin["name"] or "exercise"
            out.append(f'{begin["indent"]}raise NotImplementedError("exercise {name}: replace this line with your code")')
        elif end:
            if inside is None:
                raise AssignmentError(f"{where} line {number}: END SOLUTION without BEGIN SOLUTION")
            inside = None
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise AssignmentError(f"{where}: BEGIN SOLUTION {inside['name'] or ''} is never closed")
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


def exercise_names(source: str) -> list[str]:
    return [m["name"] for m in map(BEGIN.match, source.splitlines()) if m and m["name"]]


STUDENT_PATH_LINE = ("sys.path.insert(0, os.path.abspath(\"\"))  # the student package (slamp/ beside "
                     "these notebooks) first: it has no solutions")


def student_notebook(path: Path):
    """The notebook at ``path`` (``.py`` or ``.ipynb``) with its solutions removed, no outputs, and
    a setup cell that imports the student package (``slamp/`` beside the notebook) first."""
    notebook = jupytext.read(path)
    first = True
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        cell.source = remove_solutions(cell.source, f"{path.name}, cell {number}")
        cell.outputs, cell.execution_count = [], None
        if first and "from slamp.notebook import setup" in cell.source:
            cell.source = cell.source.replace("from slamp.notebook import setup",
                                              f"{STUDENT_PATH_LINE}\nfrom slamp.notebook import setup", 1)
            first = False
    return notebook


def student_package(out: Path, notebooks: Path = NOTEBOOKS, package: Path = ROOT / "slamp") -> Path:
    """Write ``<out>/slamp``: the package with every exercise function exported from the student
    notebooks (so each raises ``NotImplementedError``). Returns the package folder."""
    target = out / "slamp"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    with tempfile.TemporaryDirectory() as folder:
        sources = []
        for path in literate.notebook_sources(notebooks):
            copy = Path(folder) / "notebooks" / path.name
            copy.parent.mkdir(exist_ok=True)
            jupytext.write(student_notebook(path), copy, fmt="py:percent")
            sources.append(copy)
        for path, text in literate.export(sources, target, Path(folder)).items():
            path.write_text(text)
    (target / STUDENT_MARKER).write_text(
        "A student package (tools/assignments.py make): every exercise raises NotImplementedError until the\n"
        "student's notebook answers it; use(answer) in the notebook then writes the answer here, so that the\n"
        "later notebooks run it.\n")
    return target


def make(out: Path, notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Write the student version of every notebook that has exercises, as a jupytext pair, and
    the student package beside them."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(notebooks.glob("[0-9]*.py")):
        if not exercise_names(path.read_text()):
            continue
        notebook = student_notebook(path)
        for suffix, fmt in ((".py", "py:percent"), (".ipynb", "ipynb")):
            target = out / (path.stem + suffix)
            jupytext.write(notebook, target, fmt=fmt)
            written.append(target)
    written.append(student_package(out, notebooks))
    return written


# ---- the exercises ---------------------------------------------------------------------------
@dataclass
class Exercise:
    notebook: str  # file stem, e.g. "00_elbo"
    function: str
    module: str  # where the function lives in the package, e.g. "losses"
    title: str
    check: Callable  # check(function) raises checks.Mistake (with a hint) when the answer is wrong


EXERCISES = [
    Exercise("00_elbo", "reparameterize", "losses", "the reparameterisation trick", checks.reparameterize),
    Exercise("00_elbo", "gaussian_kl", "losses", "the KL term between diagonal Gaussians", checks.gaussian_kl),
    Exercise("00_elbo", "reconstruction_loss", "losses", "the L2 term, reduced as the public code does",
             checks.reconstruction_loss),
    Exercise("01_flow_warping", "warp", "warp", "backward warping with grid_sample", checks.warp),
    Exercise("02_data", "render_digits", "data.moving_mnist", "drawing digits: add, then clip", checks.render_digits),
    Exercise("03_slamp_baseline", "blend", "nn", "the mask blend (Eq. 1)", checks.blend),
    Exercise("03_slamp_baseline", "prediction_loss", "models", "the loss: L2 terms + beta KL (Eq. 3)",
             checks.prediction_loss),
    Exercise("04_slamp", "previous_frames", "nn", "the motion prior's input (frame pairs)", checks.previous_frames),
    Exercise("05_training", "teacher_forcing_probability", "train", "scheduled sampling's inverse-sigmoid decay",
             checks.teacher_forcing_probability),
    Exercise("06_evaluation", "psnr", "metrics", "PSNR per image", checks.psnr),
    Exercise("06_evaluation", "best_of_n", "evaluate", "best of N by the mean over frames", checks.best_of_n),
    Exercise("07_latents", "motion_labels", "latents", "the direction of motion as a label", checks.motion_labels),
]


# ---- grading one submission (in its own process) ----------------------------------------------
def defining_cell(cells: list[str], function: str) -> str | None:
    """The last code cell that defines ``function`` at its top level."""
    found = None
    for source in cells:
        tree = _parse(source)
        if tree and any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body):
            found = source
    return found


def _parse(source: str):
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _is_package(module: str) -> bool:
    return module == "slamp" or module.startswith("slamp.")


def reliance_on_the_package(cell: str, function: str, namespace: dict) -> str | None:
    """Why the definition of ``function`` in ``cell`` does not count as the student's own work
    (None if it does): the function imports the package or reaches a module of it, or the cell
    imports the package's ``function`` itself. (The cell's other imports of the package, the
    helpers the notebook gave, are fine.)"""
    tree = _parse(cell)
    definition = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    package_names = set()  # names the cell binds to modules of the package
    for node in tree.body:
        if isinstance(node, ast.Import):
            package_names |= {(a.asname or a.name).split(".")[0] for a in node.names if _is_package(a.name)}
        elif isinstance(node, ast.ImportFrom) and _is_package(node.module or ""):
            if any(a.name == function for a in node.names):
                return f"the cell imports the package's {function} ({ast.unparse(node)}); write it yourself"
    for node in ast.walk(definition):
        if isinstance(node, ast.Import) and any(_is_package(a.name) for a in node.names) \
                or isinstance(node, ast.ImportFrom) and _is_package(node.module or ""):
            return f"{function} imports the package ({ast.unparse(node)}); write it yourself"
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            called = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if called in ("__import__", "import_module", "exec", "eval"):
                return f"{function} calls {called}(); write it yourself"
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            value = namespace.get(node.id)
            if node.id in package_names or type(value).__name__ == "module" and _is_package(value.__name__):
                return f"{function} uses the package module {node.id!r}; write it without slamp"
            if callable(value) and getattr(value, "__name__", None) == function \
                    and _is_package(getattr(value, "__module__", "") or ""):
                return f"{function} calls the package's {function}; write it yourself"
    return None


def solution_comments(exercise: Exercise, notebooks: Path = NOTEBOOKS) -> list[str]:
    """The comments inside the exercise's solution (in the teacher's notebook) that appear nowhere
    else in the notebook: text a student can only have from the solution itself."""
    source = (notebooks / f"{exercise.notebook}.py").read_text()
    inside, block, rest = False, [], []
    for line in source.splitlines():
        begin = BEGIN.match(line)
        if begin and begin["name"] == exercise.function:
            inside = True
        elif inside and END.match(line):
            inside = False
        else:
            (block if inside else rest).append(line)
    elsewhere = "\n".join(rest)
    comments = [line.split("#", 1)[1].strip() for line in block if "#" in line]
    return [c for c in comments if len(c) >= 15 and c not in elsewhere]


def copied_comment(cell: str, exercise: Exercise) -> str | None:
    """A comment of the hidden solution that a submission's cell repeats as a comment (None if
    none does). The teacher's own notebook, which carries the solution markers, is not a copy."""
    if any(BEGIN.match(line) for line in cell.splitlines()):
        return None
    comments = [line.split("#", 1)[1].strip() for line in cell.splitlines() if "#" in line]
    return next((c for c in solution_comments(exercise) if any(c in comment for comment in comments)), None)


def grade_submission(path: Path) -> dict:
    """``{function: {"passed": bool, "message": str}}`` for the exercises of the notebook at
    ``path`` (run in a fresh process with the student package first on the path)."""
    exercises = [e for e in EXERCISES if e.notebook == Path(path).stem]
    cells = [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]
    results = {}
    for exercise in exercises:
        cell = defining_cell(cells, exercise.function)
        if cell is None:
            results[exercise.function] = {"passed": False, "message": f"no cell defines {exercise.function}"}
            continue
        module = importlib.import_module(f"slamp.{exercise.module}")
        namespace = {k: v for k, v in vars(module).items() if k != exercise.function}
        namespace["__name__"] = f"submission.{exercise.module}"
        reason = reliance_on_the_package(cell, exercise.function, namespace)
        if reason is None and (comment := copied_comment(cell, exercise)) is not None:
            reason = f"the cell repeats the hidden solution's comment {comment!r}: it was copied"
        if reason is None:
            try:
                exec(compile(cell, f"{Path(path).name}: the cell defining {exercise.function}", "exec"), namespace)
            except Exception as error:
                reason = f"the cell defining {exercise.function} raised {type(error).__name__}: {error}"
        if reason is None:
            function = namespace[exercise.function]
            if _is_package(getattr(function, "__module__", "") or ""):
                reason = f"{exercise.function} is the package's own function; write it yourself"
        if reason is not None:
            results[exercise.function] = {"passed": False, "message": f"rejected: {reason}"}
            continue
        results[exercise.function] = checks.run(exercise.check, function)
    return results


def grade(path: Path, timeout: float = TIMEOUT, package: Path | None = None) -> dict[str, tuple[bool, str]]:
    """``{function: (passed, message)}`` for the exercises of the notebook at ``path``, graded in a
    subprocess that may take at most ``timeout`` seconds. The other exercises' functions, which an
    answer may use (``prediction_loss`` calls ``reconstruction_loss``), are the package's: each
    exercise is graded on its own. ``package``: grade against another build of the package (a
    ``slamp`` folder, e.g. the student package) instead of the installed one."""
    path = Path(path)
    names = [e.function for e in EXERCISES if e.notebook == path.stem]
    if not names:
        raise AssignmentError(f"{path.name}: no exercises for a notebook named {path.stem!r} "
                              f"(known: {sorted({e.notebook for e in EXERCISES})})")
    paths = ([str(Path(package).resolve().parent)] if package is not None else []) + [str(ROOT / "tools")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "SLAMP_SMOKE": "1", "MPLBACKEND": "Agg"}
    command = [sys.executable, str(Path(__file__).resolve()), "_one", str(path.resolve())]
    with tempfile.TemporaryDirectory() as folder:  # the submission runs in an empty folder
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=folder)
        except subprocess.TimeoutExpired:
            return {name: (False, f"grading took longer than {timeout:g} s (an endless loop?)") for name in names}
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = textwrap.shorten(done.stderr.strip().replace("\n", " | "), 300)
        return {name: (False, f"the grader's process failed: {tail}") for name in names}
    return {name: (found[name]["passed"], found[name]["message"]) for name in names}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make_parser = commands.add_parser("make", help="write the student notebooks and the student package")
    make_parser.add_argument("--out", type=Path, default=ROOT / "assignments")
    grade_parser = commands.add_parser("grade", help="grade notebooks (.py or .ipynb)")
    grade_parser.add_argument("files", nargs="+", type=Path)
    grade_parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per notebook")
    grade_parser.add_argument("--package", type=Path, default=None,
                              help="grade against this slamp folder (e.g. <out>/slamp of `make`); default: the installed one")
    one = commands.add_parser("_one")  # internal: grade one notebook in this process, print JSON
    one.add_argument("file", type=Path)
    commands.add_parser("list", help="the exercises")
    args = parser.parse_args(argv)

    if args.command == "_one":
        print(json.dumps(grade_submission(args.file)))
        return 0
    if args.command == "list":
        for e in EXERCISES:
            print(f"{e.notebook:<20} {e.function:<16} {e.title}")
        return 0
    if args.command == "make":
        written = make(args.out)
        print(f"wrote {len(written)} files to {args.out}: " + ", ".join(p.name for p in written))
        return 0
    failed, total = 0, 0
    for path in args.files:
        print(f"{path}:")
        for function, (passed, message) in grade(path, args.timeout, args.package).items():
            failed, total = failed + (not passed), total + 1
            print(f"  {'PASS' if passed else 'FAIL'}  {function:<28} {'' if passed else message}")
    print(f"score: {total - failed}/{total}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
