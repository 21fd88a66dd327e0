"""environment.yml (conda users) and pyproject.toml (pip users) name the same dependencies."""
import re
import tomllib
from pathlib import Path

import yaml


ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}
# Present in environment.yml only: the interpreter, pip itself, and torchvision, which lpips needs
# and which must come from the same channel as pytorch (a pip torchvision would not match it).
CONDA_ONLY = {"python", "pip", "torchvision"}


def requirement(text):
    """'scikit-learn >=1.3' -> ('scikit-learn', '>=1.3')"""
    name, spec = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", text).groups()
    return name.lower(), spec.replace(" ", "")


def pyproject_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return {requirement(r) for r in project["dependencies"] + extras["dev"] + extras["lpips"]}


def environment_requirements():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    found, pip_section = set(), []
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            pip_section = entry["pip"]
            continue
        name, spec = requirement(entry.replace("=", "==", 1) if re.match(r"^[\w-]+=[^=]", entry) else entry)
        if name not in CONDA_ONLY:
            found.add((CONDA_TO_PIP.get(name, name), spec))
    return found, environment, pip_section


def test_environment_lists_the_same_dependencies_as_pyproject():
    found, _, pip_section = environment_requirements()
    found |= {requirement(r) for r in pip_section if not r.startswith("-e")}
    assert found == pyproject_requirements()


def test_environment_installs_the_package_editable_with_python_311():
    _, environment, pip_section = environment_requirements()
    assert "-e ." in pip_section
    assert "python=3.11" in environment["dependencies"]
    assert environment["name"] == "slamp"
