"""Course assignments from the notebooks: student versions without the solutions, and an autograder.

In a notebook's source, the code of an exercise sits between two marker lines:

    # BEGIN SOLUTION warp
    coords = pixel_grid(...) + flow...
    # END SOLUTION

The package keeps the code (tools/literate.py drops the two lines); a student version replaces the
block with ``raise NotImplementedError(...)`` at the same indentation.

    python tools/assignments.py make [--out assignments]   student notebooks (.py + .ipynb, no outputs)
    python tools/assignments.py grade FILE [FILE ...]      run the checks of each notebook's exercises
    python tools/assignments.py list                       the exercises and where they are

``grade`` runs the notebook's code cells in order (``SLAMP_SMOKE=1``; a cell that fails is
reported and skipped) up to the last cell that defines an exercise's function, takes each
function as the cell defined it, and runs that exercise's checks on it. Exit status: the number
of exercises that failed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jupytext


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?:\s+(?P<name>\S+))?\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")


class AssignmentError(ValueError):
    """Solution markers that do not pair up; the message names the line."""


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


def student_notebook(path: Path):
    """The notebook at ``path`` (``.py`` or ``.ipynb``) with its solutions removed and no outputs."""
    notebook = jupytext.read(path)
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type == "code":
            cell.source = remove_solutions(cell.source, f"{path.name}, cell {number}")
            cell.outputs, cell.execution_count = [], None
    return notebook


def make(out: Path, notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Write the student version of every notebook that has exercises, as a jupytext pair."""
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
    return written


# ---- the checks ------------------------------------------------------------------------------
@dataclass
class Exercise:
    notebook: str  # file stem, e.g. "00_elbo"
    function: str
    title: str
    check: Callable  # check(function) raises AssertionError (or anything) when the answer is wrong


def _check_reparameterize(reparameterize):
    import torch

    mu, logvar = torch.tensor([1.0, -2.0], requires_grad=True), torch.tensor([0.0, 2 * 0.6931], requires_grad=True)
    noise = torch.tensor([0.5, -1.0])
    z = reparameterize(mu, logvar, noise=noise)
    assert torch.allclose(z, torch.tensor([1.5, -4.0]), atol=1e-3), f"z = mu + sigma * eps: expected [1.5, -4.0], got {z.tolist()}"
    z.sum().backward()
    assert mu.grad is not None and torch.allclose(mu.grad, torch.ones(2)), "the gradient must reach mu (dz/dmu = 1)"
    assert logvar.grad is not None and torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * noise,
                                                      atol=1e-4), "the gradient must reach logvar"
    torch.manual_seed(0)
    draws = reparameterize(torch.full((20000,), 3.0), torch.full((20000,), 2 * 0.6931))
    assert abs(draws.mean().item() - 3) < 0.05 and abs(draws.std().item() - 2) < 0.05, "z ~ N(3, 2²) has the wrong moments"


def _check_gaussian_kl(gaussian_kl):
    import torch
    from torch.distributions import Normal, kl_divergence

    torch.manual_seed(0)
    mu_q, mu_p, logvar_q, logvar_p = (torch.randn(5, 3) for _ in range(4))
    expected = kl_divergence(Normal(mu_q, (0.5 * logvar_q).exp()), Normal(mu_p, (0.5 * logvar_p).exp()))
    found = gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)
    assert found.shape == expected.shape, f"one KL per element: expected shape {tuple(expected.shape)}, got {tuple(found.shape)}"
    assert torch.allclose(found, expected, atol=1e-5), "does not match KL(N(mu_q, var_q) || N(mu_p, var_p))"


def _check_warp(warp):
    import torch

    torch.manual_seed(0)
    image = torch.rand(2, 3, 8, 10)
    assert torch.allclose(warp(image, torch.zeros(2, 2, 8, 10)), image, atol=1e-5), "zero flow must be the identity"
    flow = torch.zeros(2, 2, 8, 10)
    flow[:, 0], flow[:, 1] = -2, 1  # read (x - 2, y + 1)
    shifted = warp(image, flow)
    assert torch.allclose(shifted[..., :-1, 2:], image[..., 1:, :-2], atol=1e-5), "an integer flow must shift exactly"
    assert shifted[..., :, :2].abs().max() == 0, "samples from outside the image must be 0"
    half = torch.zeros(1, 2, 8, 10)
    half[:, 0] = 0.5
    assert torch.allclose(warp(image[:1], half)[..., :-1], (image[:1, ..., :-1] + image[:1, ..., 1:]) / 2, atol=1e-5), \
        "sub-pixel flow must interpolate bilinearly"


def _check_blend(blend):
    import torch

    torch.manual_seed(0)
    appearance, motion, mask = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4), torch.rand(2, 1, 4, 4)
    found = blend(appearance, motion, mask)
    assert found.shape == appearance.shape, f"expected shape {tuple(appearance.shape)}, got {tuple(found.shape)}"
    assert torch.allclose(found, mask * appearance + (1 - mask) * motion), "x̂ = m ⊙ x^p + (1 − m) ⊙ x^f"


