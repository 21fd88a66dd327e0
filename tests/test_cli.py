"""The `slamp` command line: the README's main job (`slamp demo`), `slamp train`, `slamp evaluate`."""
import json
import subprocess
import sys

import pytest

from slamp.cli import main, run_demo
from slamp.train import load_checkpoint

SMALL_RUN = ["device=cpu", "workers=0", "batch_size=4", "epochs=1", "epoch_size=2", "n_past=2", "n_future=2",
             "val_every=2", "val_sequences=2", "val_samples=2", "val_n_future=3", "log_every=1"]


def test_demo_trains_evaluates_and_writes_figure_gif_and_metrics(tmp_path):
    metrics = run_demo(tmp_path, seed=0, updates=3, sequences=4, num_samples=2, progress=False)
    for name in ("prediction.png", "prediction.gif", "loss.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["updates"] == 3 and load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 3
    assert set(metrics["results"]) == {"final", "appearance", "motion", "average"}
    assert 0 < metrics["results"]["final"]["psnr"]["mean"] < 60
    assert metrics["protocol"] == {"n_past": 5, "n_future": 10, "num_samples": 2, "sequences": 4}


def test_demo_is_reproducible_from_its_seed(tmp_path):
    first = run_demo(tmp_path / "a", seed=3, updates=2, sequences=2, num_samples=2, progress=False)
    second = run_demo(tmp_path / "b", seed=3, updates=2, sequences=2, num_samples=2, progress=False)
    assert first["final_loss"] == second["final_loss"] and first["results"] == second["results"]


def test_train_and_evaluate_commands(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--set", *SMALL_RUN, "--out", str(run)]) == 0
    assert load_checkpoint(run / "last.pt")["step"] == 2 and list((run / "samples").glob("*.png"))
    assert json.loads(capsys.readouterr().out)["updates"] == 2  # stdout: only the summary
    # Resume to a longer schedule needs the same config; --stop-after ends early with a checkpoint.
    assert main(["train", "--set", *SMALL_RUN, "epoch_size=4", "--out", str(run), "--resume", "--stop-after", "3"]) == 0
    assert load_checkpoint(run / "last.pt")["step"] == 3

    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--sequences", "3", "--num-samples", "2",
                 "--n-future", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["n_past"] == 5 and summary["settings"]["n_future"] == 3  # the MNIST protocol's n_past
    assert summary["settings"]["sequences"] == 3
    assert set(summary["results"]) == {"final", "appearance", "motion", "average"}
    assert len(summary["results"]["final"]["psnr"]["per_frame"]) == 3
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
    assert main(["train", "--set", *SMALL_RUN, "epoch_size=1", "val_every=0", "--out", str(run)]) == 0
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
        assert set(summary["results"]) == {"final"} and set(summary["results"]["final"]) == {"psnr", "ssim"}
        assert len(summary["results"]["final"]["psnr"]["per_frame"]) == 4
        assert (out / name / "per_frame.csv").is_file()
    assert "reference black on mnist: 3 sequences" in capsys.readouterr().out
    assert main(["evaluate", "--reference", "black", "--sequences", "3", "--n-future", "4", "--out", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one" / "summary.json").read_text())["results"]
    assert one == json.loads((out / "black" / "summary.json").read_text())["results"]
    assert main(["evaluate", "--reference", "black", "--heads", "motion", "--out", str(tmp_path / "bad")]) == 1
    assert "head 'final'" in capsys.readouterr().err


def test_the_reference_choices_are_the_references():
    from slamp.cli import parser
    from slamp.evaluate import REFERENCES

    evaluate_parser = parser()._subparsers._group_actions[0].choices["evaluate"]
    choices = next(a.choices for a in evaluate_parser._actions if a.dest == "reference")
    assert tuple(choices) == (*REFERENCES, "all")
