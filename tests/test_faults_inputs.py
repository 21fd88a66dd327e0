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
import torch

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


# ---- 4. nothing written outside --out, nothing read from outside --source -----------------------------
def _png(seed: int = 0, size=(20, 30)) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    data = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(data, "PNG")
    return data.getvalue()


SLIPS = {"kitti": "../../X/2011_09_26_drive_0001_sync/image_02/data/0.png",
         "cityscapes": "../../X/leftImg8bit_sequence/train/aachen/aachen_000000_000000_leftImg8bit.png"}


@pytest.mark.parametrize("dataset", ["kitti", "cityscapes"])
@pytest.mark.parametrize("name", ["dotdot", "absolute"])
def test_an_archive_member_that_leads_outside_out_is_refused(tmp_path, capsys, dataset, name):
    import zipfile

    member = SLIPS[dataset] if name == "dotdot" else "/" + SLIPS[dataset].replace("../../", str(tmp_path)[1:] + "/")
    archive = tmp_path / "hostile.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(zipfile.ZipInfo(member), _png())  # ZipInfo keeps the name as given
    out = tmp_path / "a" / "b" / "out"
    code = cli.main(["prepare", dataset, "--source", str(archive), "--out", str(out)])
    said = capsys.readouterr().err
    assert code == 1 and "refusing" in said and "stays inside" in said and "Traceback" not in said
    assert not (tmp_path / "a" / "X").exists() and not (tmp_path / "X").exists()
    assert not [p for p in tmp_path.rglob("*.png")]


def test_a_symlink_planted_in_out_is_not_written_through(tmp_path, capsys):
    import zipfile

    archive = tmp_path / "drive.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png", _png())
    elsewhere, out = tmp_path / "elsewhere", tmp_path / "out"
    elsewhere.mkdir()
    out.mkdir()
    (out / "2011_09_26").symlink_to(elsewhere)  # anyone who can write in a shared data folder
    assert cli.main(["prepare", "kitti", "--source", str(archive), "--out", str(out)]) == 1
    assert "a symlink on the way leads outside" in capsys.readouterr().err and not list(elsewhere.rglob("*"))


