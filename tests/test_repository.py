"""The repository's promises: the README's two commands, CI calling the test command, a Colab
badge for every notebook, and one GitHub address, set in pyproject.toml, throughout."""
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest


ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
_spec = importlib.util.spec_from_file_location("setup_cell", ROOT / "tools" / "setup_cell.py")
setup_cell = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(setup_cell)
COLAB = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/(notebooks/[\w.-]+\.ipynb)")


def make_targets():
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def test_readme_gives_the_two_commands_and_make_has_them():
    block = re.search(r"## Two commands.*?```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert {"demo", "test"} <= make_targets()


def test_ci_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", script, re.M)
    assert "set -euo pipefail" in script


def test_every_notebook_has_a_colab_badge_and_every_badge_a_notebook():
    badges = COLAB.findall(README)
    linked = {path for _, path in badges}
    notebooks = {p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").glob("[0-9]*.ipynb")}
    assert notebooks and linked == notebooks


def test_badges_and_install_cells_follow_the_one_repository_url():
    url = setup_cell.repository()
    assert setup_cell.differences() == []
    owner_name = url.removeprefix("https://github.com/")
    assert {repo for repo, _ in COLAB.findall(README)} == {owner_name}
    for source in (ROOT / "notebooks").glob("[0-9]*.py"):
        assert f"git+{url}" in source.read_text(), source.name


def test_no_file_names_the_repository_but_through_the_one_setting():
    """The URL is written in pyproject.toml; elsewhere only in what tools/setup_cell.py derives
    from it (badges, install lines and cells, which the test above checks)."""
    owner_name = setup_cell.repository().removeprefix("https://github.com/")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    naming = []
    for name in tracked:
        path = ROOT / name
        if name == "pyproject.toml" or not path.is_file() or path.suffix in (".pt", ".png", ".gif", ".npz"):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        rest = setup_cell.INSTALL.sub("", setup_cell.BADGE.sub("", text))
        if owner_name in rest:
            naming.append(name)
    assert naming == []


def test_a_fork_is_one_command_away(tmp_path):
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    changed = setup_cell.retarget("https://github.com/a-teacher/slamp-course.git", tmp_path)
    assert changed[0] == "pyproject.toml" and "README.md" in changed and len(changed) == 2 + len(setup_cell.notebooks())
    assert setup_cell.repository(tmp_path) == "https://github.com/a-teacher/slamp-course"
    assert setup_cell.differences(tmp_path) == []
    readme = (tmp_path / "README.md").read_text()
    assert "colab.research.google.com/github/a-teacher/slamp-course/blob/main/notebooks/00_elbo.ipynb" in readme
    assert "git+https://github.com/a-teacher/slamp-course" in readme
    assert setup_cell.repository() not in readme.replace("a-teacher/slamp-course", "")
    cell = setup_cell.first_code_cell(jupytext.read(tmp_path / "notebooks" / "04_slamp.py")).source
    assert 'git+https://github.com/a-teacher/slamp-course"' in cell
    with pytest.raises(ValueError, match="GitHub"):
        setup_cell.retarget("https://gitlab.com/a-teacher/slamp", tmp_path)


def test_top_level_layout():
    for name in ["notebooks", "slamp", "data", "tests", "benchmarks", "environment.yml",
                 "pyproject.toml", "Makefile", "README.md", ".ci/run", "LICENSE"]:
        assert (ROOT / name).exists(), name


def test_training_is_a_small_module_that_only_training_imports():
    train = ROOT / "slamp" / "train.py"
    assert len(train.read_text().splitlines()) < 300
    importers = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "slamp").rglob("*.py")
                       if path != train and re.search(r"^\s*(from slamp\.train import|import slamp\.train)",
                                                      path.read_text(), re.M))
    assert importers == ["slamp/cli.py", "slamp/demo.py"]  # `slamp train`, and the demo's --train UPDATES


def test_the_shared_helpers_import_nothing_heavy():
    code = "import sys, slamp.runtime; print(sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
