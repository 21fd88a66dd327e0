"""Course assignments: student versions without solutions, an autograder that passes the solutions
and fails the blanks, one setup cell in every notebook, and the Colab cell's install path."""
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import jupytext
import pytest
from tool_scripts import load_tool


ROOT = Path(__file__).resolve().parents[1]



assignments, setup_cell = load_tool("assignments"), load_tool("setup_cell")

NOTEBOOKS_WITH_EXERCISES = sorted({e.notebook for e in assignments.EXERCISES})


def test_remove_solutions_keeps_indentation_and_names_the_exercise():
    source = "def f(x):\n    y = 1\n    # BEGIN SOLUTION f\n    return x + y\n    # END SOLUTION\n"
    student = assignments.remove_solutions(source)
    assert student == 'def f(x):\n    y = 1\n    raise NotImplementedError("exercise f: replace this line with your code")\n'
    compile(student, "student", "exec")
    with pytest.raises(assignments.AssignmentError, match="never closed"):
        assignments.remove_solutions("# BEGIN SOLUTION f\nx = 1\n")
    with pytest.raises(assignments.AssignmentError, match="without BEGIN"):
        assignments.remove_solutions("x = 1\n# END SOLUTION\n")


def test_every_exercise_is_marked_in_its_notebook_and_absent_from_the_package():
    for exercise in assignments.EXERCISES:
        source = (ROOT / "notebooks" / f"{exercise.notebook}.py").read_text()
        assert exercise.function in assignments.exercise_names(source), exercise
    for module in (ROOT / "slamp").rglob("*.py"):
        assert "SOLUTION" not in module.read_text(), f"{module}: solution markers must not reach the package"


@pytest.fixture(scope="module")
def student_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("assignments")
    written = assignments.make(out)
    expected = [f"{n}{s}" for n in NOTEBOOKS_WITH_EXERCISES for s in (".py", ".ipynb")] + [
        "slamp", "pyproject.toml", "README.md"]
    assert sorted(p.name for p in written) == sorted(expected)
    return out


def test_student_versions_are_pairs_without_solutions_or_outputs(student_folder):
    for name in NOTEBOOKS_WITH_EXERCISES:
        text = (student_folder / f"{name}.py").read_text()
        assert "BEGIN SOLUTION" not in text and "NotImplementedError(\"exercise" in text
        as_py = jupytext.writes(jupytext.read(student_folder / f"{name}.ipynb"), fmt="py:percent")
        assert jupytext.writes(jupytext.read(student_folder / f"{name}.py"), fmt="py:percent") == as_py
        assert all(not c.get("outputs") for c in jupytext.read(student_folder / f"{name}.ipynb").cells)
    # The solution's code is gone, the rest of the notebook is kept.
    warp = (student_folder / "01_flow_warping.py").read_text()
    assert "F.grid_sample(images, grid" not in warp and "def warp(" in warp and "## Checking `warp`" in warp


@pytest.mark.parametrize("notebook", NOTEBOOKS_WITH_EXERCISES)
def test_the_autograder_passes_the_solutions_and_fails_the_blanks(notebook, student_folder):
    solved = assignments.grade(ROOT / "notebooks" / f"{notebook}.py")
    assert solved and all(passed for passed, _ in solved.values()), solved
    blank = assignments.grade(student_folder / f"{notebook}.ipynb")
    assert set(blank) == set(solved)
    assert all(not passed and "NotImplementedError" in message for passed, message in blank.values()), blank


def test_the_autograder_fails_a_wrong_answer(tmp_path):
    source = (ROOT / "notebooks" / "03_slamp_baseline.py").read_text()
    wrong = source.replace("    return mask * appearance + (1 - mask) * motion\n",
                           "    return mask * motion + (1 - mask) * appearance\n")
    assert wrong != source
    (tmp_path / "03_slamp_baseline.py").write_text(wrong)
    passed, message = assignments.grade(tmp_path / "03_slamp_baseline.py")["blend"]
    assert not passed and "the other way" in message


