"""Course assignments from the notebooks: student notebooks and a student build of the package
without the solutions, and an autograder for a whole class whose student code runs contained.

In a notebook's source, the code of an exercise sits between two marker lines:

    # BEGIN SOLUTION warp
    coords = pixel_grid(...) + flow...
    # END SOLUTION

The package keeps the code (tools/literate.py drops the two lines); a student version replaces the
block with ``raise NotImplementedError(...)`` at the same indentation.

    python tools/assignments.py make [--out assignments] [--wheel] [--install SPEC]
        the student build in <out>: notebooks (.py + .ipynb, no outputs), the student package
        <out>/slamp, a pyproject.toml (so that the folder, pushed as a branch, pip-installs) and a
        README for students; --wheel also builds <out>/dist/slamp-*.whl
    python tools/assignments.py class FOLDER --out GRADES [--jobs N]
        grade a class: FOLDER holds one sub-folder per student (named by the student) with that
        student's notebooks under any names; writes GRADES/grades.csv and GRADES/summary.csv
    python tools/assignments.py grade FILE [FILE ...]    grade one student's notebooks
    python tools/assignments.py list                     the exercises and where they are

**The student build** is the package exported from the student notebooks: every exercise function
raises ``NotImplementedError``, so nothing installed from it gives a solution away. The student
notebooks' first cell puts ``slamp/`` beside the notebook first on the path, and on Colab installs
the student build (never the full package). After each exercise a notebook calls
``slamp.exercises.check(function)``, which runs the grader's checks on the student's function and
prints the grader's hint for the mistake it finds (and stops the notebook there), then
``slamp.notebook.use(function)``, so that the package's later code runs the student's function.

**Grading.** A notebook is known by its content (the cells that define the exercises' functions),
not its name. Each student is graded by a checker process of its own (``--jobs`` at once); the
student's code runs in another process, :class:`Sandbox`, which imports only the student build
(no solution in it), in an empty temporary folder, with a clean environment, resource limits, and,
on Linux, Landlock and seccomp (``tools/sandbox_worker.py``: it reads only the Python installation
and the student build, writes only its folder, starts no process, opens no network socket). The
checks (``slamp/exercises.py``, a plain module of the package, the same ones the notebooks'
self-checks run) run in the checker, from the full package: they send inputs to the student's
function and compare what comes back with the right values there, so nothing the student's code
prints or writes can pass a check. A function that imports the package, calls its version, or is
the package's object is rejected, and so is a cell that repeats a comment of the hidden solution
(a copy: the student version has none). Exit status: 0 when grading worked (whatever the grades),
1 when it failed for some student (the rows say "grader error"), 2 for a wrong command.
"""
from __future__ import annotations

import argparse
import ast
import atexit
import csv
import importlib
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import jupytext


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(ROOT / "tools"))
import literate  # noqa: E402
import setup_cell  # noqa: E402

from slamp import exercises as checks  # noqa: E402  (the checks and their hints; notebooks run them too)
from slamp.notebook import STUDENT_MARKER  # noqa: E402  (what slamp.notebook.use looks for)


BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?:\s+(?P<name>\S+))?\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
TIMEOUT = 60  # seconds per exercise: defining the function and running its checks


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
STUDENT_SETUP_CELL = '''\
# Setup (student build). On Colab, install the course's student build of slamp: the package with
# every exercise left blank, so nothing here gives an answer away (SLAMP_STUDENT overrides where
# from). Elsewhere, open this notebook in the assignments folder: its slamp/ comes first.
import importlib.util
import os
import subprocess
import sys

{path_line}
if importlib.util.find_spec("slamp") is None and "google.colab" in sys.modules:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           os.environ.get("SLAMP_STUDENT", "{install}")])

from slamp.notebook import setup

device = setup()  # "cuda" or "cpu"'''


def default_install(root: Path = ROOT) -> str:
    """Where the student notebooks install the student build from on Colab: the ``student`` branch
    of the repository named in pyproject.toml (the teacher pushes ``make``'s folder there)."""
    return f"git+{setup_cell.repository(root)}@student"


def student_setup_cell(install: str) -> str:
    return STUDENT_SETUP_CELL.format(path_line=STUDENT_PATH_LINE, install=install)


def student_notebook(path: Path, install: str | None = None):
    """The notebook at ``path`` (``.py`` or ``.ipynb``) with its solutions removed, no outputs, and
    a first cell that installs the student build (``install``) on Colab and elsewhere imports the
    student package (``slamp/`` beside the notebook) first."""
    notebook = jupytext.read(path)
    first = True
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        cell.source = remove_solutions(cell.source, f"{path.name}, cell {number}")
        cell.outputs, cell.execution_count = [], None
        if first and "from slamp.notebook import setup" in cell.source:
            cell.source = student_setup_cell(install or default_install())
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
            jupytext.write(student_notebook(path, install="-"), copy, fmt="py:percent")
            sources.append(copy)
        for path, text in literate.export(sources, target, Path(folder)).items():
            path.write_text(text)
    (target / STUDENT_MARKER).write_text(
        "A student package (tools/assignments.py make): every exercise raises NotImplementedError until the\n"
        "student's notebook answers it; use(answer) in the notebook then writes the answer here, so that the\n"
        "later notebooks run it.\n")
    return target


