"""Nothing lost under faults: one run per folder, checkpoints that are good when they say so, and
evaluations that refuse non-finite results."""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from slamp import cli
from slamp.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from slamp.config import TrainConfig
from slamp.runlock import LOCK_NAME, RunLock, RunLockedError
from slamp.train import train


ROOT = Path(__file__).resolve().parents[1]


def tiny(out, **overrides) -> TrainConfig:
    settings = dict(epochs=1, epoch_size=2, batch_size=2, n_past=2, n_future=2, log_every=1, val_every=0,
                    checkpoint_every=1, workers=0, out=str(out))
    return TrainConfig.preset("tiny", **{**settings, **overrides})


# ---- one run per folder -----------------------------------------------------------------------
HOLD = """
import sys, time
from slamp.runlock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_run_in_the_same_folder_is_refused_and_names_the_first(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"PID {holder.pid} on "):
            train(tiny(tmp_path / "run"))
        assert not (tmp_path / "run" / "last.pt").exists() and not (tmp_path / "run" / "train.csv").exists()
        code = cli.main(["train", "--preset", "tiny", "--out", str(tmp_path / "run"), "--set", "epochs=1"])
        assert code != 0
    finally:
        holder.kill()
        holder.wait()
    summary = train(tiny(tmp_path / "run"))  # the holder is gone: its lock is taken over, and said so
    assert summary["updates"] == 2


SLOW_HOLDER = """
import fcntl, json, os, sys, time
path = os.path.join(sys.argv[1], ".lock")
os.makedirs(sys.argv[1], exist_ok=True)
handle = open(path, "w")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)  # the lock is held, its file still empty: the moment a run takes it
time.sleep(0.3)
handle.write(json.dumps({"pid": os.getpid(), "host": "here", "started": "now"}) + "\\n")
handle.flush()
time.sleep(60)
"""


def test_a_run_refused_in_the_instant_the_holder_takes_the_lock_still_names_it(tmp_path):
    # Two runs started together: the loser can find the lock held and its file not yet written
    # (CI met this); it reads again until the holder's details are there.
    holder = subprocess.Popen([sys.executable, "-c", SLOW_HOLDER, str(tmp_path / "run")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"PID {holder.pid} on here"):
            RunLock(tmp_path / "run").acquire()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_run_is_reported_and_taken_over(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).write_text(json.dumps({"pid": 999999, "host": "gone", "started": "yesterday"}) + "\n")
    train(tiny(folder))
    said = capsys.readouterr().err
    assert "taking over the lock of a run that did not finish (PID 999999 on gone, started yesterday)" in said
    assert (folder / LOCK_NAME).read_text() == ""  # released at the end: nobody holds it


def test_the_lock_is_released_when_a_run_fails(tmp_path):
    with pytest.raises(Exception):
        train(tiny(tmp_path / "run", lr=1e9, epoch_size=6))  # diverges: NonFiniteLossError
    with RunLock(tmp_path / "run"):  # free again in the same process
        pass


# ---- checkpoints good when they say so ----------------------------------------------------------
@pytest.fixture
def checkpoint(tmp_path):
    train(tiny(tmp_path / "run"))
    return tmp_path / "run" / "last.pt"


def test_flipped_bytes_in_a_checkpoint_are_found(checkpoint, tmp_path):
    data = bytearray(checkpoint.read_bytes())
    for k in range(200):  # the issue's 200 flipped bytes, spread over the tensors' data
        data[len(data) // 4 + 1_997 * k % (len(data) // 2)] ^= 0x5A
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged.pt"):
        load_checkpoint(damaged)


@pytest.mark.parametrize("cut", [0, 1, 5000, -10])
def test_empty_and_truncated_checkpoints_name_the_file(checkpoint, tmp_path, cut):
    data = checkpoint.read_bytes()
    short = tmp_path / "short.pt"
    short.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match="short.pt"):
        load_checkpoint(short)


def test_a_non_finite_model_is_never_written_and_the_previous_checkpoint_stays(checkpoint):
    state = load_checkpoint(checkpoint)
    before = checkpoint.read_bytes()
    poisoned = {**state, "model": {k: v.clone() for k, v in state["model"].items()}}
    name = next(k for k, v in poisoned["model"].items() if v.is_floating_point())
    poisoned["model"][name].view(-1)[0] = float("nan")
    with pytest.raises(CheckpointError, match=f"not finite.*{name}"):
        save_checkpoint(checkpoint, {k: v for k, v in poisoned.items() if k not in ("format", "checksum")})
    assert checkpoint.read_bytes() == before
    assert not list(checkpoint.parent.glob("*.part*")) and not list(checkpoint.parent.glob(".*part*"))


def test_the_nan_guard_says_how_large_the_last_checkpoints_weights_are(tmp_path):
    from slamp.checkpoint import NonFiniteLossError

    with pytest.raises(NonFiniteLossError) as stopped:
        train(tiny(tmp_path / "run", lr=1e6, epoch_size=8))
    message = str(stopped.value)
    assert "finite, largest weight" in message or "no checkpoint was written yet" in message
    if "largest weight" in message:
        state = load_checkpoint(tmp_path / "run" / "last.pt")
        assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


# ---- evaluations refuse non-finite results ---------------------------------------------------------
def test_evaluate_refuses_a_model_that_predicts_nan(checkpoint, tmp_path, capsys):
    state = load_checkpoint(checkpoint)
    state["model"] = {k: (torch.full_like(v, float("nan")) if k.startswith("pixel_decoder.out.") else v)
                      for k, v in state["model"].items()}
    content = {k: v for k, v in state.items() if k != "checksum"}
    bad = tmp_path / "bad.pt"
    torch.save(content, bad)  # as a run that diverged between two checks would leave it (no checksum)
    out = tmp_path / "eval"
    code = cli.main(["evaluate", "--checkpoint", str(bad), "--sequences", "2", "--num-samples", "2",
                     "--device", "cpu", "--out", str(out)])
    assert code == 1 and "non-finite scores" in capsys.readouterr().err
    assert not (out / "summary.json").exists()


# ---- signals -----------------------------------------------------------------------------------
@pytest.mark.slow  # three training runs in subprocesses
@pytest.mark.parametrize("signal_name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_writes_a_checkpoint_and_the_resumed_run_is_the_same_run(tmp_path, signal_name, code):
    import signal

    settings = ["epochs=1", "epoch_size=24", "batch_size=2", "n_past=2", "n_future=2", "log_every=1", "val_every=0",
                "checkpoint_every=1000", "workers=0", "scheduled_sampling_k=1.0"]
    base, sets = [sys.executable, "-m", "slamp", "train", "--preset", "tiny"], ["--set", *settings]
    stopped = tmp_path / "stopped"
    process = subprocess.Popen(base + ["--out", str(stopped)] + sets, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=tmp_path)
    log = stopped / "train.csv"
    while not (log.is_file() and len(log.read_text().splitlines()) > 4) and process.poll() is None:
        time.sleep(0.05)  # wait for a few updates
    process.send_signal(getattr(signal, signal_name))
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    step = load_checkpoint(stopped / "last.pt")["step"]
    assert 4 <= step < 24 and f"stopped by {signal_name} after update {step}" in err and "last.pt" in err
    resumed = subprocess.run(base + ["--out", str(stopped), "--resume"] + sets, capture_output=True, text=True,
                             cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(base + ["--out", str(tmp_path / "straight")] + sets, capture_output=True, text=True,
                              cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    from slamp.runlog import read_log

    a, b = read_log(tmp_path / "straight" / "train.csv"), read_log(stopped / "train.csv")
    assert list(b["step"]) == list(range(1, 25)) and (a["total"] == b["total"]).all()  # bit for bit


# ---- misuse of the command line: refused with exit status 2 and a message ----------------------------
@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--pretrained", "slamp", "--n-past", "0"], "--n-past: must be at least 1"),
    (["evaluate", "--pretrained", "slamp", "--sequences", "0"], "--sequences: must be at least 1"),
    (["evaluate", "--pretrained", "slamp", "--num-samples", "two"], "expected a whole number"),
    (["evaluate", "--reference", "black", "--dataset", "foo"], "unknown dataset 'foo'; choose from bair"),
    (["evaluate", "--pretrained", "slamp", "--metrics", "psnr", "fid"], "invalid choice: 'fid'"),
    (["train", "--stop-after", "0"], "--stop-after: must be at least 1"),
])
def test_bad_arguments_are_refused_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--resume", "--overwrite"], "choose one"),
    (["train", "--set", "lr=1e-3", "--set", "lr=2e-3"], "--set gives lr more than once"),
    (["train", "--out", "a", "--set", "out=b"], "both name the output folder"),
])
def test_contradictory_training_options_are_refused(argv, message, capsys):
    assert cli.main(argv) == 2 and message in capsys.readouterr().err


def test_fvd_without_its_weights_stops_before_the_evaluation(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLAMP_I3D", str(tmp_path / "missing.pt"))
    started = time.perf_counter()
    code = cli.main(["evaluate", "--pretrained", "slamp", "--sequences", "2", "--num-samples", "2", "--metrics",
                     "psnr", "fvd", "--device", "cpu", "--out", str(tmp_path / "eval")])
    assert code == 1 and "FVD needs the I3D network" in capsys.readouterr().err
    assert time.perf_counter() - started < 30 and not (tmp_path / "eval").exists()


def test_resuming_with_another_model_names_both(checkpoint, capsys):
    config = tiny(checkpoint.parent, model="svg")
    with pytest.raises(CheckpointError, match=r"holds a SLAMP \(preset tiny\), but this run trains a SVG \(preset tiny\)"):
        train(config, resume=True)
    bigger = tiny(checkpoint.parent, model_preset="cpu")
    with pytest.raises(CheckpointError, match=r"sizes that differ \(checkpoint, run\): \{'g_dim': \(32, 64\)"):
        train(bigger, resume=True)


def test_a_checkpoint_of_an_unknown_model_class_says_so(checkpoint, tmp_path):
    from slamp.checkpoint import load_model

    state = load_checkpoint(checkpoint)
    state["model_class"] = "Foo"
    content = {k: v for k, v in state.items() if k != "checksum"}
    foreign = tmp_path / "foo.pt"
    torch.save(content, foreign)
    with pytest.raises(CheckpointError, match="holds a model of class 'Foo'.*unknown model"):
        load_model(foreign)


# ---- the model refuses bad input, and a NaN batch leaves no trace --------------------------------
@pytest.mark.parametrize("make, message", [
    (lambda x: x * 255, "divide by 255"),
    (lambda x: x.masked_fill(x > 0.9, float("nan")), "NaN or infinite"),
    (lambda x: x[:0], "B >= 1"),
    (lambda x: x.double(), "float64 but the model computes in torch.float32"),
    (lambda x: x - 0.5, "must be in [0, 1]"),
])
def test_the_model_refuses_bad_frames_with_a_clear_error(make, message):
    from slamp.models import SLAMP

    model, x = SLAMP.from_preset("tiny"), torch.rand(2, 4, 1, 64, 64)
    with pytest.raises(ValueError, match=re.escape(message)):
        model.loss(make(x), n_past=2)
    with pytest.raises(ValueError, match=re.escape(message)):
        model.eval().generate(make(x)[:, :2], 2)


def test_counts_must_be_whole_numbers():
    from slamp.models import SLAMP

    model, x = SLAMP.from_preset("tiny").eval(), torch.rand(2, 4, 1, 64, 64)
    with pytest.raises(ValueError, match=r"n_past must be in .*\(a whole number\), found 2.0"):
        model(x, n_past=2.0)
    with pytest.raises(ValueError, match=r"\(whole numbers\), found 3 and 1.5"):
        model.generate(x[:, :2], 3, num_samples=1.5)


def test_a_batch_that_turns_to_nan_leaves_the_batchnorm_statistics_untouched():
    from slamp.models import SLAMP

    torch.manual_seed(0)
    model, x = SLAMP.from_preset("tiny").train(), torch.rand(2, 4, 1, 64, 64)
    model.loss(x, n_past=2)
    before = {name: value.clone() for name, value in model.named_buffers()}
    with torch.no_grad():
        next(model.encoder.parameters()).fill_(float("nan"))  # weights blown up inside the model
    total, _, _ = model.loss(x, n_past=2)
    assert not torch.isfinite(total)
    assert all(torch.equal(before[name], value) for name, value in model.named_buffers())


# ---- folders and disks -----------------------------------------------------------------------------
def test_an_unwritable_folder_fails_before_anything_is_built(tmp_path, monkeypatch):
    from slamp.runlock import RunFolderError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # a folder cannot be made under a file, even by root
    built = []
    monkeypatch.setattr("slamp.run.build_model", lambda config: built.append(config))
    with pytest.raises(RunFolderError, match=r"cannot write in the run folder .*a-file/run .*MB free"):
        train(tiny(blocker / "run"))
    assert not built
    assert cli.main(["train", "--preset", "tiny", "--out", str(blocker / "run"), "--set", "epochs=1"]) == 1


def test_a_full_disk_while_writing_a_checkpoint_names_the_folder_and_keeps_the_last_one(tmp_path, monkeypatch):
    import errno

    from slamp.runlock import RunFolderError

    folder = tmp_path / "run"
    train(tiny(folder, epoch_size=2))
    before = (folder / "last.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj, file, *args, **kwargs):
        Path(file).write_bytes(b"PK\x03\x04 the first bytes of a zip")  # what a full disk leaves
        raise RuntimeError("[enforce fail at inline_container.cc] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(RunFolderError, match=r"cannot write in the run folder .*run \(last.pt\).*MB free"):
        train(tiny(folder, epoch_size=4), resume=True)
    monkeypatch.setattr(torch, "save", real_save)
    assert (folder / "last.pt").read_bytes() == before and not list(folder.glob(".*.part"))
    assert errno.ENOSPC  # the error above is reported as a full disk (ENOSPC), see slamp.checkpoint


def test_unfinished_writes_of_a_killed_run_are_removed_on_the_next_start(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".last.pt.x1y2z3.part").write_bytes(b"half")
    train(tiny(folder))
    assert not list(folder.glob(".*.part")) and "removed 1 unfinished file(s)" in capsys.readouterr().err


# ---- a long evaluation saves its progress ------------------------------------------------------------
@pytest.mark.parametrize("how", ["flipped", "truncated", "empty"])
def test_an_interrupted_evaluation_continues_and_gives_the_uninterrupted_result(tmp_path, monkeypatch, capsys, how):
    import slamp.evaluate

    monkeypatch.setattr(cli, "EVALUATION_PART", 2)  # parts of 2 sequences (one batch each)
    argv = ["evaluate", "--pretrained", "slamp", "--sequences", "6", "--num-samples", "3", "--batch-size", "2",
            "--n-future", "4", "--device", "cpu"]
    assert cli.main(argv + ["--out", str(tmp_path / "straight")]) == 0
    real, calls = slamp.evaluate.evaluate, []

    def stopped_on_the_third_part(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the evaluation is killed during its third part
        return real(*args, **kwargs)

    monkeypatch.setattr(slamp.evaluate, "evaluate", stopped_on_the_third_part)
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv + ["--out", str(tmp_path / "resumed")])
    assert len(list((tmp_path / "resumed" / ".progress").glob("part_*.pt"))) == 2
    second = tmp_path / "resumed" / ".progress" / "part_00001.pt"
    second.write_bytes(_damage(second.read_bytes(), how))  # and the disk damaged the second part
    monkeypatch.setattr(slamp.evaluate, "evaluate", real)
    capsys.readouterr()
    assert cli.main(argv + ["--out", str(tmp_path / "resumed")]) == 0
    said = capsys.readouterr().err
    assert "continuing a saved evaluation" in said and f"{second} is damaged" in said
    straight = json.loads((tmp_path / "straight" / "summary.json").read_text())
    resumed = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert resumed["results"] == straight["results"] and not (tmp_path / "resumed" / ".progress").exists()
    assert (tmp_path / "resumed" / "per_sequence.csv").read_text() == (tmp_path / "straight" / "per_sequence.csv").read_text()


# ---- every file the package reads: damaged, truncated, empty -----------------------------------------
def _damage(data: bytes, how: str) -> bytes:
    if how == "empty":
        return b""
    if how == "truncated":
        return data[:len(data) // 2]
    damaged = bytearray(data)
    for k in range(200):  # flipped bytes in the middle of the file (the tensors' or arrays' data)
        damaged[len(damaged) // 4 + 997 * k % (len(damaged) // 2)] ^= 0x5A
    return bytes(damaged)


@pytest.mark.parametrize("how", ["flipped", "truncated", "empty"])
def test_a_damaged_shipped_model_is_refused_with_how_to_restore_it(tmp_path, monkeypatch, how):
    import shutil

    import slamp.pretrained as pretrained

    folder = tmp_path / "pretrained"
    shutil.copytree(pretrained.FOLDER, folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    (folder / "svg.pt").write_bytes(_damage((folder / "svg.pt").read_bytes(), how))
    monkeypatch.setattr(pretrained, "FOLDER", folder)
    with pytest.raises(pretrained.PretrainedError, match=r"svg.pt .*(damaged|empty|cannot read).*git checkout"):
        pretrained.load("svg")
    assert pretrained.load("slamp") is not None  # the others still load


@pytest.mark.parametrize("how", ["flipped", "truncated", "empty"])
def test_a_damaged_cached_test_set_is_refused_and_names_the_file(tmp_path, how):
    from slamp.data import MovingMNISTTestSet
    from slamp.data.files import DataError
    from slamp.data.mnist import load_digits

    path = tmp_path / "test_set.npz"
    MovingMNISTTestSet.generate(load_digits("test", "sklearn"), num_sequences=8, n_frames=6).save(path)
    path.write_bytes(_damage(path.read_bytes(), how))
    with pytest.raises(DataError, match="test_set.npz"):
        MovingMNISTTestSet.load(path)


@pytest.mark.parametrize("how", ["flipped", "truncated", "empty"])
def test_damaged_prepared_mnist_digits_are_refused_and_name_the_file(tmp_path, how, isolated_data):
    from slamp.data.files import DataError
    from slamp.data.mnist import DIGITS_FILE, load_mnist_digits

    source = next((p for p in (Path.home() / ".cache" / "slamp" / "mnist" / DIGITS_FILE,
                               ROOT / "data" / "mnist" / DIGITS_FILE) if p.is_file()), None)
    if source is None:
        pytest.skip("MNIST is not prepared here (`slamp prepare mnist`)")
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / DIGITS_FILE).write_bytes(_damage(source.read_bytes(), how))
    with pytest.raises(DataError, match=DIGITS_FILE):
        load_mnist_digits("test", path=folder / DIGITS_FILE)


@pytest.mark.parametrize("how", ["cut", "flipped", "empty"])
def test_a_damaged_log_loses_only_its_damaged_rows_when_the_run_resumes(tmp_path, capsys, how):
    from slamp.runlog import read_log

    folder = tmp_path / "run"
    train(tiny(folder, epoch_size=3))
    log = folder / "train.csv"
    lines = log.read_text().splitlines(keepends=True)
    if how == "cut":  # the row of update 1 cut short, as a write interrupted by a crash leaves it
        lines[1] = lines[1][:12] + "\n"
    elif how == "flipped":
        lines[1] = "\x01" + lines[1][1:]  # its step is no longer a number
    log.write_text("" if how == "empty" else "".join(lines))
    capsys.readouterr()
    summary = train(tiny(folder, epoch_size=5), resume=True)
    said = capsys.readouterr().err
    assert summary["updates"] == 5
    if how == "empty":
        assert list(read_log(log)["step"]) == [4, 5]
    else:
        assert f"{log}: dropped 1 damaged row(s) (line(s) 2)" in said
        assert list(read_log(log)["step"]) == [2, 3, 4, 5]


# ---- kill -9, again and again ---------------------------------------------------------------------------
@pytest.mark.slow  # several training processes
def test_repeated_kill_9_then_resume_is_the_same_run_bit_for_bit(tmp_path):
    import random
    import signal

    settings = ["epochs=1", "epoch_size=30", "batch_size=2", "n_past=2", "n_future=2", "log_every=1", "val_every=0",
                "checkpoint_every=1", "workers=0", "scheduled_sampling_k=1.0"]
    base, sets = [sys.executable, "-m", "slamp", "train", "--preset", "tiny"], ["--set", *settings]
    killed, rng, kills = tmp_path / "killed", random.Random(0), 0
    while True:
        resume = ["--resume"] if (killed / "last.pt").is_file() else []
        process = subprocess.Popen(base + ["--out", str(killed)] + resume + sets, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        if kills < 4:
            start = (load_checkpoint(killed / "last.pt")["step"] if resume else 0)
            log = killed / "train.csv"
            while process.poll() is None and not (log.is_file() and len(log.read_text().splitlines()) > start + 2):
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.4))  # anywhere in an update, a log append or a checkpoint write
            process.send_signal(signal.SIGKILL)
            kills += 1
        _, err = process.communicate(timeout=300)
        if process.returncode == 0:
            break
        assert process.returncode == -signal.SIGKILL, err
    straight = subprocess.run(base + ["--out", str(tmp_path / "straight")] + sets, capture_output=True, text=True,
                              cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    from slamp.runlog import read_log

    a, b = read_log(tmp_path / "straight" / "train.csv"), read_log(killed / "train.csv")
    assert kills == 4 and list(b["step"]) == list(range(1, 31)) and (a["total"] == b["total"]).all()
    assert not list(killed.glob(".*.part"))
    final_a, final_b = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(killed / "last.pt")
    assert all(torch.equal(final_a["model"][k], final_b["model"][k]) for k in final_a["model"])


@pytest.mark.slow  # several training processes
@pytest.mark.parametrize("moment", ["while writing", "before the rename"])
def test_a_kill_during_a_checkpoint_write_loses_nothing_and_resumes_bit_for_bit(tmp_path, moment):
    """The third checkpoint's write is killed (SIGKILL) half-way through the file, or once written
    but before it replaces the second; the second stays, and the resumed run is the same run."""
    driver = tmp_path / "killed_at_the_third_checkpoint.py"
    driver.write_text(KILLED_AT_A_CHECKPOINT)
    folder = tmp_path / "killed"
    settings = ["--set", "epochs=1", "epoch_size=6", "batch_size=2", "n_past=2", "n_future=2", "log_every=1",
                "val_every=0", "checkpoint_every=1", "workers=0", "scheduled_sampling_k=1.0"]
    command = ["train", "--preset", "tiny"] + settings
    killed = subprocess.run([sys.executable, str(driver), moment, "3", *command, "--out", str(folder)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr
    assert not (folder / "summary.json").exists()
    assert load_checkpoint(folder / "last.pt")["step"] == 2  # the second checkpoint, whole and verified
    assert len(list(folder.glob(".*.part"))) == 1  # what the killed write left
    resumed = subprocess.run([sys.executable, "-m", "slamp", *command, "--out", str(folder), "--resume"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "removed 1 unfinished file(s)" in resumed.stderr and not list(folder.glob(".*.part"))
    straight = subprocess.run([sys.executable, "-m", "slamp", *command, "--out", str(tmp_path / "straight")],
                              capture_output=True, text=True, cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    from slamp.runlog import read_log

    a, b = read_log(tmp_path / "straight" / "train.csv"), read_log(folder / "train.csv")
    assert list(b["step"]) == list(range(1, 7)) and (a["total"] == b["total"]).all()
    final_a, final_b = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(folder / "last.pt")
    assert all(torch.equal(final_a["model"][k], final_b["model"][k]) for k in final_a["model"])


KILLED_AT_A_CHECKPOINT = """
import io, os, signal, sys