def test_the_student_package_holds_no_solution(student_folder):
    package = student_folder / "slamp"
    blend = (package / "nn.py").read_text()
    assert "mask * appearance + (1 - mask) * motion" not in blend and 'NotImplementedError("exercise blend' in blend
    assert "F.grid_sample(images, grid" not in (package / "warp.py").read_text()
    code = "import slamp.nn, torch; slamp.nn.blend(*[torch.zeros(1, 1, 2, 2)] * 3)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(student_folder)}, cwd=student_folder)
    assert result.returncode != 0 and "exercise blend" in result.stderr
    assert (package / "pretrained" / "slamp.pt").is_file()  # the rest of the package is all there
    setup = jupytext.read(student_folder / "03_slamp_baseline.py").cells
    assert any(assignments.STUDENT_PATH_LINE in c.source for c in setup if c.cell_type == "code")


def _submission(tmp_path, notebook: str, old: str, new: str) -> Path:
    source = (ROOT / "notebooks" / f"{notebook}.py").read_text()
    assert old in source
    path = tmp_path / f"{notebook}.py"
    path.write_text(source.replace(old, new))
    return path


@pytest.mark.parametrize("new, why", [
    ("    from slamp.nn import blend as theirs\n    return theirs(appearance, motion, mask)\n", "imports the package"),
    ("    import slamp\n    return slamp.nn.blend(appearance, motion, mask)\n", "imports the package"),
    ("    return __import__('slamp.nn').nn.blend(appearance, motion, mask)\n", "__import__"),
])
def test_a_submission_that_uses_the_packages_solution_is_rejected(tmp_path, student_folder, new, why):
    path = _submission(tmp_path, "03_slamp_baseline", "    return mask * appearance + (1 - mask) * motion\n", new)
    passed, message = assignments.grade(path)["blend"]
    assert not passed and message.startswith("rejected") and why in message, message


def test_a_submission_that_never_returns_is_stopped(tmp_path, student_folder):
    path = _submission(tmp_path, "03_slamp_baseline", "    return mask * appearance + (1 - mask) * motion\n",
                       "    while True:\n        pass\n")
    passed, message = assignments.grade(path, timeout=10)["blend"]
    assert not passed and "longer than 10 s" in message


def test_grade_command_exit_status_says_whether_grading_worked(student_folder, capsys):
    assert assignments.main(["grade", str(ROOT / "notebooks" / "06_evaluation.py")]) == 0
    assert "score: 2/2" in capsys.readouterr().out
    assert assignments.main(["grade", str(student_folder / "06_evaluation.py")]) == 0  # every exercise failed: still 0
    assert "score: 0/2" in capsys.readouterr().out
    assert assignments.main(["grade", "--exercises", "no_such_exercise", str(student_folder / "06_evaluation.py")]) == 2


def test_a_renamed_notebook_is_known_by_its_content(tmp_path):
    source = (ROOT / "notebooks" / "06_evaluation.py").read_text()
    for name in ("Copy of 06_evaluation.py", "06_evaluation (1).py", "homework.py"):
        (tmp_path / name).write_text(source)
        assert assignments.grade(tmp_path / name, timeout=60) == {"psnr": (True, "ok"), "best_of_n": (True, "ok")}
        (tmp_path / name).unlink()
    (tmp_path / "notes.py").write_text("x = 1\n")
    with pytest.raises(assignments.AssignmentError, match="defines none of the exercises"):
        assignments.grade(tmp_path / "notes.py")


def test_every_notebook_starts_with_the_same_setup_cell():
    assert setup_cell.main(["--check"]) == 0
    for path in setup_cell.notebooks():
        assert setup_cell.first_code_cell(jupytext.read(path)).source == setup_cell.setup_cell(setup_cell.repository())


def test_setup_picks_a_device_and_lists_the_shipped_models(capsys):
    from slamp.notebook import setup
    from slamp.pretrained import available

    device = setup(seed=1)
    assert device in ("cpu", "cuda")
    out = capsys.readouterr().out
    assert "torch" in out and "shipped models: " + (", ".join(available()) or "none") in out


def test_setup_says_where_mnist_is_or_what_to_run(isolated_data, capsys, monkeypatch):
    from slamp.notebook import setup

    setup()  # not on Colab: nothing is fetched
    out = capsys.readouterr().out
    assert f"MNIST is missing (searched {isolated_data}" in out and "slamp prepare mnist" in out
    assert not (isolated_data / "mnist").exists()
    monkeypatch.setenv("SLAMP_DIGITS", "sklearn")
    setup()
    assert "scikit-learn's 8x8 stand-in (SLAMP_DIGITS=sklearn), not MNIST" in capsys.readouterr().out


