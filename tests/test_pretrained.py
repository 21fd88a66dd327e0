"""slamp.pretrained: the shipped models load offline and reproduce the README's numbers."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from slamp import pretrained
from slamp.models import SLAMP, SVG, AppearanceOnly, SLAMPBaseline


ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("tools_pretrained", ROOT / "tools" / "pretrained.py")
tool = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
RECORDED = json.loads((ROOT / "slamp" / "pretrained" / "results.json").read_text())


SHIPPED = [("slamp", SLAMP), ("slamp_baseline", SLAMPBaseline), ("appearance_only", AppearanceOnly), ("svg", SVG)]


def test_the_four_models_ship_small_and_load_offline():
    assert pretrained.available() == sorted(name for name, _ in SHIPPED)
    for name, cls in SHIPPED:
        model = pretrained.load(name)
        assert type(model) is cls and not model.training
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert (pretrained.FOLDER / f"{name}.pt").stat().st_size < 6_000_000  # float16, the cpu preset
        about = pretrained.info(name)
        assert about["train_config"]["model"] == name and about["train_config"]["model_preset"] == "cpu"
        assert about["metrics"]["updates_in_all"] >= about["updates"] > 0
        futures = model.generate(torch.rand(2, 5, 1, 64, 64), n_future=3, num_samples=2)
        assert futures.x_hat.shape == (2, 2, 3, 1, 64, 64)


def test_the_models_had_one_budget_and_carry_their_learning_curves():
    curves = {name: pretrained.info(name)["metrics"]["learning_curve"] for name, _ in SHIPPED}
    # validated at the same updates, up to where a model was trained on alone (issue 35: continued_from)
    updates = {name: curve["updates"][:curve.get("continued_from")] for name, curve in curves.items()}
    assert len({tuple(u) for u in updates.values()}) == 1, updates
    for name, curve in curves.items():
        points = {key: v for key, v in curve.items() if key != "continued_from"}
        assert len(curve["updates"]) >= 2 and all(len(v) == len(curve["updates"]) for v in points.values()), name
        assert curve["updates"] == sorted(curve["updates"]) and curve["cpu_minutes"] == sorted(curve["cpu_minutes"])
        assert curve["updates"][-1] == pretrained.info(name)["metrics"]["updates_in_all"]


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

    test_set = MovingMNISTTestSet.generate(num_sequences=8)  # the first 8 of SRVP's set
    videos = [torch.stack([test_set[i] for i in range(8)])]
    scores = {}
    for name, model in [("trained", pretrained.load("slamp")), ("untrained", SLAMP.from_preset("cpu").eval())]:
        torch.manual_seed(0)
        scores[name] = evaluate(model, videos, 5, 20, 10, progress=False).summary()["x_hat"]["psnr"]["mean"]
    # The untrained cpu preset starts one grey level above black, so it scores about as the black
    # frame; the trained model must beat both (measured at 750 updates: 14.30 vs 13.83 dB).
    from slamp.evaluate import evaluate_reference

    scores["black"] = evaluate_reference("black", videos, 5, 20).summary()["x_hat"]["psnr"]["mean"]
    assert scores["trained"] > max(scores["untrained"], scores["black"]) + 0.3, scores


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
    recorded["references"] = {name: {"settings": {}, "results": {"x_hat": {
        "psnr": {"mean": 13.8 + i, "ci95": 0.3}, "ssim": {"mean": 0.72, "ci95": 0.01}}}}
        for i, name in enumerate(tool.REFERENCES)}
    (tmp_path / "results.json").write_text(json.dumps(recorded))
    monkeypatch.setattr(tool, "RESULTS", tmp_path / "results.json")
    lines = tool.table().splitlines()
    assert len(lines) == 2 + len(tool.MODELS) + 3
    assert lines[-3] == ("| floor: all-black frame (`--reference black`) | 13.80 ± 0.30 | 0.7200 ± 0.0100 | "
                         "0 (one prediction) | – | – |")
    assert lines[-1].startswith("| floor: mean training frame (`--reference mean_frame`) | 15.80")


def test_the_per_frame_figure_is_drawn_from_the_record(tmp_path, monkeypatch):
    frames = lambda start: {"mean": start, "ci95": 0.1, "per_frame": [start - 0.1 * t for t in range(20)]}  # noqa: E731
    final = {"psnr": frames(16.0), "ssim": frames(0.8)}
    recorded = {"models": {m: {"settings": {"sequences": 100}, "results": {"x_hat": final}} for m in tool.MODELS},
                "references": {n: {"results": {"x_hat": final}} for n in tool.REFERENCES}}
    (tmp_path / "results.json").write_text(json.dumps(recorded))
    monkeypatch.setattr(tool, "RESULTS", tmp_path / "results.json")
    path = tool.per_frame_figure(tmp_path / "per_frame.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    small = path.stat().st_size
    difference = {"mean": [0.1 - 0.01 * t for t in range(20)], "ci95": [0.02] * 20}
    recorded["paired_per_frame"] = {m: {n: {"psnr": difference, "ssim": difference} for n in tool.REFERENCES}
                                    for m in tool.MODELS}
    (tmp_path / "results.json").write_text(json.dumps(recorded))
    assert tool.per_frame_figure(tmp_path / "paired.png").stat().st_size > small  # the paired row below


def test_paired_per_frame_differences_are_sequence_by_sequence(tmp_path, monkeypatch):
    """Model minus floor at each frame, over the same sequences: a model that beats the floor by
    exactly 0.1 at frame 1 and 0 at frame 2 on every sequence gets 0.1 ± 0 and 0 ± 0."""
    def write(folder, scores):
        folder.mkdir(parents=True)
        lines = ["head,metric,sequence,frame,score"] + [
            f"{head},{metric},{i},{t + 1},{value}" for head in ("x_hat", "x_p") for metric in ("psnr", "ssim")
            for i, row in enumerate(scores) for t, value in enumerate(row)]
        (folder / "per_sequence_frame.csv").write_text("\n".join(lines) + "\n")

    floor = [[0.5, 0.7], [0.2, 0.9], [0.4, 0.1]]
    for name in tool.REFERENCES:
        write(tmp_path / "results" / "pretrained" / "references" / name, floor)
    write(tmp_path / "results" / "pretrained" / "slamp", [[a + 0.1, b] for a, b in floor])
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    found = tool.paired_per_frame(["slamp"])["slamp"]["black"]["ssim"]
    assert found["mean"] == pytest.approx([0.1, 0.0], abs=1e-4) and found["ci95"] == pytest.approx([0, 0], abs=1e-4)


def test_ship_puts_the_snapshot_in_the_package_with_its_sum(tmp_path, monkeypatch):
    """``ship`` writes the continuation's snapshot where ``load`` finds it, recorded and checked."""
    snapshots, folder = tmp_path / "shipped_training", tmp_path / "package"
    folder.mkdir()
    shipped = pretrained._read("svg")
    pretrained.write_shipped(shipped, "svg", snapshots)
    monkeypatch.setattr(tool, "SNAPSHOTS", snapshots)
    monkeypatch.setattr(pretrained, "FOLDER", folder)
    path = tool.ship("svg")
    assert path == folder / "svg.pt" and pretrained.recorded_sums(folder)["svg.pt"]
    assert pretrained.info("svg")["metrics"]["shipped_from"] == "shipped_training/svg.pt"
    assert type(pretrained.load("svg")) is SVG


