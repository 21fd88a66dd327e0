"""The `slamp` command line: the README's main job (`slamp demo`), `slamp train`, `slamp evaluate`."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from slamp.checkpoint import load_checkpoint
from slamp.cli import main, run_demo
from slamp.data import MovingMNISTTestSet
from slamp.demo import demo_model, figure_rows, first_test_sequences, prediction_figure, sample_sequence
from slamp.models import SLAMP, SVG


SMALL_RUN = ["device=cpu", "workers=0", "batch_size=4", "epochs=1", "epoch_size=2", "n_past=2", "n_future=2",
             "val_every=2", "val_sequences=2", "val_samples=2", "val_n_future=3", "log_every=1"]


@pytest.fixture(scope="module")
def tiny_slamp():
    """An untrained tiny SLAMP: the demo's machinery does not need a good model."""
    torch.manual_seed(0)
    return SLAMP.from_preset("tiny").eval()


def test_demo_writes_figure_gif_and_metrics_beside_the_references(tmp_path, tiny_slamp):
    metrics = run_demo(tmp_path, seed=0, sequences=3, num_samples=5, model=tiny_slamp,
                       about={"name": "tiny SLAMP (untrained)", "source": "test"}, progress=False)
    for name in ("prediction.png", "prediction.gif", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["protocol"]["n_past"] == 5 and metrics["protocol"]["n_future"] == 20  # the paper's MNIST protocol
    assert metrics["protocol"]["sequences"] == 3 and metrics["protocol"]["num_samples"] == 5
    rows = {row["name"]: row for row in metrics["results"]}
    assert list(rows) == ["SLAMP", "black", "last_frame", "mean_frame"]
    assert {row["sequences"] for row in rows.values()} == {3}
    assert rows["SLAMP"]["num_samples"] == 5 and rows["black"]["num_samples"] == 1
    for row in rows.values():
        assert 0 < row["psnr"]["mean"] < 60 and -1 <= row["ssim"]["mean"] <= 1 and row["psnr"]["ci95"] >= 0
    shown = metrics["shown"]
    assert shown["best_sample"] not in shown["random_samples"] and len(shown["random_samples"]) == 3
    assert shown["best_psnr"] >= max(shown["random_psnr"]) and shown["diversity"] > 0
    with Image.open(tmp_path / "prediction.gif") as gif:
        assert gif.n_frames == 25  # 5 given + 20 predicted


def test_demo_is_reproducible_from_its_seed(tmp_path, tiny_slamp):
    first, second = (run_demo(tmp_path / name, seed=3, sequences=2, num_samples=3, model=tiny_slamp, progress=False)
                     for name in "ab")
    assert first["results"] == second["results"] and first["shown"] == second["shown"]


def test_demo_figure_has_a_labelled_row_per_stream(tiny_slamp):
    truth = first_test_sequences(1)[0]
    shown = sample_sequence(tiny_slamp, truth, num_samples=6, seed=1)
    figure = prediction_figure(truth, shown, title="the title")
    labels = [text.get_text() for ax in figure.axes if ax.get_gid() == "label" for text in ax.texts]
    assert len(labels) == 1 + 1 + 3 + 4  # truth, best, 3 random samples, x^p, x^f, mask, flow
    assert labels[0] == "truth" and labels[1].startswith("best of 6 by PSNR")
    assert [label.split("\n")[0] for label in labels[2:5]] == [f"random sample {k}" for k in (1, 2, 3)]
    assert "1 = take $x^p$, 0 = take $x^f$" in labels[7] and labels[8].startswith("flow")
    headers = [text.get_text() for ax in figure.axes for text in ax.texts if text.get_text().startswith("t=")]
    assert headers == [f"t={t}" for t in range(1, 26)]
    assert figure.get_suptitle() == "the title"
    # Fewer samples, fewer random rows; without a motion head (SVG), no parts rows.
    few = sample_sequence(SVG.from_preset("tiny").eval(), truth, num_samples=2)
    assert [label for label, _ in figure_rows(truth, few)][0] == "truth" and len(figure_rows(truth, few)) == 3


def test_demo_takes_the_first_sequences_of_the_default_test_set():
    first, more = first_test_sequences(2), MovingMNISTTestSet.generate(num_sequences=3)
    assert np.array_equal(first.sequences, more.sequences[:2])


def test_demo_command_with_a_short_training_run(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--train", "2", "--sequences", "2", "--num-samples", "2", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["updates"] == 2 and load_checkpoint(out / "run" / "last.pt")["step"] == 2
    assert (out / "loss.png").is_file() and (out / "prediction.png").is_file()
    printed = capsys.readouterr().out
    assert "K = 2" in printed and "N = 2" in printed
    assert all(name in printed for name in ("SLAMP", "black", "last frame", "mean frame", "diversity"))


def test_demo_threads_leave_busy_cores_alone(monkeypatch):
    from slamp.cli import _demo_threads

    cores = torch.get_num_threads()
    assert _demo_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", str(cores))
    assert _demo_threads(None) == cores  # the user chose
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr("os.getloadavg", lambda: (cores + 5.0, 0.0, 0.0))
    assert _demo_threads(None) == 1  # every core busy: one thread, not threads waiting for each other
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))
    assert _demo_threads(None) == cores


