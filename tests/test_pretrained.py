"""slamp.pretrained: the shipped models load offline and reproduce the README's numbers."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from slamp import pretrained
from slamp.models import SLAMP, SVG, SLAMPBaseline

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("tools_pretrained", ROOT / "tools" / "pretrained.py")
tool = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
RECORDED = json.loads((ROOT / "slamp" / "pretrained" / "results.json").read_text())


def test_the_three_models_ship_small_and_load_offline():
    assert pretrained.available() == ["slamp", "slamp_baseline", "svg"]
    for name, cls in [("slamp", SLAMP), ("slamp_baseline", SLAMPBaseline), ("svg", SVG)]:
        model = pretrained.load(name)
        assert type(model) is cls and not model.training
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert (pretrained.FOLDER / f"{name}.pt").stat().st_size < 4_000_000  # float16 tiny models
        about = pretrained.info(name)
        assert about["updates"] == 600 and about["train_config"]["model"] == name
        assert about["train_config"]["model_preset"] == "tiny"
        futures = model.generate(torch.rand(2, 5, 1, 64, 64), n_future=3, num_samples=2)
        assert futures.frames.shape == (2, 2, 3, 1, 64, 64)


def test_the_shipped_models_reproduce_the_recorded_check():
    """The small evaluation recorded with the README's table (8 sequences, best of 10), re-run."""
    expected = RECORDED["check"]["results"]
    found = tool.check_results()
    for model, metrics in expected.items():
        assert found[model]["psnr"] == pytest.approx(metrics["psnr"], abs=0.02), model
        assert found[model]["ssim"] == pytest.approx(metrics["ssim"], abs=0.002), model


def test_the_readme_table_is_the_recorded_one():
    readme = (ROOT / "README.md").read_text()
    for line in tool.table().splitlines():
        assert line in readme, f"README is missing the line {line!r} (python tools/pretrained.py table)"


def test_the_shipped_slamp_beats_an_untrained_one():
    from slamp.data import MovingMNISTTestSet
    from slamp.evaluate import evaluate

    test_set = MovingMNISTTestSet.generate(num_sequences=8, n_frames=25, seed=42)
    videos = [torch.stack([test_set[i] for i in range(8)])]
    scores = {}
    for name, model in [("trained", pretrained.load("slamp")), ("untrained", SLAMP.from_preset("tiny").eval())]:
        torch.manual_seed(0)
        scores[name] = evaluate(model, videos, 5, 20, 10, progress=False).summary()["final"]["psnr"]["mean"]
    assert scores["trained"] > scores["untrained"] + 2, scores


def test_unknown_and_damaged_files_get_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(pretrained.PretrainedError, match="no shipped model named 'vae'"):
        pretrained.load("vae")
    monkeypatch.setattr(pretrained, "FOLDER", tmp_path)
    (tmp_path / "broken.pt").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(pretrained.PretrainedError, match="Git LFS pointer or was cut short"):
        pretrained.load("broken")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(pretrained.PretrainedError, match="not a slamp.pretrained file"):
        pretrained.load("foreign")


def test_the_table_puts_the_floors_under_the_models(tmp_path, monkeypatch):
    recorded = json.loads(json.dumps(RECORDED))
    recorded["references"] = {name: {"settings": {}, "results": {"final": {
        "psnr": {"mean": 13.8 + i, "ci95": 0.3}, "ssim": {"mean": 0.72, "ci95": 0.01}}}}
        for i, name in enumerate(tool.REFERENCES)}
    (tmp_path / "results.json").write_text(json.dumps(recorded))
    monkeypatch.setattr(tool, "RESULTS", tmp_path / "results.json")
    lines = tool.table().splitlines()
    assert len(lines) == 2 + len(tool.MODELS) + 3
    assert lines[-3] == "| floor: all-black frame (`--reference black`) | 13.80 ± 0.30 | 0.7200 ± 0.0100 | – | – |"
    assert lines[-1].startswith("| floor: mean training frame (`--reference mean_frame`) | 15.80")
