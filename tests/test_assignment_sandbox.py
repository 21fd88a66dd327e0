"""Hostile submissions: the grader's results cannot be forged, student code sees no solution and
none of the teacher's files, and what it starts or allocates is bounded and ends with it. A class
folder with renamed, broken and hostile submissions grades to a CSV without aborting."""
import csv
import json
import os
import time
from pathlib import Path

import pytest
from tool_scripts import load_tool


ROOT = Path(__file__).resolve().parents[1]



assignments = load_tool("assignments")
pytestmark = pytest.mark.skipif(assignments.containment() is not None,
                                reason=f"no sandbox here: {assignments.containment()}")
BLEND = "    return mask * appearance + (1 - mask) * motion\n"


def blend_notebook(folder: Path, body: str, name: str = "03_slamp_baseline.py", before: str = "") -> Path:
    """The teacher's notebook 03 with blend's body replaced by ``body`` (4-space indented lines),
    its solution markers taken out (as in a student's copy), and ``before`` added above the function."""
    source = (ROOT / "notebooks" / "03_slamp_baseline.py").read_text()
    assert BLEND in source
    source = source.replace(BLEND, body)
    source = "\n".join(line for line in source.splitlines() if "SOLUTION" not in line) + "\n"
    if before:
        source = source.replace("def blend(", before + "\ndef blend(", 1)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


def grade_blend(tmp_path, body, timeout=30, before=""):
    return assignments.grade(blend_notebook(tmp_path, body, before=before), timeout=timeout)["blend"]


def test_a_forged_result_line_and_exit_fails(tmp_path, capsys):
    forged = json.dumps({"blend": {"passed": True, "message": "ok"}, "prediction_loss": {"passed": True, "message": "ok"}})
    body = (f"    import os, sys\n    print({forged!r}); print({forged!r}, file=sys.stderr)\n"
            "    sys.stdout.flush(); os._exit(0)\n")
    passed, message = grade_blend(tmp_path, body)
    assert not passed and "process ended" in message, message
    # the same line printed when the cell runs, then the right answer: passes on its merits only
    passed, _ = grade_blend(tmp_path, BLEND, before=f"print({forged!r})")
    assert passed
    # writing a fake reply on the grader's pipe gives at most a wrong value
    body = ("    import os\n    for fd in range(3, 20):\n        try:\n"
            "            os.write(fd, b'\\x10\\x00\\x00\\x00\\x00\\x00\\x00\\x00' + b'{\"op\": \"result\"}' * 1)\n"
            "        except OSError:\n            pass\n    return appearance\n")
    passed, message = grade_blend(tmp_path, body)
    assert not passed, message


def test_the_hidden_solution_cannot_be_called(tmp_path):
    body = '    import sys\n    return sys.modules["slamp.nn"].__dict__["blend"](appearance, motion, mask)\n'
    passed, message = grade_blend(tmp_path, body)
    assert not passed and "NotImplementedError" in message, message
    body = ('    import gc\n    found = [f for f in gc.get_objects() if getattr(f, "__name__", "") == "blend" and f is not blend]\n'
            '    for f in found:\n        try:\n            return f(appearance, motion, mask)\n        except BaseException:\n'
            '            pass\n    return motion\n')
    passed, message = grade_blend(tmp_path, body)
    assert not passed, message


def test_an_error_message_cannot_carry_a_solution(tmp_path):
    body = ('    import inspect, sys\n    sources = [inspect.getsource(sys.modules[m]) for m in ("slamp.nn", "slamp.models", "slamp.losses")]\n'
            '    raise ValueError(" ".join(s[s.find("def blend"):][:400] for s in sources))\n')
    passed, message = grade_blend(tmp_path, body)
    assert not passed and "ValueError" in message
    assert "mask * appearance + (1 - mask) * motion" not in message and "NotImplementedError" in message, message
    # the grader's own solution code is not in the submission's process either
    body = ('    import sys\n    raise ValueError(sorted(m for m in sys.modules if m.split(".")[0] in '
            '("assignments", "literate", "tools_assignments", "setup_cell")))\n')
    passed, message = grade_blend(tmp_path, body)
    assert not passed and "ValueError: []" in message, message