def student_pyproject(root: Path = ROOT) -> str:
    """The pyproject.toml of the student build: the package's name, dependencies and data files,
    version ``<version>+student``, and the STUDENT_PACKAGE marker shipped with it."""
    project = tomllib.loads((root / "pyproject.toml").read_text())
    meta = project["project"]
    data = dict(project["tool"]["setuptools"].get("package-data", {}))
    data["slamp"] = sorted(set(data.get("slamp", [])) | {STUDENT_MARKER})
    lines = ['[build-system]', 'requires = ["setuptools>=69"]', 'build-backend = "setuptools.build_meta"', '',
             '[project]', f'name = "{meta["name"]}"', f'version = "{meta["version"]}+student"',
             'description = "slamp\'s student build: the package with every exercise left blank"',
             f'requires-python = "{meta["requires-python"]}"',
             'dependencies = [' + ", ".join(json.dumps(d) for d in meta["dependencies"]) + ']', '',
             '[project.scripts]'] + [f'{k} = "{v}"' for k, v in meta.get("scripts", {}).items()] + [
             '', '[tool.setuptools.packages.find]', 'include = ["slamp*"]', '', '[tool.setuptools.package-data]'] + [
             f'"{k}" = [' + ", ".join(json.dumps(p) for p in v) + ']' for k, v in sorted(data.items())]
    return "\n".join(lines) + "\n"


def build_wheel(project: Path, dist: Path) -> Path:
    """Build the wheel of the student build at ``project`` into ``dist`` (offline: no build
    isolation, the installed setuptools), from a copy so that ``project`` gets no build files."""
    dist.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "student"
        copy.mkdir()
        shutil.copy(project / "pyproject.toml", copy / "pyproject.toml")
        shutil.copytree(project / "slamp", copy / "slamp", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "-w", str(dist), str(copy)], check=True, capture_output=True, text=True)
    return max(dist.glob("slamp-*.whl"), key=lambda p: p.stat().st_mtime)


def make(out: Path, notebooks: Path = NOTEBOOKS, install: str | None = None, wheel: bool = False) -> list[Path]:
    """Write the student build into ``out``: the student version of every notebook that has
    exercises (a jupytext pair), the student package, its pyproject.toml and a README for students;
    with ``wheel``, also ``out/dist/slamp-*.whl``."""
    out.mkdir(parents=True, exist_ok=True)
    install = install or default_install()
    written = []
    for path in sorted(notebooks.glob("[0-9]*.py")):
        if not exercise_names(path.read_text()):
            continue
        notebook = student_notebook(path, install)
        for suffix, fmt in ((".py", "py:percent"), (".ipynb", "ipynb")):
            target = out / (path.stem + suffix)
            jupytext.write(notebook, target, fmt=fmt)
            written.append(target)
    written.append(student_package(out, notebooks))
    (out / "pyproject.toml").write_text(student_pyproject())
    written.append(out / "pyproject.toml")
    readme = (ROOT / "tools" / "STUDENTS.md").read_text().replace("{install}", install)
    (out / "README.md").write_text(readme)
    written.append(out / "README.md")
    if wheel:
        written.append(build_wheel(out, out / "dist"))
    return written


# ---- the exercises ---------------------------------------------------------------------------
@dataclass
class Exercise:
    notebook: str  # file stem, e.g. "00_elbo"
    function: str
    module: str  # where the function lives in the package, e.g. "losses"
    title: str
    # other exercises' functions the answer may call ({function: module}); while it is graded the
    # grader computes them with the package's own code, in its process, and sends back the values
    dependencies: dict = field(default_factory=dict)

    @property
    def check(self) -> Callable:
        """``check(function)`` raises ``slamp.exercises.Mistake`` (with a hint) when the answer is
        wrong: the check a notebook's self-check (``slamp.exercises.check``) runs too."""
        return checks.CHECKS[self.function]