def test_demo_loads_the_shipped_slamp():
    from slamp.pretrained import PretrainedError

    try:
        model, about = demo_model()
    except PretrainedError as error:  # the shipped weights are being retrained for the current classes
        pytest.skip(f"shipped SLAMP does not load: {error}")
    assert type(model).__name__ == "SLAMP" and about["source"] == "pretrained:slamp"


def test_train_and_evaluate_commands(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--set", *SMALL_RUN, "--out", str(run)]) == 0
    assert load_checkpoint(run / "last.pt")["step"] == 2 and list((run / "samples").glob("*.png"))
    assert json.loads(capsys.readouterr().out)["updates"] == 2  # stdout: only the summary
    # Resume to a longer schedule needs the same config; --stop-after ends early with a checkpoint.
    longer = [item for item in SMALL_RUN if not item.startswith("epoch_size=")] + ["epoch_size=4"]  # each field once
    assert main(["train", "--set", *longer, "--out", str(run), "--resume", "--stop-after", "3"]) == 0
    assert load_checkpoint(run / "last.pt")["step"] == 3

    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--sequences", "3", "--num-samples", "2",
                 "--n-future", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["n_past"] == 5 and summary["settings"]["n_future"] == 3  # the MNIST protocol's n_past
    assert summary["settings"]["sequences"] == 3
    assert set(summary["results"]) == {"x_hat", "x_p", "x_f", "average"}
    assert len(summary["results"]["x_hat"]["psnr"]["per_frame"]) == 3
    assert "PSNR" in capsys.readouterr().out.upper()


def test_show_config_prints_the_preset_with_overrides(capsys):
    assert main(["train", "--preset", "kth", "--set", "lr=5e-5", "--show-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["lr"] == 5e-5 and config["scheduled_sampling_k"] == 25 and config["batch_size"] == 20


@pytest.mark.parametrize("argv, code, message", [
    (["train", "--set", "bach_size=3"], 2, "did you mean 'batch_size'"),
    (["train", "--preset", "mnsit"], 2, "unknown training preset 'mnsit'"),
    (["evaluate", "--checkpoint", "nowhere/last.pt"], 1, "no checkpoint at nowhere/last.pt"),
    (["evaluate", "--pretrained", "no_such_model"], 1, "no shipped model named 'no_such_model'"),
])
def test_bad_input_gets_a_message_and_an_exit_code(argv, code, message, capsys):
    assert main(argv) == code
    assert message in capsys.readouterr().err


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "slamp", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and all(word in result.stdout for word in ("demo", "train", "evaluate"))
    bad = subprocess.run([sys.executable, "-m", "slamp", "fly"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_evaluate_asks_for_fvd_weights_when_they_are_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLAMP_I3D", str(tmp_path / "i3d.pt"))
    run = tmp_path / "run"
    shorter = [item for item in SMALL_RUN if not item.startswith(("epoch_size=", "val_every="))]
    assert main(["train", "--set", *shorter, "epoch_size=1", "val_every=0", "--out", str(run)]) == 0
    code = main(["evaluate", "--checkpoint", str(run / "last.pt"), "--sequences", "2", "--num-samples", "1",
                 "--n-future", "9", "--metrics", "psnr", "fvd", "--out", str(tmp_path / "eval")])
    assert code == 1 and "FVDUnavailable" in capsys.readouterr().err


def test_evaluate_scores_the_references_with_the_models_protocol(tmp_path, monkeypatch, capsys):
    from slamp.data import MovingMNISTTestSet
    from slamp.evaluate import REFERENCES

    # The protocol's test set, its first sequences only (the whole set takes a minute to make).
    small = MovingMNISTTestSet.generate(num_sequences=4)
    monkeypatch.setattr(MovingMNISTTestSet, "cached", classmethod(lambda cls, *a, **k: small))
    out = tmp_path / "floors"
    assert main(["evaluate", "--reference", "all", "--sequences", "3", "--n-future", "4", "--num-samples", "7",
                 "--out", str(out)]) == 0
    for name in REFERENCES:
        summary = json.loads((out / name / "summary.json").read_text())
        settings = summary["settings"]
        assert settings["source"] == f"reference:{name}" and settings["num_samples"] == 1  # deterministic
        assert (settings["dataset"], settings["sequences"], settings["n_past"], settings["n_future"]) == ("mnist", 3, 5, 4)
        assert set(summary["results"]) == {"x_hat"} and set(summary["results"]["x_hat"]) == {"psnr", "ssim", "diversity"}
        assert summary["results"]["x_hat"]["diversity"]["mean"] == 0  # one prediction: nothing to differ
        assert len(summary["results"]["x_hat"]["psnr"]["per_frame"]) == 4
        assert (out / name / "per_frame.csv").is_file()
    assert "reference black on mnist: 3 sequences" in capsys.readouterr().out
    assert main(["evaluate", "--reference", "black", "--sequences", "3", "--n-future", "4", "--out", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one" / "summary.json").read_text())["results"]
    assert one == json.loads((out / "black" / "summary.json").read_text())["results"]
    assert main(["evaluate", "--reference", "black", "--heads", "motion", "--out", str(tmp_path / "bad")]) == 1
    assert "head 'x_hat'" in capsys.readouterr().err


def test_the_reference_choices_are_the_references():
    from slamp.cli import parser
    from slamp.evaluate import REFERENCES

    evaluate_parser = parser()._subparsers._group_actions[0].choices["evaluate"]
    choices = next(a.choices for a in evaluate_parser._actions if a.dest == "reference")
    assert tuple(choices) == (*REFERENCES, "all")


def test_repeated_set_flags_add_up(capsys):
    # tools/pretrained.py passes the model and the starting weights in separate --set flags; the
    # second must not silently replace the first.
    assert main(["train", "--preset", "cpu", "--set", "model=svg", "lr=5e-4", "--set", "init_from=pretrained:svg",
                 "--show-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["model"], config["lr"], config["init_from"]) == ("svg", 5e-4, "pretrained:svg")


def test_prepare_mnist_writes_into_the_data_folder_where_loaders_find_it(isolated_data, capsys):
    from test_data_mnist import tiny_pickle  # a file in the classic pickle's format (the real one is 17 MB)

    from slamp.data.mnist import load_digits, locate_mnist

    (isolated_data / "mnist").mkdir(parents=True)
    originals = tiny_pickle(isolated_data / "mnist" / "mnist.pkl.gz")  # present: nothing is fetched
    assert main(["prepare", "mnist"]) == 0
    assert str(isolated_data / "mnist" / "mnist_digits.npz") in capsys.readouterr().out
    assert locate_mnist() == ("prepared", isolated_data / "mnist" / "mnist_digits.npz")
    assert np.array_equal(load_digits("test").images, originals[2][0])
    elsewhere = isolated_data.parent / "elsewhere"
    (elsewhere).mkdir()
    tiny_pickle(elsewhere / "mnist.pkl.gz")
    assert main(["prepare", "mnist", "--dest", str(elsewhere)]) == 0  # the old script's argument still works
    assert (elsewhere / "mnist_digits.npz").is_file()


def test_prepare_real_datasets_say_what_is_missing(isolated_data, tmp_path, capsys):
    for dataset in ("kth", "bair", "kitti", "cityscapes"):
        assert main(["prepare", dataset, "--source", str(tmp_path / "nothing")]) == 1, dataset
        assert "DataError" in capsys.readouterr().err, dataset
    with pytest.raises(SystemExit):  # --source is required
        main(["prepare", "kth"])


def test_without_mnist_train_and_evaluate_stop_and_say_how_to_get_it(isolated_data, tmp_path, capsys):
    for argv in (["train", "--preset", "tiny", "--out", str(tmp_path / "run"), "--set", *SMALL_RUN],
                 ["evaluate", "--reference", "black", "--sequences", "2", "--out", str(tmp_path / "eval")]):
        assert main(argv) == 1
        error = capsys.readouterr().err
        assert "MissingDataError" in error and "slamp prepare mnist" in error and str(isolated_data) in error


def test_the_stand_in_digits_are_chosen_by_name(isolated_data, tmp_path, capsys):
    argv = ["train", "--preset", "tiny", "--out", str(tmp_path / "run"), "--set", *SMALL_RUN, "digits=sklearn"]
    assert main(argv) == 0
    assert load_checkpoint(tmp_path / "run" / "last.pt")["config"]["digits"] == "sklearn"
    assert main(["train", "--preset", "tiny", "--set", "digits=emnist", "--show-config"]) == 2
    assert "digits must be one of" in capsys.readouterr().err