import torch

import slamp.checkpoint
from slamp import cli

moment, nth, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
real_save, real_verify, writes = torch.save, slamp.checkpoint.load_checkpoint, []


def save(obj, file, *args, **kwargs):
    writes.append(file)
    if moment == "while writing" and len(writes) == nth:
        data = io.BytesIO()
        real_save(obj, data)
        with open(file, "wb") as half:  # half the file reaches the disk, then the process dies
            half.write(data.getvalue()[: len(data.getvalue()) // 2])
            half.flush()
            os.fsync(half.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, file, *args, **kwargs)


def verify(path, *args, **kwargs):
    if moment == "before the rename" and len(writes) == nth:
        os.kill(os.getpid(), signal.SIGKILL)  # written whole, not yet verified nor renamed
    return real_verify(path, *args, **kwargs)


torch.save, slamp.checkpoint.load_checkpoint = save, verify
sys.exit(cli.main(argv))
"""


@pytest.mark.slow  # two training processes at once
def test_two_runs_started_together_in_one_folder_one_runs_and_the_other_is_refused(tmp_path):
    folder = tmp_path / "run"
    settings = ["epochs=1", "epoch_size=40", "batch_size=2", "n_past=2", "n_future=2", "log_every=1", "val_every=0",
                "checkpoint_every=20", "workers=0"]
    runs = [subprocess.Popen([sys.executable, "-m", "slamp", "train", "--preset", "tiny", "--out", str(folder),
                              "--set", *settings, f"seed={seed}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, cwd=tmp_path) for seed in (1, 2)]
    errors = [run.communicate(timeout=600)[1] for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 1], errors
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    assert f"is in use by another training run (PID {runs[winner].pid} on " in errors[loser]
    from slamp.runlog import read_log

    seed = json.loads((folder / "config.json").read_text())["seed"]
    assert seed == winner + 1 and load_checkpoint(folder / "last.pt")["config"]["seed"] == seed
    assert list(read_log(folder / "train.csv")["step"]) == list(range(1, 41))  # one run's rows, each once


# ---- a real full disk: a small tmpfs in a user namespace ------------------------------------------------
SMALL_DISK = """
import json, os, shutil, subprocess, sys

disk, size, keep, steps = json.loads(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", disk], check=True)
filler, results = os.path.join(disk, "filler"), []
for step in steps:
    if step[0] == "fill":  # fill the disk, then give back `leave` bytes
        with open(filler, "wb") as file:
            try:
                while True:
                    file.write(bytes(65536))
                    file.flush()
            except OSError:
                pass
        with open(filler, "r+b") as file:
            file.truncate(max(0, os.path.getsize(filler) - step[1]))
    elif step[0] == "free":
        os.remove(filler)
    else:
        run = subprocess.run([sys.executable, "-m", "slamp", *step], capture_output=True, text=True)
        results.append({"code": run.returncode, "err": run.stderr, "out": run.stdout})
if os.path.exists(filler):
    os.remove(filler)
shutil.copytree(disk, os.path.join(keep, "disk"))
with open(os.path.join(keep, "results.json"), "w") as file:
    json.dump(results, file)
"""


def _small_disk_unavailable() -> str | None:
    import shutil

    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "no unshare/mount here"
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt || mount -t tmpfs -o size=64k tmpfs /tmp"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount a tmpfs in a user namespace: {probe.stderr.strip()}"


def on_a_small_disk(tmp_path, size: str, steps: list) -> tuple[Path, list[dict]]:
    """Run ``steps`` (``slamp`` argument lists, ``["fill", bytes_left]``, ``["free"]``) on a tmpfs of
    ``size`` mounted at ``tmp_path/disk`` in a user namespace: a disk that really fills up
    (ENOSPC from the kernel, in every library's write path). Returns the disk's final content
    (copied out) and each command's exit code and messages."""
    why = _small_disk_unavailable()
    if why:
        pytest.skip(why)
    disk, keep = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    keep.mkdir()
    spec = json.dumps([str(disk), size, str(keep), steps])
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-c", SMALL_DISK, spec],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    return keep / "disk", json.loads((keep / "results.json").read_text())


TINY_RUN = ["epochs=1", "batch_size=2", "n_past=2", "n_future=2", "log_every=1", "val_every=0", "workers=0",
            "scheduled_sampling_k=1.0"]


@pytest.mark.slow  # three training processes
def test_a_disk_that_fills_during_training_stops_it_keeps_the_last_checkpoint_and_the_run_resumes(tmp_path):
    """30 MB hold one checkpoint of the tiny model (19 MB) but not a second beside it: the second
    write fails, the message names the folder and its free space, and the first checkpoint, the
    log and the config stay; resumed on a larger disk, the run is the uninterrupted run."""
    sets = ["--set", *TINY_RUN, "epoch_size=4", "checkpoint_every=2"]
    disk, (run,) = on_a_small_disk(tmp_path, "30m", [["train", "--preset", "tiny", "--out", str(tmp_path / "disk" / "run"),
                                                      *sets]])
    assert run["code"] == 1, run["err"]
    assert re.search(r"cannot write in the run folder \S+/disk/run \(last.pt\): No space left on device; \d+ MB free",
                     run["err"]), run["err"]
    assert "Traceback" not in run["err"]
    folder = disk / "run"
    assert load_checkpoint(folder / "last.pt")["step"] == 2 and not list(folder.glob(".*.part"))
    assert json.loads((folder / "config.json").read_text())["epoch_size"] == 4
    base = [sys.executable, "-m", "slamp", "train", "--preset", "tiny"]
    resumed = subprocess.run(base + ["--out", str(folder), "--resume"] + sets, capture_output=True, text=True)
    straight = subprocess.run(base + ["--out", str(tmp_path / "straight")] + sets, capture_output=True, text=True)
    assert resumed.returncode == 0 and straight.returncode == 0, resumed.stderr + straight.stderr
    final_a, final_b = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(folder / "last.pt")
    assert final_b["step"] == 4 and all(torch.equal(final_a["model"][k], final_b["model"][k]) for k in final_a["model"])


def _kitti_source(folder, frames=6):
    """One KITTI raw drive (two colour cameras) of noise frames, which PNG cannot compress."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for camera in ("image_02", "image_03"):
        data = folder / "2011_09_26" / "2011_09_26_drive_0001_sync" / camera / "data"
        data.mkdir(parents=True)
        for t in range(frames):
            Image.fromarray(rng.integers(0, 256, (92, 310, 3), dtype=np.uint8)).save(data / f"{t:010d}.png")
    return folder


def test_a_full_disk_stops_each_command_before_it_starts_and_leaves_nothing(tmp_path):
    source = _kitti_source(tmp_path / "kitti_raw", frames=1)
    disk = tmp_path / "disk"
    commands = [["train", "--preset", "tiny", "--out", str(disk / "run"), "--set", *TINY_RUN, "epoch_size=2"],
                ["evaluate", "--pretrained", "svg", "--sequences", "2", "--num-samples", "2", "--device", "cpu",
                 "--out", str(disk / "eval")],
                ["prepare", "kitti", "--source", str(source), "--out", str(disk / "kitti")]]
    kept, results = on_a_small_disk(tmp_path, "1m", [["fill", 0], *commands])
    expected = [r"run folder \S+/disk/run \(taking its lock\)", r"evaluation folder \S+/disk/eval",
                r"data folder \S+/disk/kitti"]
    for result, folder in zip(results, expected):
        assert result["code"] == 1 and "Traceback" not in result["err"], result["err"]
        assert re.search(f"cannot write in the {folder}: No space left on device; 0 MB free", result["err"]), result["err"]
    left = sorted(str(p.relative_to(kept)) for p in kept.rglob("*"))
    assert left in ([], ["run", "run/.lock"]), left  # no config.json of 0 bytes, no half-written file


@pytest.mark.parametrize("command", ["evaluate", "prepare"])
def test_a_disk_that_fills_during_evaluate_or_prepare_keeps_whole_files_and_the_next_run_finishes(tmp_path, command):
    disk = tmp_path / "disk"
    if command == "evaluate":
        argv = ["evaluate", "--pretrained", "svg", "--sequences", "4", "--num-samples", "2", "--batch-size", "2",
                "--device", "cpu", "--out", str(disk / "eval")]
        leave = 48 * 1024  # the probe and the settings fit, a part of the progress (with its frames) does not
    else:
        argv = ["prepare", "kitti", "--source", str(_kitti_source(tmp_path / "kitti_raw")), "--out", str(disk / "kitti")]
        leave = 300 * 1024  # three of the twelve noise frames (85 KB each)
    kept, (full, again) = on_a_small_disk(tmp_path, "4m", [["fill", leave], argv, ["free"], argv])
    kind = "evaluation folder" if command == "evaluate" else "data folder"
    assert full["code"] == 1 and "Traceback" not in full["err"], full["err"]
    assert re.search(f"cannot write in the {kind} .*No space left on device; 0 MB free", full["err"]), full["err"]
    assert again["code"] == 0, again["err"]
    assert not list(kept.rglob(".*.part"))
    if command == "evaluate":
        summary = json.loads((kept / "eval" / "summary.json").read_text())
        assert summary["settings"]["sequences"] == 4 and not (kept / "eval" / ".progress").exists()
    else:
        from PIL import Image

        frames = sorted(kept.rglob("*.png"))
        assert len(frames) == 12 and all(Image.open(p).size == (310, 92) for p in frames)
        assert "wrote 12 frames" not in again["out"]  # the second run only wrote what the first could not