EXERCISES = [
    Exercise("00_elbo", "reparameterize", "losses", "the reparameterisation trick"),
    Exercise("00_elbo", "gaussian_kl", "losses", "the KL term between diagonal Gaussians"),
    Exercise("00_elbo", "reconstruction_loss", "losses", "the L2 term, reduced as the public code does"),
    Exercise("01_flow_warping", "warp", "warp", "backward warping with grid_sample"),
    Exercise("02_data", "render_digits", "data.moving_mnist", "drawing digits: add, then clip"),
    Exercise("03_slamp_baseline", "blend", "nn", "the mask blend (Eq. 1)"),
    Exercise("03_slamp_baseline", "prediction_loss", "models", "the loss: L2 terms + beta KL (Eq. 3)",
             {"reconstruction_loss": "losses"}),
    Exercise("04_slamp", "previous_frames", "nn", "the motion prior's input (frame pairs)"),
    Exercise("05_training", "teacher_forcing_probability", "train", "scheduled sampling's inverse-sigmoid decay"),
    Exercise("06_evaluation", "psnr", "metrics", "PSNR per image"),
    Exercise("06_evaluation", "best_of_n", "evaluate", "best of N by the mean over frames"),
    Exercise("07_latents", "motion_labels", "latents", "the direction of motion as a label"),
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


# ---- the sandbox: a submission's own process ----------------------------------------------------
class SandboxTimeout(BaseException):
    """The submission's process did not answer in time (a BaseException, so that no check's
    ``except Exception`` mistakes it for the student's error)."""


class SandboxEnded(BaseException):
    """The submission's process ended or sent something that is not a message."""


def _site_exclusions() -> list[Path]:
    """Folders the submission must not read although they lie inside what it may read: this
    repository (the notebooks with the solutions, the grader, the tests) and every installed copy
    of the full package (a site-packages ``slamp``, an editable install's target)."""
    found = {ROOT.resolve()}
    spec = importlib.util.find_spec("slamp")
    if spec is not None and spec.origin:
        found.add(Path(spec.origin).resolve().parent)
    for entry in sys.path:
        folder = Path(entry or ".").resolve()
        found |= {p.resolve() for p in folder.glob("slamp")}
        for finder in folder.glob("__editable__*slamp*finder.py"):
            found |= {Path(p).resolve() for p in re.findall(r"'(/[^']+)'", finder.read_text())}
    return sorted(found)


def _readable(allowed: list[Path], excluded: list[Path]) -> list[str]:
    """``allowed`` (folders and files) with every ``excluded`` folder cut out: a folder that holds
    an excluded one is replaced by its other entries, recursively (Landlock only allows)."""
    out = []

    def add(path: Path):
        if any(path == e for e in excluded):
            return
        if not any(e.is_relative_to(path) for e in excluded):
            out.append(str(path))
            return
        for child in sorted(path.iterdir()):
            add(child.resolve() if not child.is_symlink() else child)

    for path in allowed:
        if path.exists():
            add(path.resolve())
    return sorted(set(out))


def sandbox_read_paths() -> list[str]:
    """What a submission may read besides the student package: the Python installation (standard
    library, site-packages), the system's shared libraries, its own /proc entry, the CPU list."""
    import sysconfig

    python = {Path(p) for key in ("stdlib", "platstdlib", "purelib", "platlib") if (p := sysconfig.get_paths().get(key))}
    python |= {Path(p) for p in sys.path if p and Path(p).is_dir()}
    python = {p for p in python if not p.resolve().is_relative_to(ROOT.resolve())
              or ".venv" in p.resolve().relative_to(ROOT.resolve()).parts}
    system = [Path(p) for p in ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/etc/ld.so.cache",
                                "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/sys/devices/system/cpu", "/dev/urandom",
                                "/proc/cpuinfo", "/proc/meminfo")]
    return _readable(sorted(python) + system, _site_exclusions()) + ["/proc/self"]


def containment() -> str | None:
    """None where a submission can be contained here (Linux with Landlock, x86-64 or arm64), else why not."""
    import sandbox_worker

    if sys.platform != "linux" or sandbox_worker.NUMBERS is None:
        return f"this is {sys.platform} on {os.uname().machine}: the sandbox needs Linux on x86-64 or arm64"
    if sandbox_worker.landlock_abi() < 1:
        return "this Linux kernel has no Landlock (5.13 or later, enabled)"
    return None