PROBES = """\
    import os, socket, subprocess, json
    report = {{}}
    def attempt(name, action):
        try:
            action()
            report[name] = "DONE"
        except BaseException as error:
            report[name] = type(error).__name__
    attempt("notebooks", lambda: open({notebook!r}).read())
    attempt("listdir", lambda: os.listdir({root!r}))
    attempt("package", lambda: open({package!r}).read())
    attempt("tools", lambda: open({tools!r}, "w").write("x"))
    attempt("tmp", lambda: open("/tmp/slamp_probe_{marker}", "w").write("x"))
    attempt("here", lambda: open("scratch.txt", "w").write("x"))
    attempt("fork", lambda: os.waitpid(os.fork(), 0) if True else None)
    attempt("child", lambda: subprocess.Popen(["sleep", "{marker}"]))
    attempt("tcp", lambda: socket.create_connection(("127.0.0.1", 9), timeout=1))
    attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 9)))
    attempt("kill", lambda: os.kill(os.getppid(), 0))
    attempt("environ", lambda: open(f"/proc/{{os.getppid()}}/environ").read())
    report["secret"] = os.environ.get("TEACHER_SECRET", "absent")
    report["home"] = os.environ.get("HOME", "")
    raise ValueError("PROBES " + json.dumps(report, separators=(",", ":")))
"""


def test_student_code_is_contained(tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHER_SECRET", "s3cret")
    marker = str(9_000_000 + os.getpid())
    body = PROBES.format(notebook=str(ROOT / "notebooks" / "03_slamp_baseline.py"), root=str(ROOT),
                         package=str(ROOT / "slamp" / "nn.py"), tools=str(ROOT / "tools" / "probe_written"),
                         marker=marker)
    passed, message = grade_blend(tmp_path, body)
    assert not passed and "PROBES" in message, message
    report = json.loads(message[message.index("PROBES ") + 7:message.index("}") + 1])
    for denied in ("notebooks", "listdir", "package", "tools", "tmp", "fork", "child", "tcp", "udp", "kill", "environ"):
        assert report[denied] == "PermissionError", (denied, report)
    assert report["here"] == "DONE"  # its own folder is writable
    assert report["secret"] == "absent" and "submission-" in report["home"]
    assert not (ROOT / "tools" / "probe_written").exists() and not Path(f"/tmp/slamp_probe_{marker}").exists()
    # nothing it started is left running
    left = [p for p in Path("/proc").glob("[0-9]*/cmdline") if marker.encode() in _read(p)]
    assert not left


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_memory_and_time_are_bounded(tmp_path):
    started = time.monotonic()
    passed, message = grade_blend(tmp_path, "    x = bytearray(16 * 2**30)\n    return appearance\n")
    assert not passed and "MemoryError" in message, message
    passed, message = grade_blend(tmp_path, "    while True:\n        pass\n", timeout=8)
    assert not passed and "longer than 8 s" in message, message
    assert time.monotonic() - started < 60


@pytest.mark.slow
def test_a_class_folder_with_renamed_broken_and_hostile_submissions(tmp_path):
    folder = tmp_path / "class"
    blend_notebook(folder / "ada", BLEND, name="Copy of 03_slamp_baseline.ipynb".replace(".ipynb", ".py"))
    blend_notebook(folder / "bob", "    return mask * motion + (1 - mask) * appearance\n", name="03_slamp_baseline (1).py")
    (folder / "cem").mkdir(parents=True)
    (folder / "cem" / "03_slamp_baseline.ipynb").write_text("{ not a notebook")
    blend_notebook(folder / "dan", "    while True:\n        pass\n", name="mine.py")
    blend_notebook(folder / "eve", "    import os\n    print('{\"blend\": {\"passed\": true}}')\n    os._exit(0)\n",
                   name="x.py")
    (folder / "loose.ipynb").write_text("{}")
    out = tmp_path / "grades"
    code = assignments.main(["class", str(folder), "--out", str(out), "--exercises", "03_slamp_baseline",
                             "--timeout", "8", "--jobs", "2"])
    assert code == 0  # grading worked, whatever the grades
    rows = list(csv.DictReader(open(out / "grades.csv")))
    blend = {r["student"]: r for r in rows if r["exercise"] == "blend"}
    assert set(blend) == {"ada", "bob", "cem", "dan", "eve"}
    assert blend["ada"]["passed"] == "1" and blend["ada"]["file"] == "Copy of 03_slamp_baseline.py"
    assert blend["bob"]["passed"] == "0" and "the other way" in blend["bob"]["hint"]
    assert blend["cem"]["passed"] == "0" and "no notebook defines blend" in blend["cem"]["hint"]
    assert any(r["student"] == "cem" and "could not be read" in r["hint"] for r in rows)
    assert blend["dan"]["passed"] == "0" and "longer than 8 s" in blend["dan"]["hint"]
    assert blend["eve"]["passed"] == "0" and "process ended" in blend["eve"]["hint"]
    assert any(r["file"] == "loose.ipynb" and "outside every student's folder" in r["hint"] for r in rows)
    assert all(float(r["seconds"]) >= 0 for r in rows)
    summary = {r["student"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert summary["ada"]["passed"] == "2" and summary["ada"]["exercises"] == "2"
    assert summary["bob"]["blend"] == "0" and summary["bob"]["prediction_loss"] == "1"
