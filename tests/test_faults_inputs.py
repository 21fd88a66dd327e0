"""Nothing lost, nothing mixed, nothing written outside (issue 34): saved evaluation parts that
name their inputs, one lock for every command that writes a folder, results on disk before the
progress goes, archives and folder walks that stay inside their roots, data files checked on load,
``--overwrite`` that removes only a run's own files, and bounded sizes and finite settings."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from slamp import cli
from slamp.config import TrainConfig
from slamp.runlock import LOCK_NAME, RunLock
from slamp.train import train


ROOT = Path(__file__).resolve().parents[1]
EVALUATE = ["evaluate", "--sequences", "6", "--num-samples", "3", "--batch-size", "2", "--n-future", "4",
            "--device", "cpu"]


def tiny(out, **overrides) -> TrainConfig:
    settings = dict(epochs=1, epoch_size=2, batch_size=2, n_past=2, n_future=2, log_every=1, val_every=0,
                    checkpoint_every=1, workers=0, out=str(out))
    return TrainConfig.preset("tiny", **{**settings, **overrides})


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two checkpoints of the tiny SLAMP that differ in their weights (seeds 0 and 1)."""
    folder = tmp_path_factory.mktemp("models")
    for seed in (0, 1):
        train(tiny(folder / f"run{seed}", seed=seed))
    return folder / "run0" / "last.pt", folder / "run1" / "last.pt"


def interrupted_at_the_third_part(monkeypatch, argv):
    """Run ``slamp evaluate argv`` in parts of 2 sequences and stop it during its third part."""
    import slamp.evaluate

    real, calls = slamp.evaluate.evaluate, []

    def stopped(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(slamp.evaluate, "evaluate", stopped)
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv)
    monkeypatch.setattr(slamp.evaluate, "evaluate", real)


def results(folder) -> dict:
    return json.loads((Path(folder) / "summary.json").read_text())["results"]


# ---- 1. a resumed evaluation never mixes two models or two test sets -----------------------------------
def test_a_checkpoint_replaced_at_the_same_path_is_detected_on_resume(two_models, tmp_path, monkeypatch, capsys):
    first, second = two_models
    monkeypatch.setattr(cli, "EVALUATION_PART", 2)
    assert cli.main(EVALUATE + ["--checkpoint", str(second), "--out", str(tmp_path / "straight")]) == 0
    path = tmp_path / "model.pt"
    path.write_bytes(first.read_bytes())
    argv = EVALUATE + ["--checkpoint", str(path), "--out", str(tmp_path / "resumed")]
    interrupted_at_the_third_part(monkeypatch, argv)
    path.write_bytes(second.read_bytes())  # another model at the same path
    capsys.readouterr()
    assert cli.main(argv) == 0
    said = capsys.readouterr().err
    assert "holds an evaluation of other inputs (model_sha256" in said and "continuing" not in said
    assert results(tmp_path / "resumed") == results(tmp_path / "straight")


def test_a_test_set_changed_since_the_saved_parts_is_detected_on_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "EVALUATION_PART", 2)
    real = cli._test_videos
    changed = []

    def test_videos(*args):
        videos = real(*args)
        if not changed:
            return videos
        return [video.flip(-1) if index == 3 else video for index, video in enumerate(videos)]  # one clip remade

    monkeypatch.setattr(cli, "_test_videos", test_videos)
    argv = EVALUATE + ["--pretrained", "svg", "--out", str(tmp_path / "resumed")]
    interrupted_at_the_third_part(monkeypatch, argv)
    changed.append(True)
    assert cli.main(EVALUATE + ["--pretrained", "svg", "--out", str(tmp_path / "straight")]) == 0
    capsys.readouterr()
    assert cli.main(argv) == 0
    said = capsys.readouterr().err
    assert "part_00001.pt was computed from other inputs (sequences differ" in said
    assert "part_00000.pt was computed" not in said and "continuing a saved evaluation" in said
    assert results(tmp_path / "resumed") == results(tmp_path / "straight")