def prepare_lib(folder: Path) -> Path:
    """``folder``, holding what a submission's process imports: the student package (no solutions;
    without the marker, so that ``use`` writes nothing) and the worker. Returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    package = student_package(folder)
    (package / STUDENT_MARKER).unlink()
    shutil.copy(ROOT / "tools" / "sandbox_worker.py", folder / "sandbox_worker.py")
    for path in [folder, *folder.rglob("*")]:  # read-only, also for root without capabilities
        path.chmod(0o555 if path.is_dir() else 0o444)
    return folder


@dataclass
class Limits:
    timeout: float = TIMEOUT  # seconds per exercise (defining the function and all its checks)
    memory_mb: int = 4096  # address space of the submission's process (a CUDA build of torch maps more: raise it)
    cpu_seconds: int = 600  # CPU time of the submission's process over all its exercises
    startup: float = 120  # seconds for the process to import torch and the student package
    contained: bool = True  # False: no Landlock/seccomp (only where containment() says it is missing)


_NOTHING = object()


def remove_tree(folder: Path) -> None:
    """Remove a folder, read-only parts included."""
    for path in [Path(folder), *Path(folder).rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


class Sandbox:
    """A submission's process: started in a new session, in an empty temporary folder, with a clean
    environment; contained by ``sandbox_worker.contain``; spoken to over two pipes; killed with
    every process of its session by :meth:`close`."""

    def __init__(self, lib: Path, limits: Limits):
        import sandbox_worker

        self.codec, self.limits = sandbox_worker, limits
        self.work = Path(tempfile.mkdtemp(prefix="submission-"))
        requests_read, self.requests = os.pipe()
        self.replies, replies_write = os.pipe()
        self.log = tempfile.TemporaryFile()  # the worker's stderr, outside its folder
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.work), "TMPDIR": str(self.work), "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": str(self.work), "SLAMP_SMOKE": "1"}
        read = json.dumps(sandbox_read_paths()) if limits.contained else None
        command = [sys.executable, "-I", str(lib / "sandbox_worker.py"), str(lib), str(self.work),
                   str(limits.memory_mb), str(limits.cpu_seconds), str(requests_read), str(replies_write)]
        self.process = subprocess.Popen(command + ([read] if read else []), pass_fds=(requests_read, replies_write),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
                                        cwd=self.work, env=env, start_new_session=True)
        os.close(requests_read)
        os.close(replies_write)
        try:
            header, _ = self._receive(time.monotonic() + limits.startup)
        except (SandboxTimeout, SandboxEnded) as error:
            self.log.seek(0)
            tail = self.log.read()[-1500:].decode(errors="replace")  # written before any student code ran
            self.close()
            raise RuntimeError(f"the submission's process did not start ({error}; with a CUDA build of torch, raise "
                               f"--memory from {limits.memory_mb} MB): {tail}") from None
        if header.get("op") != "ready":
            self.close()
            raise RuntimeError(f"the submission's process did not start: {header}")

    # -- pipes
    def _send(self, header: dict, value=_NOTHING, deadline: float = 0.0) -> None:
        buffers = []
        if value is not _NOTHING:
            header = dict(header, value=self.codec.encode(value, buffers))
        data = memoryview(self.codec.pack(header, buffers))
        while data:
            if not select.select([], [self.requests], [], max(deadline - time.monotonic(), 0))[1]:
                raise SandboxTimeout()
            try:
                data = data[os.write(self.requests, data[:65536]):]
            except BrokenPipeError:
                raise SandboxEnded("it closed its end") from None

    def _read(self, size: int, deadline: float) -> bytes:
        chunks, left = [], size
        while left:
            if not select.select([self.replies], [], [], max(deadline - time.monotonic(), 0))[0]:
                raise SandboxTimeout()
            chunk = os.read(self.replies, min(left, 1 << 20))
            if not chunk:
                raise SandboxEnded(self._ended())
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _receive(self, deadline: float) -> tuple[dict, list]:
        (size,) = struct.unpack("<Q", self._read(8, deadline))
        if size > self.codec.MAX_MESSAGE:
            raise SandboxEnded(f"it sent {size} bytes at once (at most {self.codec.MAX_MESSAGE})")
        try:
            header, buffers = self.codec.unpack(self._read(size, deadline))
        except (ValueError, KeyError, UnicodeDecodeError) as error:
            raise SandboxEnded(f"it sent something that is not a message ({error})") from None
        if not isinstance(header, dict):
            raise SandboxEnded("it sent something that is not a message")
        return header, buffers

    def _ended(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "it closed its pipe"
        if code == -signal.SIGKILL or code == -signal.SIGXCPU:
            return (f"it was killed (signal {-code}): over the memory limit of {self.limits.memory_mb} MB or the "
                    f"CPU limit of {self.limits.cpu_seconds} s")
        self.log.seek(0)
        tail = textwrap.shorten(" | ".join(self.log.read()[-2000:].decode(errors="replace").strip().splitlines()[-2:]),
                                300)
        return f"it exited with status {code}" + (f" ({tail})" if tail else "")

    # -- requests
    def _answer(self, deadline: float, callbacks: dict, classes: dict):
        """Wait for the reply to a request, computing the callbacks the submission may make on the way."""
        while True:
            header, buffers = self._receive(deadline)
            op = header.get("op")
            if op == "callback" and header.get("name") in callbacks:
                try:
                    args, kwargs = self.codec.decode(header.get("value"), buffers, classes)
                    self._send({"op": "return"}, callbacks[header["name"]](*args, **kwargs), deadline)
                except Exception as error:  # the package's function refused the submission's input
                    self._send({"op": "raised", "type": type(error).__name__, "message": str(error)[:300]},
                               deadline=deadline)
                continue
            if op == "callback":
                raise SandboxEnded(f"it asked for {str(header.get('name'))[:40]!r}, which it may not call")
            if op in ("defined", "result", "raised"):
                return header, buffers
            raise SandboxEnded(f"it sent an unknown message {str(op)[:40]!r}")

    def define(self, exercise: Exercise, cell: str, filename: str, deadline: float) -> None:
        self._send({"op": "define", "name": exercise.function, "module": exercise.module, "cell": cell,
                    "filename": filename, "dependencies": list(exercise.dependencies)}, deadline=deadline)
        header, _ = self._answer(deadline, {}, {})
        if header["op"] == "raised":
            error = self.codec.exception_class(str(header.get("type")))(str(header.get("message", ""))[:500])
            error.where = str(header.get("where", ""))[:300]
            raise error

    def call(self, exercise: Exercise, args, kwargs, deadline: float, gradient: bool = False):
        from slamp.models import Prediction

        classes = {"Prediction": Prediction}
        callbacks = {name: getattr(importlib.import_module(f"slamp.{module}"), name)
                     for name, module in exercise.dependencies.items()}
        self._send({"op": "call", "name": exercise.function, "gradient": gradient}, [list(args), kwargs], deadline)
        header, buffers = self._answer(deadline, callbacks, classes)
        if header["op"] == "raised":
            error = self.codec.exception_class(str(header.get("type")))(str(header.get("message", ""))[:500])
            error.where = str(header.get("where", ""))[:300]
            raise error
        try:
            return self.codec.decode(header.get("value"), buffers, classes)
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise SandboxEnded(f"it sent a malformed value ({error})") from None

    def close(self) -> None:
        """Kill the process and everything in its session, reap what was orphaned, remove its folder."""
        for fd in (self.requests, self.replies):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        _reap_orphans()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


def _reap_orphans() -> None:
    """Kill and reap the processes that were reparented to this one (it is a child subreaper: a
    process a submission started and detached from its session ends up here). Only in a process
    that :func:`become_subreaper` made one, whose other children are all known."""
    if not _SUBREAPER:
        return
    for _ in range(10):
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and int(stat.parent.name) != os.getpid():
                children.append(int(stat.parent.name))
        known = {p.pid for p in _STARTED}
        children = [c for c in children if c not in known]
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError, PermissionError):
                pass


_STARTED: list = []  # the checkers a class grading started (not orphans)
_SUBREAPER: list = []  # non-empty once this process is a child subreaper


def become_subreaper() -> None:
    """Make orphaned descendants (a submission's detached processes) children of this process,
    so that :func:`_reap_orphans` finds them (the command line does this; ``grade()`` does not)."""
    if sys.platform == "linux":
        import ctypes

        if ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) == 0:  # PR_SET_CHILD_SUBREAPER
            _SUBREAPER.append(True)


class Remote:
    """The submission's function as the checks see it: calling it sends the inputs to the
    submission's process and returns what came back."""

    def __init__(self, sandbox: Sandbox, exercise: Exercise, deadline: float):
        self.sandbox, self.exercise, self.deadline = sandbox, exercise, deadline
        self.__name__ = exercise.function

    def __call__(self, *args, **kwargs):
        return self.sandbox.call(self.exercise, args, kwargs, self.deadline)

    def call_with_gradients(self, *args, **kwargs):
        return tuple(self.sandbox.call(self.exercise, args, kwargs, self.deadline, gradient=True))


# ---- grading a student's files ------------------------------------------------------------------
MAX_FILE = 20 * 2**20  # bytes; a larger notebook is not read


def submission_files(folder: Path) -> list[Path]:
    """The notebooks (.ipynb, .py) anywhere in a student's folder, checkpoints and hidden files left out."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix in (".ipynb", ".py") and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def read_cells(path: Path) -> list[str]:
    """The code cells of a notebook (.ipynb or jupytext .py); an unreadable one raises AssignmentError."""
    try:
        if path.stat().st_size > MAX_FILE:
            raise AssignmentError(f"{path.name} is larger than {MAX_FILE // 2**20} MB")
        return [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]
    except AssignmentError:
        raise
    except Exception as error:  # not JSON, not a notebook, not UTF-8, ...
        raise AssignmentError(f"{path.name} could not be read as a notebook ({type(error).__name__}: "
                              f"{textwrap.shorten(str(error), 120)})") from None


def identify(files: list[Path]) -> tuple[dict, list[dict]]:
    """Which file answers which exercise, by content: ``{function: (path, cell, note)}`` from the
    cells that define each exercise's function (where several files do, the newest), and a row for
    every file that could not be read or answers no exercise."""
    found, problems = {}, []
    for path in files:
        try:
            cells = read_cells(path)
        except AssignmentError as error:
            problems.append({"file": path, "hint": str(error)})
            continue
        defined = [(e, defining_cell(cells, e.function)) for e in EXERCISES]
        defined = [(e, cell) for e, cell in defined if cell is not None]
        if not defined:
            problems.append({"file": path, "hint": f"{path.name} defines none of the exercises' functions"})
        for exercise, cell in defined:
            found.setdefault(exercise.function, []).append((path.stat().st_mtime, str(path), path, cell))
    chosen = {}
    for function, candidates in found.items():
        candidates.sort(key=lambda c: (c[0], c[1]))
        *others, (_, _, path, cell) = candidates
        note = f" (also defined in {', '.join(o[2].name for o in others)}: graded the newest)" if others else ""
        chosen[function] = (path, cell, note)
    return chosen, problems


def _cell_for_exec(cell: str) -> str:
    """The cell with IPython's ``%magic`` and ``!shell`` lines blanked (they are not Python)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.splitlines())


def grade_student(files: list[Path], exercises: list[Exercise], lib: Path, limits: Limits) -> list[dict]:
    """One row per exercise (``notebook, exercise, passed, hint, seconds, file``, and ``error``: True
    when the grader itself failed) and one per unreadable or unrelated file. Student code runs only
    in :class:`Sandbox` processes; the checks run here and compare what comes back."""
    chosen, problems = identify(files)
    rows = [{"notebook": "", "exercise": "", "passed": False, "hint": p["hint"], "seconds": 0.0,
             "file": p["file"].name, "error": False} for p in problems]
    sandbox = None
    try:
        for exercise in exercises:
            start = time.monotonic()
            row = {"notebook": exercise.notebook, "exercise": exercise.function, "file": "", "error": False}
            if exercise.function not in chosen:
                rows.append(dict(row, passed=False, hint=f"no notebook defines {exercise.function}", seconds=0.0))
                continue
            path, cell, note = chosen[exercise.function]
            row["file"] = path.name
            module = importlib.import_module(f"slamp.{exercise.module}")
            namespace = {k: v for k, v in vars(module).items() if k != exercise.function}
            reason = reliance_on_the_package(cell, exercise.function, namespace)
            if reason is None and (comment := copied_comment(cell, exercise)) is not None:
                reason = f"the cell repeats the hidden solution's comment {comment!r}: it was copied"
            if reason is not None:
                rows.append(dict(row, passed=False, hint=f"rejected: {reason}{note}",
                                 seconds=round(time.monotonic() - start, 2)))
                continue
            try:
                if sandbox is None:
                    sandbox = Sandbox(lib, limits)
                    start = time.monotonic()  # the seconds are the exercise's, not the process's start
                deadline = time.monotonic() + limits.timeout
                try:
                    sandbox.define(exercise, _cell_for_exec(cell), f"<the cell defining {exercise.function}>", deadline)
                except Exception as error:
                    where = f" ({error.where})" if getattr(error, "where", "") else ""
                    result = {"passed": False, "message": f"the cell defining {exercise.function} raised "
                                                          f"{type(error).__name__}: {error}{where}"}
                else:
                    result = checks.run(exercise.check, Remote(sandbox, exercise, deadline))
            except SandboxTimeout:
                result = {"passed": False, "message": f"grading took longer than {limits.timeout:g} s (an endless loop?)"}
                sandbox.close()
                sandbox = None
            except SandboxEnded as error:
                result = {"passed": False, "message": f"the submission's process ended: {error}"}
                sandbox.close()
                sandbox = None
            except RuntimeError as error:  # the process did not start: the grader's problem, not the student's
                result = {"passed": False, "message": f"grader error: {error}"}
                row["error"] = True
            rows.append(dict(row, passed=bool(result["passed"]), hint=("" if result["passed"] else result["message"])
                             + (note if not result["passed"] else ""), seconds=round(time.monotonic() - start, 2)))
    finally:
        if sandbox is not None:
            sandbox.close()
    return rows


_LIB: list = []  # the student package this process built for grade()


def _lib() -> Path:
    if not _LIB:
        folder = Path(tempfile.mkdtemp(prefix="grading-lib-"))
        atexit.register(remove_tree, folder)
        _LIB.append(prepare_lib(folder))
    return _LIB[0]


def grade(path: Path, timeout: float = TIMEOUT, limits: Limits | None = None) -> dict[str, tuple[bool, str]]:
    """``{function: (passed, message)}`` for the exercises of the notebook that the file at ``path``
    answers (known by the functions it defines, whatever its name), each graded in a contained
    process of its own (see :func:`grade_student`) within ``timeout`` seconds."""
    path = Path(path)
    chosen, problems = identify([path])
    if not chosen:
        raise AssignmentError(problems[0]["hint"] if problems else f"{path.name}: no exercise")
    notebooks = {e.notebook for e in EXERCISES if e.function in chosen}
    limits = limits or Limits(timeout=timeout, contained=containment() is None)
    rows = grade_student([path], [e for e in EXERCISES if e.notebook in notebooks], _lib(), limits)
    return {r["exercise"]: (r["passed"], r["hint"] or "ok") for r in rows if r["exercise"]}


# ---- grading a class ------------------------------------------------------------------------------
COLUMNS = ["student", "notebook", "exercise", "passed", "hint", "seconds", "file"]


def students(folder: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """``{student: files}`` for the class folder (one sub-folder per student, named by the
    student), and the files lying loose in it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AssignmentError(f"{folder} is not a folder (expected one sub-folder per student)")
    found = {p.name: submission_files(p) for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    loose = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".ipynb", ".py"))
    return found, loose


def _csv_safe(text: str) -> str:
    """One line, and not a formula when a spreadsheet opens the CSV."""
    text = " ".join(str(text).split())
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def grade_class(folder: Path, out: Path, exercises: list[Exercise], limits: Limits, jobs: int,
                log=print) -> tuple[list[dict], bool]:
    """Grade every student of the class folder, ``jobs`` students at a time, each in a checker
    process of its own (which starts the contained processes the student's code runs in); write
    ``<out>/grades.csv`` (one row per student and exercise) and ``<out>/summary.csv``. Returns the
    rows and whether grading worked for every student."""
    from concurrent.futures import ThreadPoolExecutor

    roster, loose = students(folder)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"student": "", "notebook": "", "exercise": "", "passed": False, "seconds": 0.0, "file": p.name,
             "hint": "a file outside every student's folder: put each student's notebooks in a folder named by the "
                     "student", "error": False} for p in loose]
    scratch = tempfile.mkdtemp(prefix="grading-")
    try:
        lib = prepare_lib(Path(scratch) / "lib")
        names = ",".join(e.function for e in exercises)

        def one(student: str) -> list[dict]:
            command = [sys.executable, str(Path(__file__).resolve()), "_student", str(Path(folder) / student),
                       "--lib", str(lib), "--exercises", names, "--timeout", str(limits.timeout),
                       "--memory", str(limits.memory_mb), "--cpu", str(limits.cpu_seconds)]
            if not limits.contained:
                command.append("--uncontained")
            budget = limits.startup * 2 + limits.timeout * (len(exercises) + 1) + 60
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + os.environ.get("PYTHONPATH", "").split(
                os.pathsep)).rstrip(os.pathsep), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
            try:
                process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                           env=env, start_new_session=True)
                _STARTED.append(process)
                stdout, stderr = process.communicate(timeout=budget)
                graded = json.loads(stdout.strip().splitlines()[-1]) if process.returncode == 0 else None
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                graded, stderr = None, f"the checker took longer than {budget:g} s"
            except (json.JSONDecodeError, IndexError):
                graded = None
            if graded is None:
                why = textwrap.shorten(" | ".join(stderr.strip().splitlines()[-3:]), 300)
                graded = [{"notebook": e.notebook, "exercise": e.function, "passed": False, "seconds": 0.0,
                           "file": "", "hint": f"grader error: {why}", "error": True} for e in exercises]
            result = [dict(r, student=student) for r in graded]
            passed = sum(r["passed"] for r in result if r["exercise"])
            log(f"{student}: {passed}/{len(exercises)}")
            return result

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for result in pool.map(one, sorted(roster)):
                rows += result
    finally:
        remove_tree(Path(scratch))
    with open(out / "grades.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(dict(row, passed=int(row["passed"]), hint=_csv_safe(row["hint"]),
                                 file=_csv_safe(row["file"]), student=_csv_safe(row["student"])))
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "passed", "exercises", "problems"] + [e.function for e in exercises])
        for student in sorted(roster):
            mine = [r for r in rows if r["student"] == student]
            by_exercise = {r["exercise"]: int(r["passed"]) for r in mine if r["exercise"]}
            writer.writerow([_csv_safe(student), sum(by_exercise.values()), len(exercises),
                             sum(1 for r in mine if not r["exercise"])] + [by_exercise.get(e.function, 0)
                                                                           for e in exercises])
    return rows, not any(r.get("error") for r in rows)


def select_exercises(names: str | None) -> list[Exercise]:
    """The exercises named (functions or notebooks, comma-separated); all when None."""
    if not names:
        return list(EXERCISES)
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    unknown = wanted - {e.function for e in EXERCISES} - {e.notebook for e in EXERCISES}
    if unknown:
        raise AssignmentError(f"unknown exercises or notebooks {sorted(unknown)} (see `list`)")
    return [e for e in EXERCISES if e.function in wanted or e.notebook in wanted]


def _limits(args) -> Limits:
    return Limits(timeout=args.timeout, memory_mb=args.memory, cpu_seconds=args.cpu,
                  contained=not args.uncontained)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make_parser = commands.add_parser("make", help="write the student notebooks and the student build")
    make_parser.add_argument("--out", type=Path, default=ROOT / "assignments")
    make_parser.add_argument("--install", default=None,
                             help="what the student notebooks' first cell pip-installs on Colab (default: "
                                  "git+<Repository>@student, the branch the teacher publishes the folder to)")
    make_parser.add_argument("--wheel", action="store_true", help="also build <out>/dist/slamp-*.whl")

    def grading(sub):
        sub.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per exercise (default %(default)s)")
        sub.add_argument("--memory", type=int, default=Limits.memory_mb, help="MB per submission (default %(default)s)")
        sub.add_argument("--cpu", type=int, default=Limits.cpu_seconds, help="CPU seconds per student's process")
        sub.add_argument("--uncontained", action="store_true",
                         help="grade where the sandbox cannot be built (no Landlock): student code can then read "
                              "and write your files")
        sub.add_argument("--exercises", default=None, help="only these exercises or notebooks (comma-separated)")

    grade_parser = commands.add_parser("grade", help="grade one student's notebooks (.py or .ipynb, any names)")
    grade_parser.add_argument("files", nargs="+", type=Path)
    grading(grade_parser)
    class_parser = commands.add_parser("class", help="grade a class: a folder with one sub-folder per student")
    class_parser.add_argument("folder", type=Path)
    class_parser.add_argument("--out", type=Path, required=True, help="where grades.csv and summary.csv go")
    class_parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="students graded at once")
    grading(class_parser)
    one = commands.add_parser("_student")  # internal: grade one student's folder here, print JSON rows
    one.add_argument("folder", type=Path)
    one.add_argument("--lib", type=Path, required=True)
    grading(one)
    commands.add_parser("list", help="the exercises")
    args = parser.parse_args(argv)

    if args.command == "list":
        for e in EXERCISES:
            print(f"{e.notebook:<20} {e.function:<28} {e.title}")
        return 0
    if args.command == "make":
        written = make(args.out, install=args.install, wheel=args.wheel)
        print(f"wrote {len(written)} files to {args.out}: " + ", ".join(p.name for p in written))
        return 0
    try:
        exercises = select_exercises(args.exercises)
    except AssignmentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.command == "_student":
        become_subreaper()
        rows = grade_student(submission_files(args.folder), exercises, args.lib, _limits(args))
        print(json.dumps([dict(r, file=str(r["file"])) for r in rows]))
        return 0
    why = containment()
    if why is not None and not args.uncontained:
        print(f"error: student code cannot be contained here: {why}. Grade on a Linux machine with Landlock, or "
              "pass --uncontained (student code can then read and write your files).", file=sys.stderr)
        return 2
    become_subreaper()
    if args.command == "class":
        started = time.monotonic()
        try:
            rows, worked = grade_class(args.folder, args.out, exercises, _limits(args), args.jobs)
        except AssignmentError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        graded = [r for r in rows if r["exercise"]]
        print(f"graded {len({r['student'] for r in graded})} students x {len(exercises)} exercises in "
              f"{time.monotonic() - started:.0f} s: {sum(r['passed'] for r in graded)}/{len(graded)} passed; "
              f"{args.out / 'grades.csv'}, {args.out / 'summary.csv'}")
        for exercise in exercises:
            mine = [r for r in graded if r["exercise"] == exercise.function]
            print(f"  {exercise.function:<28} {sum(r['passed'] for r in mine)}/{len(mine)}")
        if not worked:
            print("grading failed for some students (rows whose hint starts with 'grader error')", file=sys.stderr)
        return 0 if worked else 1
    rows = grade_student(args.files, exercises if args.exercises else _exercises_of(args.files), _lib(), _limits(args))
    for row in rows:
        print(f"  {'PASS' if row['passed'] else 'FAIL'}  {row['exercise'] or row['file']:<28} {row['hint']}")
    graded = [r for r in rows if r["exercise"]]
    print(f"score: {sum(r['passed'] for r in graded)}/{len(graded)}")
    return 1 if any(r["error"] for r in rows) else 0


def _exercises_of(files: list[Path]) -> list[Exercise]:
    """The exercises of every notebook that one of ``files`` answers."""
    chosen, _ = identify(files)
    notebooks = {e.notebook for e in EXERCISES if e.function in chosen}
    return [e for e in EXERCISES if e.notebook in notebooks]


if __name__ == "__main__":
    sys.exit(main())