@pytest.mark.skipif(os.environ.get("SLAMP_SKIP_INSTALL_TEST") == "1", reason="SLAMP_SKIP_INSTALL_TEST=1")
@pytest.mark.slow
def test_the_colab_cell_installs_the_package_into_a_fresh_venv(tmp_path):
    """The setup cell, run as on Colab (torch preinstalled, `google.colab` importable, slamp not
    installed, no MNIST), installs slamp from the repository and imports it with its shipped
    models, turns on Colab's widget manager and fetches MNIST into the data folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Colab has torch already; here the local CPU build stands in for it (never an unpinned torch).
    torch_version = __import__("torch").__version__.split("+")[0]
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"torch=={torch_version}"], check=True, timeout=900)
    fake_colab = tmp_path / "site" / "google" / "colab"
    fake_colab.mkdir(parents=True)
    (fake_colab / "__init__.py").write_text("")
    (fake_colab / "output.py").write_text("def enable_custom_widget_manager():\n    print('WIDGET MANAGER ON')\n")
    (fake_colab.parent / "__init__.py").write_text("")
    script = tmp_path / "cell.py"
    cell = setup_cell.setup_cell(setup_cell.repository())
    script.write_text("import google.colab  # Colab's kernel imports it before any cell runs\n" + cell + "\nimport slamp, slamp.pretrained\n"
                      "print('INSTALLED', slamp.__file__, device, slamp.pretrained.available())\n")
    # A fresh runtime: no MNIST anywhere (setup() fetches it, as on Colab), no stand-in chosen.
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "SLAMP_REPO": str(ROOT), "PIP_QUIET": "1",
           "SLAMP_DATA": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for name in ("SLAMP_SMOKE", "SLAMP_DIGITS"):
        env.pop(name, None)
    result = subprocess.run([str(python), str(script)], env=env, capture_output=True, text=True, timeout=900,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("INSTALLED"))
    assert str(venv) in line and "cpu" in line  # installed into the venv, not imported from the checkout
    from slamp.pretrained import available
    assert str(available()) in line
    assert "WIDGET MANAGER ON" in result.stdout  # ipywidgets render on Colab only with its manager
    assert f"MNIST was missing: prepared it in {tmp_path / 'data' / 'mnist'}" in result.stdout
    assert (tmp_path / "data" / "mnist" / "mnist_digits.npz").stat().st_size > 10e6


def test_every_exercise_is_announced_listed_and_followed_by_use():
    readme = (ROOT / "README.md").read_text()
    teachers = readme[readme.index("## For teachers"):readme.index("## For contributors")]
    for exercise in assignments.EXERCISES:
        source = (ROOT / "notebooks" / f"{exercise.notebook}.py").read_text()
        markdown = [c.source for c in jupytext.read(ROOT / "notebooks" / f"{exercise.notebook}.py").cells
                    if c.cell_type == "markdown"]
        assert any(f"**Exercise: `{exercise.function}`**" in text for text in markdown), exercise
        assert f"use({exercise.function})" in source, f"{exercise.function}: the package must run the answer downstream"
        closing = next(text for text in markdown if "## Exercises and what to try next" in text)
        assert f"**`{exercise.function}`**" in closing, f"{exercise.notebook}: list {exercise.function} at the end"
        assert f"| `{exercise.notebook}` | `{exercise.function}` |" in teachers, exercise
    assert {e.notebook for e in assignments.EXERCISES} == {p.stem for p in (ROOT / "notebooks").glob("[0-9]*.py")}
    assert len(assignments.EXERCISES) >= 12


def test_every_exercise_is_followed_by_its_self_check():
    """The cell right after each exercise's function runs ``check(<name>)`` (the grader's checks,
    slamp.exercises) and then ``use(<name>)``; the exercise's text says that it prints the hint."""
    for exercise in assignments.EXERCISES:
        cells = jupytext.read(ROOT / "notebooks" / f"{exercise.notebook}.py").cells
        at = next(i for i, c in enumerate(cells) if f"# BEGIN SOLUTION {exercise.function}\n" in c.source)
        following = cells[at + 1]
        assert following.cell_type == "code" and "from slamp.exercises import check" in following.source, exercise
        calls = [line.split("(")[0] for line in following.source.splitlines()
                 if line.startswith((f"check({exercise.function})", f"use({exercise.function})"))]
        assert calls == ["check", "use"], exercise
        announced = " ".join(next(c.source for c in cells if f"**Exercise: `{exercise.function}`**" in c.source).split())
        assert f"`check({exercise.function})`" in announced and "the hint the grader gives" in announced, exercise


