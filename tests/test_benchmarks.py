"""The benchmark scripts run, measure what they say and write the JSON the plots read.

Each script's ``main`` runs in-process at the smallest settings (tiny models, batch 2, one timed
step); the numbers are checked for shape and sign, never for speed. The helpers they share are
checked on known answers: the log-log slope of linear and quadratic data, the peak memory of a
known allocation, and the counting of ``generate`` calls."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SMALL = ["--quick", "--device", "cpu", "--threads", "1"]


def load(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()  # the scripts' --threads 1 must not leak into other tests
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every script run once at its smallest; {name: (returned result, JSON path)}."""
    threads = torch.get_num_threads()
    folder = tmp_path_factory.mktemp("results")
    runs = {
        "training": SMALL + ["--presets", "tiny", "--models", "SVG", "SLAMP", "--batch-size", "2"],
        "evaluation": SMALL + ["--sequences", "2", "--num-samples", "3", "--n-past", "2", "--n-future", "3"],
        "scaling": SMALL + ["--batch-sizes", "2", "4", "--lengths", "3", "5", "--resolutions", "32", "32x64",
                            "--base-length", "3"],
        "profile_step": SMALL + ["--batch-size", "2", "--n-past", "2", "--n-future", "2", "--rows", "10"],
        "gpu": ["--quick", "--device", "cpu", "--parts", "training", "sampling", "evaluation"],
        "sampling_parts": SMALL + ["--n-future", "3", "--warmup", "1"],
        "evaluation_kernels": ["--quick", "--threads", "1", "--presets", "tiny", "kth", "--futures", "3",
                               "--sequences", "2", "--samples", "3", "--frames", "2", "--repeats", "1"],
    }
    out = {}
    try:
        for name, argv in runs.items():
            path = folder / f"{name}_quick.json"
            out[name] = (load(name).main(argv + ["--out", str(path)]), path)
    finally:
        torch.set_num_threads(threads)
    return out


def machine_ok(info):
    assert info["torch"] == torch.__version__
    assert info["cpu_count"] >= 1 and info["torch_threads"] == 1 and info["device"] == "cpu"
    assert info["device_name"]