def test_training_minutes_grow_within_a_chunk():
    # Chunks of 500 updates took 120 s and 60 s; validation at 250 and 750 falls inside them.
    seconds = {500: 120, 1000: 60}
    assert [tool._minutes_at(step, seconds) for step in (250, 500, 750, 1000)] == [1.0, 2.0, 2.5, 3.0]


def test_svg_is_svg_lp_and_appearance_only_the_earlier_svg():
    """The SVG of earlier sessions (SLAMP's running-mean skips) ships as appearance_only, unchanged;
    svg is SVG-LP (skips held from the conditioning frames), trained on the same schedule."""
    assert pretrained.load("svg").config.skips == "held"
    assert pretrained.load("appearance_only").config.skips == "mean"
    assert pretrained.info("appearance_only")["metrics"]["shipped_before_as"] == "svg"
    assert tool.MODELS == ("svg", "appearance_only", "slamp_baseline", "slamp")


def test_train_on_with_another_lr_records_a_decay_stage(tmp_path, monkeypatch, capsys):
    """Issue 35's decay stage: `train-on --lr` for a run that exists continues the same run at the
    new rate from its next update, and the record keeps each rate with the update it starts at
    (the snapshot and the continuation figure read it from there)."""
    monkeypatch.setattr(tool, "CONTINUE", tmp_path)
    out = tmp_path / "slamp"
    out.mkdir()
    (out / "continuation.json").write_text(json.dumps({"init_from": "pretrained:slamp", "seed": 6750, "lr": 3e-4,
                                                       "batch_size": None, "cpu_seconds_before": 0.0}))
    (out / "train.csv").write_text("step,epoch\n500,5\n700,7\n")
    tool.train_on("slamp", hours=0, lr=3e-4, lr_given=True)  # the same rate: nothing recorded
    assert "lr_from_update" not in json.loads((out / "continuation.json").read_text())
    tool.train_on("slamp", hours=0, lr=1e-4, lr_given=True)  # 0 hours: it records, then stops at once
    state = json.loads((out / "continuation.json").read_text())
    assert state["lr"] == 1e-4 and state["lr_from_update"] == {"0": 3e-4, "700": 1e-4}
    assert tool._lr_steps(state) == [(0, 3e-4), (700, 1e-4)]
    assert tool._continuation_schedule(state).startswith("lr 3e-4, 1e-4 from update 700")
    assert tool._lr_steps({"lr": 3e-4}) == [(0, 3e-4)]


def test_a_chunk_cut_short_is_followed_by_one_that_ends_on_the_validation_grid():
    assert tool._next_stop(18_500, 500) == 19_000
    assert tool._next_stop(18_944, 500) == 19_000  # a session's end stopped a chunk at 18,944
    assert tool._next_stop(0, 500) == 500