# ---- 2. one evaluation per folder ------------------------------------------------------------------------
HOLD = """
import sys, time
from slamp.runlock import RunLock
lock = RunLock(sys.argv[1], command=sys.argv[2]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("command", ["evaluate", "prepare"])
def test_a_second_evaluation_or_preparation_into_a_busy_folder_is_refused(tmp_path, capsys, command):
    folder = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), command], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = (EVALUATE + ["--pretrained", "svg", "--out", str(folder)] if command == "evaluate" else
                ["prepare", "kitti", "--source", str(tmp_path), "--out", str(folder)])
        assert cli.main(argv) == 1
        what = "an evaluation" if command == "evaluate" else "a preparation of a dataset"
        assert f"is in use by another {what.split(' ', 1)[1]} (PID {holder.pid} on " in capsys.readouterr().err
        assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]
    finally:
        holder.kill()
        holder.wait()


def test_parts_saved_by_another_evaluation_are_not_absorbed(tmp_path, monkeypatch, capsys):
    """Two evaluations that shared a folder before it was locked: the second's settings.json
    beside the first's parts. The parts name their own settings, and are computed again."""
    monkeypatch.setattr(cli, "EVALUATION_PART", 2)
    out = tmp_path / "shared"
    interrupted_at_the_third_part(monkeypatch, EVALUATE + ["--pretrained", "svg", "--seed", "1", "--out", str(out)])
    settings = json.loads((out / ".progress" / "settings.json").read_text())
    (out / ".progress" / "settings.json").write_text(json.dumps({**settings, "seed": 0}))  # the other run's
    assert cli.main(EVALUATE + ["--pretrained", "svg", "--out", str(tmp_path / "straight")]) == 0
    capsys.readouterr()
    assert cli.main(EVALUATE + ["--pretrained", "svg", "--out", str(out)]) == 0
    said = capsys.readouterr().err
    assert "part_00000.pt was computed from other inputs (settings differ" in said
    assert "continuing a saved evaluation" not in said
    assert results(out) == results(tmp_path / "straight")


# ---- 3. the results are on disk before the progress goes -------------------------------------------------
def test_a_full_disk_while_writing_the_results_keeps_the_progress_and_the_rerun_finishes(tmp_path, monkeypatch,
                                                                                          capsys):
    import errno

    import slamp.evaluate

    monkeypatch.setattr(cli, "EVALUATION_PART", 2)
    argv = EVALUATE + ["--pretrained", "svg", "--out", str(tmp_path / "eval")]
    real_save = slamp.evaluate.save_tensors

    def full_disk(obj, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(slamp.evaluate, "save_tensors", full_disk)  # best_samples.pt: the largest file
    assert cli.main(argv) == 1
    said = capsys.readouterr().err
    assert "No space left on device" in said and "the saved progress in .progress stays" in said
    assert "Nothing half-written" not in said
    assert len(list((tmp_path / "eval" / ".progress").glob("part_*.pt"))) == 3
    assert not (tmp_path / "eval" / "summary.json").exists()
    monkeypatch.setattr(slamp.evaluate, "save_tensors", real_save)
    monkeypatch.setattr(slamp.evaluate, "evaluate", lambda *a, **k: pytest.fail("a saved part computed again"))
    assert cli.main(argv) == 0
    assert "continuing a saved evaluation" in capsys.readouterr().err
    assert not (tmp_path / "eval" / ".progress").exists() and (tmp_path / "eval" / "best_samples.pt").is_file()


KILLED_WHILE_SAVING = """
import os, signal, sys

import slamp.evaluate
from slamp import cli

cli.EVALUATION_PART = 2


def killed(self, folder):
    os.kill(os.getpid(), signal.SIGKILL)  # the moment between the last part and the results


slamp.evaluate.Evaluation.save = killed
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_kill_while_the_results_are_written_loses_no_part(tmp_path, monkeypatch, capsys):
    driver = tmp_path / "killed_while_saving.py"
    driver.write_text(KILLED_WHILE_SAVING)
    argv = EVALUATE + ["--pretrained", "svg", "--out", str(tmp_path / "eval")]
    killed = subprocess.run([sys.executable, str(driver), *argv], capture_output=True, text=True, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(list((tmp_path / "eval" / ".progress").glob("part_*.pt"))) == 3
    import slamp.evaluate

    monkeypatch.setattr(cli, "EVALUATION_PART", 2)
    monkeypatch.setattr(slamp.evaluate, "evaluate", lambda *a, **k: pytest.fail("a saved part computed again"))
    capsys.readouterr()
    assert cli.main(argv) == 0 and "continuing a saved evaluation" in capsys.readouterr().err
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["settings"]["sequences"] == 6


# ---- 5. a planted .lock -----------------------------------------------------------------------------------
@pytest.mark.parametrize("plant", ["symlink", "hard link", "folder"])
def test_a_lock_that_is_not_a_regular_file_is_refused_and_its_target_untouched(tmp_path, capsys, plant):
    notes = tmp_path / "notes"
    notes.write_text("a week of notes\n")
    out = tmp_path / "run"
    out.mkdir()
    if plant == "symlink":
        (out / LOCK_NAME).symlink_to(notes)
    elif plant == "hard link":
        os.link(notes, out / LOCK_NAME)
    else:
        (out / LOCK_NAME).mkdir()
    code = cli.main(["train", "--preset", "tiny", "--out", str(out), "--set", "epochs=1", "epoch_size=1"])
    said = capsys.readouterr().err
    assert code == 1 and f"refusing to use {out / LOCK_NAME}" in said and "Traceback" not in said
    assert notes.read_text() == "a week of notes\n" and not (out / "config.json").exists()
    with pytest.raises(OSError, match="refusing to use"):
        RunLock(out).acquire()