# ---- shared helpers ---------------------------------------------------------------------------
def test_loglog_slope_recovers_the_order_of_growth():
    common = load("_common")
    xs = np.array([2, 4, 8, 16, 32])
    assert common.loglog_slope(xs, 3.0 * xs)[0] == pytest.approx(1.0)
    slope, intercept = common.loglog_slope(xs, 0.5 * xs**2)
    assert slope == pytest.approx(2.0) and math.exp(intercept) == pytest.approx(0.5)
    assert common.loglog_slope(xs, np.full(5, 7.0))[0] == pytest.approx(0.0, abs=1e-12)
    assert common.loglog_slope(xs, 2.0 * np.sqrt(xs))[0] == pytest.approx(0.5)
    # A linear cost plus a fixed overhead grows slower than linearly.
    assert 0.3 < common.loglog_slope(xs, xs + 20.0)[0] < 0.9
    assert common.loglog_slope([1, 2, 4], [0.0, 2.0, 4.0])[0] == pytest.approx(1.0)  # non-positive points dropped
    assert math.isnan(common.loglog_slope([4], [1.0])[0]) and math.isnan(common.loglog_slope([2, 2], [1.0, 3.0])[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS reset needs Linux /proc")
def test_peak_memory_sees_a_known_allocation():
    common = load("_common")
    meter = common.PeakMemory(torch.device("cpu")).start()
    block = torch.ones(16 * 2**20)  # 64 MiB, written so that it is resident
    del block
    memory = meter.stop()
    assert "ru_maxrss" in memory["memory_measure"]
    assert 60 <= memory["delta_mib"] < 200, memory
    assert memory["peak_mib"] >= memory["delta_mib"]


def test_quick_runs_write_quick_files_by_default():
    training = load("training")
    assert training.parse_args(["--quick"])[0].out.name == "training_quick.json"
    assert training.parse_args([])[0].out.name == "training.json"
    assert load("scaling").parse_args(["--quick"])[0].out.name == "scaling_quick.json"
    assert load("evaluation").parse_args([])[0].out.name == "evaluation.json"
    assert load("profile_step").parse_args(["--quick"])[0].out.name == "profile_tiny_quick.json"


# ---- the scripts --------------------------------------------------------------------------------
def test_training_compares_both_paths_of_each_model(results):
    result, path = results["training"]
    assert json.loads(path.read_text())["rows"] == json.loads(json.dumps(result["rows"]))
    machine_ok(result["machine"])
    assert "ru_maxrss" in result["memory_measure"]
    rows = result["rows"]
    assert {(r["model"], r["path"]) for r in rows} == {(m, p) for m in ("SVG", "SLAMP") for p in ("batched", "per_step")}
    for r in rows:
        assert r["error"] is None, r["error"]
        assert (r["preset"], r["batch_size"], r["n_past"], r["n_future"]) == ("tiny", 2, 2, 4)  # tiny's clip length
        assert r["sequences_per_s"] > 0 and r["median_s"] > 0 and r["first_call_s"] > 0
        assert r["sequences_per_s"] == pytest.approx(2 / r["median_s"])
        assert r["peak_mib"] > 0 and r["delta_mib"] >= 0 and math.isfinite(r["loss"])
    assert {s["model"] for s in result["speedups"]} == {"SVG", "SLAMP"}
    assert all(s["speedup"] > 0 for s in result["speedups"])


def test_training_records_a_compile_failure_instead_of_crashing(tmp_path, monkeypatch):
    def no_compiler(module, *args, **kwargs):
        def fail(*a, **k):
            raise RuntimeError("no C++ compiler here")
        return fail
    monkeypatch.setattr(torch, "compile", no_compiler)
    result = load("training").main(SMALL + ["--presets", "tiny", "--models", "SVG", "--paths", "batched",
                                            "--batch-size", "2", "--compile", "on", "--out", str(tmp_path / "t.json")])
    (row,) = result["rows"]
    assert row["compile"] is True and "no C++ compiler here" in row["error"]
    assert result["speedups"] == []


def test_evaluation_compares_with_the_one_at_a_time_protocol_and_chooses_the_same_samples(results):
    result, path = results["evaluation"]
    assert json.loads(path.read_text())["speedup"] == pytest.approx(result["speedup"])
    machine_ok(result["machine"])
    for key in ("device", "torch", "preset", "sequences", "num_samples", "n_past", "n_future"):
        assert key in result  # the keys the script has always written
    assert result["one_sample_at_a_time_seq_per_s"] > 0 and result["batched_seq_per_s"] > 0
    assert len(result["speedups"]) == result["rounds"] and result["speedup"] == sorted(result["speedups"])[1]
    assert result["same_choice"] is True and result["max_score_difference_db"] < 1e-3
    assert result["warmup"] == 1  # each way timed on a grown heap, as a long evaluation runs


def test_scaling_fits_each_axis(results):
    result, path = results["scaling"]
    assert json.loads(path.read_text())["fits"].keys() == result["fits"].keys() == {"batch", "length", "resolution"}
    machine_ok(result["machine"])
    rows = result["rows"]
    assert all(r["error"] is None and r["median_s"] > 0 and r["delta_mib"] >= 0 for r in rows)
    assert [r["x"] for r in rows if r["axis"] == "batch"] == [2, 4]
    assert [r["x"] for r in rows if r["axis"] == "length"] == [3, 5]
    resolution = [r for r in rows if r["axis"] == "resolution"]
    assert [(r["x"], r["backbone"], r["image_size"]) for r in resolution] == [(1024, "conv", [32, 32]),
                                                                            (2048, "conv", [32, 64])]
    for fit in result["fits"].values():
        assert fit["points"] == 2 and math.isfinite(fit["time_slope"])
    with pytest.raises(SystemExit):
        load("scaling").parse_args(["--resolutions", "33"])  # the conv backbone needs even sizes


def test_profile_lists_hot_operators_and_model_parts(results):
    result, path = results["profile_step"]
    machine_ok(result["machine"])
    text = Path(result["table"]).read_text()
    assert Path(result["table"]) == path.with_suffix(".txt")
    assert "top operators by self time" in text and "convolution" in text
    assert len(result["top_ops"]) == 10 and all(op["self_ms"] >= 0 for op in result["top_ops"])
    assert result["top_ops"][0]["self_ms"] > 0
    assert any("convolution" in op["op"] for op in result["top_ops"])
    parts = {m["module"] for m in result["modules"]}
    assert {"encoder", "appearance", "pixel_decoder", "flow_decoder", "mask_net", "motion.encoder", "motion.latent"} <= parts
    assert all(result["phases_cpu_ms"][p] > 0 for p in ("forward", "backward", "optimizer"))
    assert result["gflop_per_step"] > 0


def test_gpu_run_measures_every_part_on_any_device(results):
    result, path = results["gpu"]
    assert json.loads(path.read_text())["training"]["over_per_step"] == result["training"]["over_per_step"]
    ratios = result["training"]["over_per_step"]
    assert {(r["path"], r["amp"], r["layout"]) for r in ratios} == {
        (p, a, f) for p in ("batched", "per_step") for a in ("off", "bf16") for f in ("contiguous", "channels_last")}
    base = next(r for r in ratios if (r["path"], r["amp"], r["layout"]) == ("per_step", "off", "contiguous"))
    assert base["time_ratio"] == 1 and all(r["time_ratio"] > 0 and r["updates_per_s"] > 0 for r in ratios)
    rows = {r["way"]: r for r in result["sampling"]["rows"]}
    assert all(r["error"] is None and r["futures_per_s"] > 0 and r["peak_mib"] > 0 for r in rows.values())
    assert not any("CUDA graph" in way for way in rows)  # graphs only where there is a GPU
    assert rows["one at a time (model as trained)"]["speedup"] == 1
    assert rows["all at once"]["max_abs_difference"] == 0  # the reference is drawn the same way
    assert rows["all at once, bf16 autocast"]["max_abs_difference"] < 0.05  # bf16 rounding, the same futures
    assert result["evaluation"]["same_choice"] is True
    assert "compile" not in result and result["sampling_seconds"] > 0


def test_sampling_parts_time_and_count_every_part(results):
    result, path = results["sampling_parts"]
    machine_ok(result["machine"])
    rows = {r["part"]: r for r in result["rows"]}
    assert set(rows) == {"encoder", "appearance", "pixel_decoder", "flow_decoder", "mask_net", "motion.encoder",
                         "motion.latent", "rest (Python, warp, blend, stacking)"}
    assert sum(r["seconds"] for r in rows.values()) == pytest.approx(result["seconds"])
    for name in ("encoder", "pixel_decoder", "flow_decoder", "mask_net", "motion.encoder"):
        assert rows[name]["seconds"] > 0 and rows[name]["gflop"] > 0 and rows[name]["gflop_per_s"] > 0
    # Both decoders run the same layers on the same frames: the same arithmetic, within the flow head's 2 channels.
    assert rows["flow_decoder"]["gflop"] == pytest.approx(rows["pixel_decoder"]["gflop"], rel=0.1)
    assert result["convolution_gflop_per_s"] > 0


def test_evaluation_kernels_compare_each_kernel_with_what_it_replaces(results):
    result, path = results["evaluation_kernels"]
    machine_ok(result["machine"])
    saved = json.loads(path.read_text())
    layers = {(preset, r["part"]): r for preset, rows in saved["output_layers"].items() for r in rows}
    assert set(layers) == {(p, d) for p in ("tiny", "kth") for d in ("pixel_decoder", "flow_decoder", "mask_net",
                                                                      "pixel_decoder.head")}
    assert layers["tiny", "pixel_decoder.head"]["layer"] == "32->128, 4x4/1, 4x4"
    assert layers["tiny", "pixel_decoder"]["layer"] == "32->1, 4x4/2, 64x64"  # DCGAN: to 1 channel, stride 2
    assert layers["kth", "flow_decoder"]["layer"] == "64->2, 3x3/1, 64x64"  # VGG: to 2 channels, stride 1
    assert layers["kth", "mask_net"]["layer"] == "64->1, 3x3/1, 64x64"
    for row in layers.values():
        assert row["max_difference"] < 1e-4 and row["speedup"] == pytest.approx(row["onednn_seconds"] / row["fold_seconds"])
    assert saved["ssim"]["max_difference"] < 1e-6 and saved["ssim"]["shared_seconds"] > 0


def test_gpu_run_keeps_the_other_parts_when_one_fails(tmp_path, monkeypatch):
    gpu = load("gpu")

    def broken(*args):
        raise RuntimeError("CUDA error: out of memory")
    monkeypatch.setattr(gpu, "run_training", broken)
    monkeypatch.setattr(gpu, "run_evaluation", lambda *args: {"speedup": 2.0})
    out = tmp_path / "gpu.json"
    result = gpu.main(["--quick", "--device", "cpu", "--parts", "training", "evaluation", "--out", str(out)])
    assert "out of memory" in result["training"]["error"] and result["evaluation"] == {"speedup": 2.0}
    assert json.loads(out.read_text())["evaluation"] == {"speedup": 2.0}


def test_plot_draws_every_result(results, tmp_path):
    folder = next(iter(results.values()))[1].parent
    written = load("plot").main(["--results", str(folder), "--quick", "--out-dir", str(tmp_path)])
    assert sorted(p.name for p in written) == sorted(f"{name}_quick.png" for name in results if name not in ("gpu", "sampling_parts", "evaluation_kernels"))
    for png in written:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
