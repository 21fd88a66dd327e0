"""The repository's promises: the README's two commands, CI calling the test command, a Colab
badge for every notebook, and one GitHub address throughout."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
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


def test_notebooks_install_from_the_repository_the_badges_open():
    repos = {repo for repo, _ in COLAB.findall(README)}
    assert len(repos) == 1
    (repo,) = repos
    for source in (ROOT / "notebooks").glob("[0-9]*.py"):
        assert f"git+https://github.com/{repo}" in source.read_text(), source.name


def test_top_level_layout():
    for name in ["notebooks", "slamp", "data", "tests", "benchmarks", "environment.yml",
                 "pyproject.toml", "Makefile", "README.md", ".ci/run", "LICENSE"]:
        assert (ROOT / name).exists(), name