def test_student_notebooks_run_the_self_check_on_the_students_function(student_folder):
    for exercise in assignments.EXERCISES:
        for suffix in (".py", ".ipynb"):
            cells = [c.source for c in jupytext.read(student_folder / f"{exercise.notebook}{suffix}").cells
                     if c.cell_type == "code"]
            at = next(i for i, c in enumerate(cells) if f'NotImplementedError("exercise {exercise.function}:' in c)
            assert f"def {exercise.function}(" in cells[at] and f"\ncheck({exercise.function})" in cells[at + 1]
    package = student_folder / "slamp" / "exercises.py"
    assert package.read_text() == (ROOT / "slamp" / "exercises.py").read_text()  # the checks, no exercise's code
    code = ("import slamp.nn\nfrom slamp.exercises import check\ntry:\n    check(slamp.nn.blend)\n"
            "except AssertionError as error:\n    print('stopped:', type(error).__name__, error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(student_folder)}, cwd=student_folder)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == ("✗ blend: not done yet (the function still raises NotImplementedError)\n"
                             "stopped: SelfCheckFailed not done yet (the function still raises NotImplementedError)\n")


ANSWER = """
import sys
sys.path.insert(0, sys.argv[1])
import slamp.models
import slamp.nn
from slamp.notebook import use


def blend(appearance, motion, mask):
    return motion  # a wrong answer: the mask is ignored
use(blend)
assert slamp.models.blend is blend and slamp.nn.blend is blend  # the models run the student's answer
"""


