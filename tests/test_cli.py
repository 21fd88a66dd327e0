"""The `slamp` command line: the README's main job (`slamp demo`)."""
import json
import subprocess
import sys

from slamp.cli import main, run_demo


def test_demo_writes_figure_gif_and_metrics(tmp_path):
    metrics = run_demo(tmp_path, seed=0, fit_steps=40)
    assert (tmp_path / "warping.png").stat().st_size > 1000
    assert (tmp_path / "warping.gif").stat().st_size > 1000
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["identity_max_abs_error"] < 1e-5
    assert metrics["integer_shift_max_abs_error"] < 1e-5
    assert metrics["fit_flow_final_loss"] < metrics["fit_flow_initial_loss"]


def test_demo_is_reproducible_from_its_seed(tmp_path):
    first = run_demo(tmp_path / "a", seed=3, fit_steps=20)
    second = run_demo(tmp_path / "b", seed=3, fit_steps=20)
    assert first["fit_flow_final_loss"] == second["fit_flow_final_loss"]


def test_command_line_entry_points(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--fit-steps", "5"]) == 0
    assert "metrics.json" in capsys.readouterr().out
    result = subprocess.run([sys.executable, "-m", "slamp", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "slamp", "fly"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