def test_a_symlinked_drive_folder_in_source_is_named_not_skipped(tmp_path, capsys):
    from test_faults import _kitti_source

    real = _kitti_source(tmp_path / "real", frames=1)
    source = tmp_path / "source" / "2011_09_26"
    source.mkdir(parents=True)
    (source / "2011_09_26_drive_0001_sync").symlink_to(real / "2011_09_26" / "2011_09_26_drive_0001_sync")
    code = cli.main(["prepare", "kitti", "--source", str(tmp_path / "source"), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1 and "wrote 0 frames" not in captured.out
    assert "2011_09_26_drive_0001_sync is a symlink to" in captured.err and "outside" in captured.err
    import shutil

    inner = tmp_path / "inner" / "2011_09_26"  # a link that stays inside its source is followed
    inner.mkdir(parents=True)
    shutil.move(str(real / "2011_09_26" / "2011_09_26_drive_0001_sync"), str(tmp_path / "inner" / "store"))
    (inner / "2011_09_26_drive_0001_sync").symlink_to(tmp_path / "inner" / "store")
    assert cli.main(["prepare", "kitti", "--source", str(tmp_path / "inner"), "--out", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").rglob("*.png"))) == 2


def test_a_source_with_no_matching_frames_is_an_error_not_zero_frames(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["prepare", "cityscapes", "--source", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1
    assert "no frames in" in capsys.readouterr().err


def test_a_tfrecord_length_field_is_bounded_before_it_is_read(tmp_path, capsys):
    import struct

    from slamp.data.bair import masked_crc32c

    folder = tmp_path / "softmotion30_44k" / "train"
    folder.mkdir(parents=True)
    length = struct.pack("<Q", 1 << 40)  # 1 TB, with a valid checksum of the length
    (folder / "traj_0_to_255.tfrecords").write_bytes(length + struct.pack("<I", masked_crc32c(length)) + b"x" * 64)
    code = cli.main(["prepare", "bair", "--source", str(tmp_path / "softmotion30_44k"), "--out", str(tmp_path / "o")])
    said = capsys.readouterr().err
    assert code == 1 and "a record of 1,099,511,627,776 bytes" in said and "Traceback" not in said


def test_a_large_kth_zip_member_is_streamed_not_read_whole(tmp_path):
    import tracemalloc
    import zipfile

    from slamp.data.kth import prepare_kth

    with zipfile.ZipFile(tmp_path / "boxing.zip", "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("person01_boxing_d1_uncomp.avi", bytes(64 << 20))  # 64 MB that compress to 64 KB
    sizes = []

    def decode(path, size):
        sizes.append(Path(path).stat().st_size)
        import numpy as np

        return np.zeros((2, size, size), np.uint8)

    tracemalloc.start()
    prepare_kth(tmp_path, tmp_path / "out", decode=decode)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sizes == [64 << 20] and peak < 16 << 20


def test_a_kth_zip_member_beyond_any_video_is_refused(tmp_path, monkeypatch):
    import zipfile

    from slamp.data import kth
    from slamp.data.files import DataError

    with zipfile.ZipFile(tmp_path / "boxing.zip", "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("person01_boxing_d1_uncomp.avi", bytes(4096))
    monkeypatch.setattr(kth, "MAX_VIDEO_BYTES", 1024)
    with pytest.raises(DataError, match="member person01_boxing_d1_uncomp.avi is 4,096 bytes"):
        kth.prepare_kth(tmp_path, tmp_path / "out", decode=lambda path, size: pytest.fail("decoded"))


def test_what_a_killed_prepare_left_is_removed_on_the_next_start(tmp_path, capsys):
    from test_faults import _kitti_source

    source = _kitti_source(tmp_path / "kitti_raw", frames=1)
    out = tmp_path / "out"
    data = out / "2011_09_26" / "2011_09_26_drive_0001_sync" / "image_02" / "data"
    data.mkdir(parents=True)
    (data / ".0000000000.png.k3j2.part").write_bytes(b"half a frame")
    (out / "processed_data" / "train" / "traj" / "001.part").mkdir(parents=True)
    assert cli.main(["prepare", "kitti", "--source", str(source), "--out", str(out)]) == 0
    assert "removed 2 unfinished file(s)" in capsys.readouterr().err
    assert not [p for p in out.rglob("*.part")]


# ---- 6. a test set file is checked on load ------------------------------------------------------------------
@pytest.fixture
def small_set(tmp_path):
    from slamp.data import MovingMNISTTestSet
    from slamp.data.mnist import load_digits

    test_set = MovingMNISTTestSet.generate(load_digits("test", "sklearn"), num_sequences=8, n_frames=6)
    return test_set, test_set.save(tmp_path / "test_set.npz")


def _rewrite(path, **changes):
    import numpy as np

    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    config = json.loads(str(arrays["config"]))
    for key in changes.pop("drop", ()):
        config.pop(key)
    arrays.update(changes, config=np.array(json.dumps(config)))
    os.unlink(path)
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize("how", ["all zero", "cut to 3", "32x32", "float"])
def test_a_changed_test_set_file_is_refused_and_names_the_file(small_set, how):
    import numpy as np

    from slamp.data import MovingMNISTTestSet
    from slamp.data.files import DataError

    test_set, path = small_set
    frames = test_set.sequences
    changed = {"all zero": np.zeros_like(frames), "cut to 3": frames[:3], "32x32": frames[:, :, ::2, ::2],
               "float": frames.astype(np.float32)}[how]
    _rewrite(path, sequences=changed)
    with pytest.raises(DataError, match=f"{path}: .*(SHA-256|expected frames uint8).*delete it and make it again"):
        MovingMNISTTestSet.load(path)


def test_srvps_set_is_checked_against_its_published_hash_even_without_a_recorded_one(small_set, monkeypatch):
    import numpy as np

    from slamp.data import MovingMNISTTestSet, moving_mnist
    from slamp.data.files import DataError

    test_set, path = small_set
    standard = {key: test_set.config[key] for key in moving_mnist.SRVP_TEST_SET if key != "is_mnist"}
    monkeypatch.setattr(moving_mnist, "SRVP_TEST_SET", {**standard, "is_mnist": False})  # this set stands in for it
    monkeypatch.setattr(moving_mnist, "SRVP_TEST_SET_SHA256", test_set.sha256())
    _rewrite(path, drop=["sequences_sha256"])  # a file made before the hash was recorded
    assert MovingMNISTTestSet.load(path).sha256() == test_set.sha256()
    _rewrite(path, sequences=np.zeros_like(test_set.sequences))
    with pytest.raises(DataError, match="the file was changed or damaged"):
        MovingMNISTTestSet.load(path)


def test_more_sequences_than_the_test_set_holds_is_refused(small_set, monkeypatch, tmp_path, capsys):
    from slamp.data import MovingMNISTTestSet

    test_set, _ = small_set
    monkeypatch.setattr(MovingMNISTTestSet, "cached", classmethod(lambda cls, *a, **k: test_set))
    code = cli.main(["evaluate", "--reference", "black", "--sequences", "9", "--n-past", "2", "--n-future", "4",
                     "--device", "cpu", "--out", str(tmp_path / "eval")])
    assert code == 1 and "--sequences 9 asks for more test sequences than the mnist test set holds (8)" in \
        capsys.readouterr().err


def test_a_test_set_that_cannot_be_kept_is_used_and_said_so(tmp_path):
    from slamp.data import MovingMNISTTestSet

    blocker = tmp_path / "a-file"
    blocker.write_text("a folder cannot be made under a file, even by root")
    with pytest.warns(UserWarning, match="cannot keep the test set in .*a-file/set.npz"):
        test_set = MovingMNISTTestSet.cached(blocker / "set.npz", "sklearn", num_sequences=4, n_frames=6)
    assert len(test_set) == 4


# ---- 7. --overwrite removes only what a slamp run wrote ------------------------------------------------------
def _user_files(folder: Path) -> dict:
    (folder / "samples").mkdir(parents=True)
    (folder / "samples" / "holiday.jpg").write_bytes(b"a photo")
    (folder / "tensorboard").mkdir()
    files = {"train.csv": "my own table\n", "summary.json": "{\"mine\": true}\n", "samples/holiday.jpg": "a photo"}
    for name, text in files.items():
        (folder / name).write_text(text)
    return files


@pytest.mark.parametrize("overwrite", [["--overwrite"], []])
def test_a_folder_that_never_held_a_run_keeps_its_files(tmp_path, capsys, overwrite):
    folder = tmp_path / "mine"
    files = _user_files(folder)
    code = cli.main(["train", "--preset", "tiny", "--out", str(folder), *overwrite, "--set", "epochs=1",
                     "epoch_size=1", "batch_size=2", "n_past=2", "n_future=2", "val_every=0", "workers=0"])
    said = capsys.readouterr().err
    assert code == 1 and "which no slamp run wrote" in said and "Traceback" not in said
    assert {name: (folder / name).read_text() for name in files} == files
    assert (folder / "tensorboard").is_dir() and not (folder / "last.pt").exists()


def test_overwrite_still_starts_a_slamp_run_afresh_including_one_from_before_the_marker(tmp_path):
    from slamp.runlock import RUN_MARKER

    folder = tmp_path / "run"
    train(tiny(folder))
    assert (folder / RUN_MARKER).is_file()
    (folder / RUN_MARKER).unlink()  # a run written before the marker existed
    (folder / "samples").mkdir(exist_ok=True)
    (folder / "samples" / "old.png").write_bytes(b"old")
    summary = train(tiny(folder, epoch_size=1), overwrite=True)
    assert summary["updates"] == 1 and not (folder / "samples" / "old.png").exists()
    assert (folder / RUN_MARKER).is_file()


# ---- 8. clear errors, nothing silent ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(two_models):
    return two_models[0]


def _rewritten(checkpoint, tmp_path, change) -> Path:
    from slamp.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    change(state)
    path = tmp_path / "changed.pt"
    torch.save({k: v for k, v in state.items() if k != "checksum"}, path)  # as another program would write it
    return path


@pytest.mark.parametrize("field", ["config", "model_config"])
def test_a_checkpoint_with_foreign_fields_is_a_checkpoint_error(checkpoint, tmp_path, capsys, field):
    from slamp.checkpoint import CheckpointError, load_model

    path = _rewritten(checkpoint, tmp_path, lambda state: state[field].update(colour="blue"))
    with pytest.raises(CheckpointError, match=f"{path.name}: its .*(colour)"):
        load_model(path)
    assert cli.main(EVALUATE + ["--checkpoint", str(path), "--out", str(tmp_path / "eval")]) == 1
    assert "CheckpointError" in capsys.readouterr().err


def test_weights_of_another_dtype_are_refused_not_cast(checkpoint, tmp_path):
    from slamp.checkpoint import CheckpointError, load_model

    def to_int64(state):
        name = next(k for k, v in state["model"].items() if v.is_floating_point())
        state["model"][name] = state["model"][name].long()

    with pytest.raises(CheckpointError, match=r"weight\(s\) of the wrong type or shape, e.g. .*torch.int64"):
        load_model(_rewritten(checkpoint, tmp_path, to_int64))


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    import shutil

    import slamp.pretrained as pretrained

    folder = tmp_path / "pretrained"
    shutil.copytree(pretrained.FOLDER, folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    monkeypatch.setattr(pretrained, "FOLDER", folder)
    return pretrained, folder


def test_a_truncated_sha256sums_says_so_for_every_model(shipped):
    pretrained, folder = shipped
    sums = folder / pretrained.SUMS
    sums.write_text(sums.read_text()[:100])  # cut in the second line
    with pytest.raises(pretrained.PretrainedError, match="SHA256SUMS is damaged .*git checkout"):
        pretrained.load("svg")
    assert "svg" in pretrained.available()


def test_a_run_written_into_the_package_folder_is_not_a_shipped_model(shipped):
    pretrained, folder = shipped
    (folder / "last.pt").write_bytes((folder / "svg.pt").read_bytes())  # slamp train --out slamp/pretrained
    assert "last" not in pretrained.available() and "svg" in pretrained.available()


def test_a_damaged_model_given_by_absolute_path_is_a_pretrained_error(tmp_path, capsys):
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04 not a model")
    assert cli.main(EVALUATE + ["--pretrained", str(path), "--out", str(tmp_path / "eval")]) == 1
    said = capsys.readouterr().err
    assert "PretrainedError" in said and str(path) in said and "relative_to" not in said


@pytest.mark.parametrize("change", ["20x20", "float", "empty"])
def test_digits_of_the_wrong_shape_or_type_are_refused_with_the_file(tmp_path, change):
    import numpy as np

    from slamp.data.files import DataError
    from slamp.data.mnist import DIGITS_FILE, load_mnist_digits

    rng = np.random.default_rng(0)
    images = {"20x20": rng.integers(0, 256, (10, 20, 20), dtype=np.uint8),
              "float": rng.random((10, 28, 28)).astype(np.float32),
              "empty": np.zeros((0, 28, 28), np.uint8)}[change]
    labels = np.zeros(len(images), np.int64)
    path = tmp_path / DIGITS_FILE
    np.savez(path, train_images=images, train_labels=labels, test_images=images, test_labels=labels)
    with pytest.raises(DataError, match=f"{DIGITS_FILE}: the test digits should be uint8 images .*slamp prepare mnist"):
        load_mnist_digits("test", path=path)


@pytest.mark.parametrize("setting, message", [
    ("beta=inf", "beta must be a finite number, found inf"),
    ("adam_eps=inf", "adam_eps must be a finite number"),
    ("scheduled_sampling_k=inf", "scheduled_sampling_k must be a finite number"),
    ("lr=nan", "lr must be a finite number, found nan"),
    ("betas=0.9,nan", "betas must be a finite number"),
    ("batch_size=1000000000", "batch_size must be at most 65,536, found 1,000,000,000"),
    ("seed=99999999999", "seed must be at most 4,294,967,295"),
])
def test_settings_that_are_not_finite_or_absurdly_large_exit_2(tmp_path, capsys, setting, message):
    argv = ["train", "--preset", "tiny", "--out", str(tmp_path / "run"), "--show-config", "--set", setting]
    assert cli.main(argv) == 2  # refused when the config is read, before anything runs
    said = capsys.readouterr().err
    assert message in said and "Traceback" not in said and not (tmp_path / "run").exists()


def test_teacher_forcing_must_be_a_probability_and_numpy_counts_are_whole_numbers():
    import numpy as np

    from slamp.models import SLAMP

    model, x = SLAMP.from_preset("tiny").eval(), torch.rand(2, 4, 1, 64, 64)
    with pytest.raises(ValueError, match=r"teacher_forcing must be a probability in \[0, 1\], found nan"):
        model(x, n_past=2, teacher_forcing=float("nan"))
    model(x, n_past=np.int64(2))
    assert model.generate(x[:, :2], np.int64(2), num_samples=np.int64(3)).frames.shape[:3] == (2, 3, 2)
