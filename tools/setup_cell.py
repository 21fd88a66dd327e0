"""One repository URL, and everything derived from it.

The URL lives in one place, ``Repository`` under ``[project.urls]`` in ``pyproject.toml``. From it
come the first code cell of every notebook (identical everywhere: on Colab it installs slamp from
that repository), the README's "Open in Colab" badges and its `pip install` line.

    python tools/setup_cell.py                   write the setup cells and badges (then `make sync`)
    python tools/setup_cell.py --check           fail if any of them differs from what pyproject.toml says
    python tools/setup_cell.py --repo URL        point everything at another GitHub repository (a fork)
"""
from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import jupytext


ROOT = Path(__file__).resolve().parents[1]
# Colab opens notebooks straight from GitHub, so the repository must be a GitHub one.
GITHUB = re.compile(r"^https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/main/(notebooks/[\w.-]+\.ipynb)")
# `pip install "slamp @ git+URL"`; the URL ends at a quote (escaped in .ipynb JSON), a space or a bracket
INSTALL = re.compile(r"git\+https://github\.com/[\w.-]+/[\w.-]+?(?=[\\\"'\s)]|$)")
URL_LINE = re.compile(r'^(Repository\s*=\s*)"[^"]*"', re.M)
SETUP_CELL = '''\
# Setup. On Colab, install slamp from its repository (it carries its trained models, so nothing
# else is downloaded; SLAMP_REPO overrides where from). Then seed, and pick the GPU when present.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("slamp") is None and "google.colab" in sys.modules:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           os.environ.get("SLAMP_REPO", "git+{url}")])

from slamp.notebook import setup

device = setup()  # "cuda" or "cpu"'''


def github(url: str) -> tuple[str, str]:
    """``(owner, name)`` of a GitHub repository URL; anything else is a ValueError."""
    match = GITHUB.match(url)
    if match is None:
        raise ValueError(f"{url!r} is not a GitHub repository URL like https://github.com/OWNER/NAME "
                         "(Colab opens notebooks from GitHub)")
    return match.group(1), match.group(2)


def repository(root: Path = ROOT) -> str:
    """The repository URL: ``[project.urls] Repository`` in pyproject.toml, normalised."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    url = project.get("urls", {}).get("Repository")
    if url is None:
        raise ValueError(f"{root / 'pyproject.toml'} has no Repository under [project.urls]")
    owner, name = github(url)
    return f"https://github.com/{owner}/{name}"


def setup_cell(url: str) -> str:
    """The first code cell of every notebook, installing from ``url``."""
    return SETUP_CELL.format(url=url)


def badge(url: str, notebook: str) -> str:
    """Where the README's Colab badge of ``notebook`` (``notebooks/NN_name.ipynb``) points."""
    owner, name = github(url)
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/main/{notebook}"


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9]*.py"))


def first_code_cell(notebook):
    return next(cell for cell in notebook.cells if cell.cell_type == "code")


def readme_with_badges(text: str, url: str) -> str:
    """The README with its Colab badges and its ``pip install ... git+URL`` lines pointing at ``url``."""
    return INSTALL.sub(f"git+{url}", BADGE.sub(lambda match: badge(url, match.group(1)), text))


def differences(root: Path = ROOT) -> list[str]:
    """Every file whose setup cell or badges differ from what the repository URL gives."""
    url = repository(root)
    wrong = [path.relative_to(root).as_posix() for path in notebooks(root)
             if first_code_cell(jupytext.read(path)).source != setup_cell(url)]
    readme = (root / "README.md").read_text()
    if readme_with_badges(readme, url) != readme:
        wrong.append("README.md")
    return wrong


def write(root: Path = ROOT) -> list[str]:
    """Rewrite what differs (notebook sources and README); returns what was rewritten."""
    url, rewritten = repository(root), differences(root)
    for path in notebooks(root):
        notebook = jupytext.read(path)
        cell = first_code_cell(notebook)
        if cell.source != setup_cell(url):
            cell.source = setup_cell(url)
            jupytext.write(notebook, path, fmt="py:percent")
    readme = root / "README.md"
    readme.write_text(readme_with_badges(readme.read_text(), url))
    return rewritten


def retarget(url: str, root: Path = ROOT) -> list[str]:
    """Make ``url`` the repository URL in pyproject.toml, then :func:`write` everything from it."""
    owner, name = github(url)
    pyproject = root / "pyproject.toml"
    text, count = URL_LINE.subn(rf'\g<1>"https://github.com/{owner}/{name}"', pyproject.read_text())
    if count != 1:
        raise ValueError(f"{pyproject}: expected one `Repository = \"...\"` line under [project.urls], found {count}")
    pyproject.write_text(text)
    return ["pyproject.toml"] + write(root)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if anything differs")
    parser.add_argument("--repo", metavar="URL", help="the new repository URL (https://github.com/OWNER/NAME)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            wrong = differences()
            if wrong:
                print(f"differs from the repository URL in pyproject.toml ({repository()}): {', '.join(wrong)}; "
                      "run `python tools/setup_cell.py` and `make sync`")
                return 1
            print(f"checked {len(notebooks())} notebooks and the README against {repository()}")
            return 0
        changed = retarget(args.repo) if args.repo else write()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    notebooks_changed = any(path.startswith("notebooks/") for path in changed)
    print(f"rewrote {', '.join(changed) or 'nothing'} for {repository()}"
          + ("; now run `make sync` to update the .ipynb files" if notebooks_changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