def _check_previous_frames(previous_frames):
    import torch

    video = torch.rand(3, 5, 1, 4, 4)
    earlier = previous_frames(video)
    assert earlier.shape == video.shape, f"expected shape {tuple(video.shape)}, got {tuple(earlier.shape)}"
    assert torch.equal(earlier[:, 0], video[:, 0]), "the first frame is paired with itself (zero motion)"
    assert torch.equal(earlier[:, 1:], video[:, :-1]), "frame t is paired with frame t-1"


def _check_best_of_n(best_of_n):
    import torch

    scores = torch.tensor([[[1.0, 9.0], [4.0, 4.0], [9.0, 0.0]],    # means 5, 4, 4.5
                           [[0.0, 1.0], [2.0, 2.0], [1.0, 1.0]]])   # means 0.5, 2, 1
    index, curve = best_of_n(scores)
    assert index.tolist() == [0, 1], f"the best sample by the mean over frames: expected [0, 1], got {index.tolist()}"
    assert torch.equal(curve, torch.tensor([[1.0, 9.0], [2.0, 2.0]])), "return the per-frame scores of the best sample"
    index, _ = best_of_n(scores, higher_is_better=False)
    assert index.tolist() == [1, 0], "for LPIPS lower is better"


EXERCISES = [
    Exercise("00_elbo", "reparameterize", "the reparameterisation trick", _check_reparameterize),
    Exercise("00_elbo", "gaussian_kl", "the KL term between diagonal Gaussians", _check_gaussian_kl),
    Exercise("01_flow_warping", "warp", "backward warping with grid_sample", _check_warp),
    Exercise("03_slamp_baseline", "blend", "the mask blend", _check_blend),
    Exercise("04_slamp", "previous_frames", "the motion prior's input (frame pairs)", _check_previous_frames),
    Exercise("06_evaluation", "best_of_n", "best of N", _check_best_of_n),
]


def _defines(source: str, function: str) -> bool:
    return re.search(rf"^def {function}\(", source, re.MULTILINE) is not None


def grade(path: Path, verbose: bool = False) -> dict[str, tuple[bool, str]]:
    """``{function: (passed, message)}`` for the exercises of the notebook at ``path``."""
    path = Path(path)
    stem = path.stem
    exercises = [e for e in EXERCISES if e.notebook == stem]
    if not exercises:
        raise AssignmentError(f"{path.name}: no exercises for a notebook named {stem!r} "
                              f"(known: {sorted({e.notebook for e in EXERCISES})})")
    cells = [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]
    last = max((i for i, source in enumerate(cells) for e in exercises if _defines(source, e.function)), default=-1)
    found, namespace = {}, {"__name__": "__notebook__"}
    os.environ.setdefault("SLAMP_SMOKE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    for number, source in enumerate(cells[:last + 1], start=1):
        if source.lstrip().startswith(("%", "!")):
            continue  # IPython magics and shell commands: not Python
        output = io.StringIO()
        try:
            with contextlib.redirect_stdout(output):
                exec(compile(source, f"{path.name}, code cell {number}", "exec"), namespace)
        except Exception as error:  # a cell that fails (e.g. a check of an unfinished exercise)
            if verbose:
                print(f"  cell {number} raised {type(error).__name__}: {error}")
        for exercise in exercises:
            if _defines(source, exercise.function) and exercise.function in namespace:
                found[exercise.function] = namespace[exercise.function]
    results = {}
    for exercise in exercises:
        function = found.get(exercise.function)
        if function is None:
            results[exercise.function] = (False, f"no function {exercise.function} was defined")
            continue
        try:
            exercise.check(function)
            results[exercise.function] = (True, "ok")
        except Exception as error:
            results[exercise.function] = (False, f"{type(error).__name__}: {error}")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make_parser = commands.add_parser("make", help="write the student notebooks")
    make_parser.add_argument("--out", type=Path, default=ROOT / "assignments")
    grade_parser = commands.add_parser("grade", help="grade notebooks (.py or .ipynb)")
    grade_parser.add_argument("files", nargs="+", type=Path)
    grade_parser.add_argument("--verbose", action="store_true", help="also show the cells that raised")
    commands.add_parser("list", help="the exercises")
    args = parser.parse_args(argv)

    if args.command == "list":
        for e in EXERCISES:
            print(f"{e.notebook:<20} {e.function:<16} {e.title}")
        return 0
    if args.command == "make":
        written = make(args.out)
        print(f"wrote {len(written)} files to {args.out}: " + ", ".join(p.name for p in written))
        return 0
    failed = 0
    for path in args.files:
        print(f"{path}:")
        for function, (passed, message) in grade(path, args.verbose).items():
            failed += not passed
            print(f"  {'PASS' if passed else 'FAIL'}  {function:<16} {'' if passed else message}")
    total = sum(1 for path in args.files for e in EXERCISES if e.notebook == Path(path).stem)
    print(f"score: {total - failed}/{total}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