def test_use_runs_an_answer_downstream_and_keeps_it_only_in_a_student_package(student_folder, tmp_path):
    import shutil

    script = tmp_path / "answer.py"
    script.write_text(ANSWER)
    copy = tmp_path / "student"
    shutil.copytree(student_folder / "slamp", copy / "slamp")
    result = subprocess.run([sys.executable, str(script), str(copy)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "return motion  # a wrong answer" in (copy / "slamp" / "nn.py").read_text()  # later notebooks run it
    package = ROOT / "slamp" / "nn.py"
    before = package.read_text()
    result = subprocess.run([sys.executable, str(script), str(ROOT)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert package.read_text() == before  # the real package is never written


def test_a_copied_solution_is_rejected_by_its_comments(tmp_path, student_folder):
    source = (ROOT / "notebooks" / "00_elbo.py").read_text()
    copied = re.sub(r"^\s*# (BEGIN|END) SOLUTION.*\n", "", source, flags=re.M)  # the markers taken out
    path = tmp_path / "00_elbo.py"
    path.write_text(copied)
    results = assignments.grade(path)
    passed, message = results["gaussian_kl"]
    assert not passed and "copied" in message and "variance ratio" in message, message
    assert results["reparameterize"][0]  # a one-line solution has no comment to give it away


def test_student_notebooks_install_the_student_build_never_the_full_package(student_folder):
    install = assignments.default_install()
    assert install == f"git+{setup_cell.repository()}@student"
    for name in NOTEBOOKS_WITH_EXERCISES:
        first = setup_cell.first_code_cell(jupytext.read(student_folder / f"{name}.ipynb")).source
        assert first == assignments.student_setup_cell(install)
        assert f'"git+{setup_cell.repository()}"' not in first and "SLAMP_REPO" not in first
        compile(first, name, "exec")
    readme = (student_folder / "README.md").read_text()
    assert f'pip install "{install}"' in readme and "python -m slamp prepare mnist" in readme
    for heading in ("## Open", "## Run", "## Check yourself", "## Hand in"):
        assert heading in readme
    pyproject = tomllib.loads((student_folder / "pyproject.toml").read_text())
    assert pyproject["project"]["version"].endswith("+student")
    assert "STUDENT_PACKAGE" in pyproject["tool"]["setuptools"]["package-data"]["slamp"]


def solution_lines() -> dict[str, list[str]]:
    """For every exercise, the lines of its solution (20 characters or more) that the student
    version of its notebook does not have: text only the solution holds."""
    lines = {}
    block = re.compile(r"^[ \t]*# BEGIN SOLUTION (?P<name>\S+)\n(?P<body>.*?)^[ \t]*# END SOLUTION\n", re.M | re.S)
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.py")):
        source = path.read_text()
        student = assignments.remove_solutions(source)
        for match in block.finditer(source):
            lines[match["name"]] = [line.strip() for line in match["body"].splitlines()
                                    if len(line.strip()) >= 20 and line.strip() not in student]
    return lines


FRESH = """
import importlib, importlib.util, inspect, json, sys
from pathlib import Path
import slamp
exercises = json.loads(sys.argv[1])
found = {"slamp": slamp.__file__, "grader": [m for m in ("assignments", "sandbox_worker", "literate")
                                             if importlib.util.find_spec(m) is not None]}
from slamp.exercises import CHECKS  # the self-checks come with the student build
found["checks"] = sorted(CHECKS)
for function, module in exercises.items():
    found[function] = inspect.getsource(getattr(importlib.import_module("slamp." + module), function))
files = [p for p in Path(slamp.__file__).parent.rglob("*") if p.is_file()]
files += [p for p in Path(slamp.__file__).parent.parent.glob("slamp-*.dist-info/*")]
found["marker"] = (Path(slamp.__file__).parent / "STUDENT_PACKAGE").is_file()  # use() keeps answers there
found["text"] = "\\n".join(p.read_bytes().decode("utf-8", "replace") for p in files)
print(json.dumps(found))
"""


@pytest.mark.skipif(os.environ.get("SLAMP_SKIP_INSTALL_TEST") == "1", reason="SLAMP_SKIP_INSTALL_TEST=1")
@pytest.mark.slow
def test_a_fresh_environment_with_the_student_build_gives_no_solution_away(student_folder, tmp_path):
    """The student build's wheel, installed into a fresh venv (offline: its dependencies are this
    environment's, by path, not its slamp), imports as the student package: every exercise is a
    blank, and no file it installed holds a line of any solution."""
    wheel = assignments.build_wheel(student_folder, tmp_path / "dist")
    assert "+student" in wheel.name
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    dependencies = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    Path(site, "dependencies.pth").write_text("\n".join(dependencies) + "\n")
    exercises = {e.function: e.module for e in assignments.EXERCISES}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run([str(python), "-c", FRESH, json.dumps(exercises)], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout)
    assert found["slamp"].startswith(site) and found["grader"] == [] and found["marker"]
    assert found["checks"] == sorted(exercises)
    lines = solution_lines()
    assert set(lines) == set(exercises) and all(lines.values())
    for function in exercises:
        assert f'NotImplementedError("exercise {function}' in found[function], function
        for line in lines[function]:
            assert line not in found[function] and line not in found["text"], (function, line)


def test_lint_passes_with_the_assignments_folder_present(tmp_path):
    """`make assignments` writes assignments/ at the root; ruff must sort the tests' and tools'
    imports of tools/assignments.py the same with it there (pyproject.toml names the tools'
    scripts). Without that setting the same files fail (I001), so this test can tell."""
    pytest.importorskip("ruff")
    for name in ("tests/test_assignment_mistakes.py", "tests/test_assignments.py", "tools/assignments.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "assignments" / "slamp").mkdir(parents=True)
    (tmp_path / "assignments" / "00_elbo.py").write_text("import os\nx = 1\n")

    def lint(pyproject: str) -> subprocess.CompletedProcess:
        (tmp_path / "pyproject.toml").write_text(pyproject)
        return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "tests", "tools"], cwd=tmp_path,
                              capture_output=True, text=True)

    pyproject = (ROOT / "pyproject.toml").read_text()
    assert lint(pyproject).returncode == 0, lint(pyproject).stdout
    without = re.sub(r"^known-third-party = .*\n", "", pyproject, flags=re.M)
    assert without != pyproject and "I001" in lint(without).stdout


def test_grading_where_landlock_is_missing_still_grades(tmp_path):
    """`--uncontained` (a kernel without Landlock): the same process, limits and seccomp, no
    file-system rules; the solution passes and a wrong answer fails with its hint."""
    limits = assignments.Limits(timeout=60, contained=False)
    source = (ROOT / "notebooks" / "03_slamp_baseline.py").read_text()
    assert assignments.grade(ROOT / "notebooks" / "03_slamp_baseline.py", limits=limits)["blend"] == (True, "ok")
    (tmp_path / "answer.py").write_text(source.replace("    return mask * appearance + (1 - mask) * motion\n",
                                                      "    return mask * motion + (1 - mask) * appearance\n"))
    passed, message = assignments.grade(tmp_path / "answer.py", limits=limits)["blend"]
    assert not passed and "the other way" in message
