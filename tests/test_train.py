"""Training (slamp.train and its engine: config, checkpoint, data.stream, run, distributed): configs, scheduled sampling, exact resume, the NaN guard, checkpoints, DDP."""
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from slamp.checkpoint import CheckpointError, NonFiniteLossError, load_checkpoint, load_model, save_checkpoint
from slamp.config import ConfigError, TrainConfig, apply_overrides
from slamp.data.stream import RankBatches
from slamp.run import TrainingObjective
from slamp.runlog import read_log
from slamp.train import teacher_forcing_probability, train


ROOT = Path(__file__).resolve().parents[1]


def tiny(out, **overrides) -> TrainConfig:
    """A few updates of the tiny preset: seconds on a CPU."""
    settings = dict(epochs=2, epoch_size=3, batch_size=4, n_past=2, n_future=2, log_every=1, val_every=0,
                    checkpoint_every=2, workers=0, device="cpu", out=str(out))
    return TrainConfig.preset("tiny", **{**settings, **overrides})


# ---- configs ---------------------------------------------------------------------------------
def test_svg_lp_presets_hold_the_public_svg_codes_settings():
    svg, bair = TrainConfig.preset("svg_mnist"), TrainConfig.preset("svg_bair")
    assert (svg.model, svg.model_preset, svg.lr, svg.batch_size, svg.epoch_size, svg.n_past, svg.n_future) == \
        ("svg", "svg_mnist", 2e-3, 100, 600, 5, 10)
    assert svg.per_frame_batchnorm and bair.per_frame_batchnorm and (bair.n_past, bair.dataset) == (2, "bair")


def test_per_frame_batchnorm_trains_step_by_step(monkeypatch):
    """In training mode BatchNorm normalises over the frames of one call: per frame (the public codes'
    loop) or over the whole clip (batched). The objective takes the path the config asks for."""
    import slamp.run
    from slamp.models import SVG

    torch.manual_seed(0)
    model = SVG.from_preset("tiny").train()
    x, noise = torch.rand(3, 5, 1, 64, 64), {"appearance": torch.randn(3, 4, 8)}
    monkeypatch.setattr(slamp.run, "global_noise", lambda *args, **kwargs: noise)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    losses = {}
    for per_step in (False, True):
        model.load_state_dict(state)
        expected = model.loss(x, 2, per_step=per_step, noise=noise)[0].item()
        model.load_state_dict(state)
        losses[per_step] = TrainingObjective(model, per_step=per_step)(x, 2, 1.0)[0].item()
        assert losses[per_step] == pytest.approx(expected, rel=1e-6)
    # the statistics differ, so the losses do: by far more than float32 rounding of a loss of ~0.34 (~4e-8)
    assert abs(losses[True] - losses[False]) > 1e-5
    assert TrainConfig.preset("tiny", per_frame_batchnorm=True).per_frame_batchnorm


def test_presets_hold_the_papers_settings():
    mnist, kth, bair = (TrainConfig.preset(name) for name in ("mnist", "kth", "bair"))
    assert (mnist.batch_size, mnist.lr, mnist.n_past, mnist.n_future, mnist.scheduled_sampling_k) == (32, 3e-4, 5, 10, 0)
    assert (kth.batch_size, kth.lr, kth.n_past, kth.n_future, kth.scheduled_sampling_k) == (20, 1e-4, 10, 10, 25)
    assert (bair.batch_size, bair.lr, bair.n_past, bair.n_future) == (20, 1e-4, 2, 10)
    assert mnist.betas == (0.9, 0.999) and mnist.epochs * mnist.epoch_size == 300_000


def test_overrides_parse_command_line_text():
    config = apply_overrides(TrainConfig.preset("tiny"), ["lr=2e-3", "batch_size=8", "compile=true", "beta=none",
                                                          "betas=0.5,0.9", "model=svg"])
    assert (config.lr, config.batch_size, config.compile, config.beta, config.betas, config.model) == \
        (2e-3, 8, True, None, (0.5, 0.9), "svg")


@pytest.mark.parametrize("overrides, message", [
    (["learning_rate=1e-3"], "unknown config field 'learning_rate'"),
    (["bach_size=3"], "did you mean 'batch_size'"),
    (["batch_size=eight"], "batch_size must be an integer, found 'eight'"),
    (["lr=-1"], "lr must be a positive number"),
    (["n_past=0"], "n_past and n_future must be >= 1"),
    (["model=vae"], "model must be one of"),
    (["amp=fp8"], "amp must be one of"),
    (["device=tpu"], "device must be"),
    (["dataset=bair"], "makes 1-channel (64, 64) frames, but dataset 'bair' has 3-channel"),
    (["lr"], "must look like field=value"),
])
def test_bad_configs_are_rejected_with_a_clear_message(overrides, message):
    with pytest.raises(ConfigError, match=None) as error:
        apply_overrides(TrainConfig.preset("tiny"), overrides)
    assert message in str(error.value)


def test_unknown_preset_and_wrong_types_in_python():
    with pytest.raises(ConfigError, match="unknown training preset 'mnsit'"):
        TrainConfig.preset("mnsit")
    with pytest.raises(ConfigError, match="epochs must be an integer, found 2.5"):
        TrainConfig(epochs=2.5)


def test_teacher_forcing_probability_is_the_inverse_sigmoid_decay():
    assert teacher_forcing_probability(0, 0) == 1.0 and teacher_forcing_probability(500, 0) == 1.0
    assert teacher_forcing_probability(0, 25) == pytest.approx(25 / 26)
    assert teacher_forcing_probability(100, 25) == pytest.approx(25 / (25 + math.exp(4)))
    values = [teacher_forcing_probability(e, 25) for e in range(0, 300, 10)]
    assert all(a > b for a, b in zip(values, values[1:])) and values[-1] < 1e-3
    assert teacher_forcing_probability(10**6, 1) == 0.0  # no overflow


def test_rank_batches_split_the_global_batch():
    one = list(RankBatches(epoch=1, start=0, epoch_size=2, batch_size=4))
    halves = [list(RankBatches(1, 0, 2, 4, rank=r, world_size=2)) for r in range(2)]
    assert [a + b for a, b in zip(*halves)] == one
    assert list(RankBatches(1, 1, 2, 4)) == one[1:]  # a resumed epoch starts at its update
    with pytest.raises(ConfigError, match="split evenly over 3 processes"):
        RankBatches(0, 0, 2, 4, rank=0, world_size=3)


# ---- a run ------------------------------------------------------------------------------------
def test_a_run_writes_logs_checkpoints_and_a_figure(tmp_path):
    summary = train(tiny(tmp_path, val_every=3, val_sequences=2, val_samples=2, val_n_future=3))
    assert summary["updates"] == 6
    log = read_log(tmp_path / "train.csv")
    assert list(log["step"]) == [1, 2, 3, 4, 5, 6]
    assert {"total", "x_hat", "x_p", "x_f", "kl_appearance", "kl_motion"} <= set(log)
    assert list(read_log(tmp_path / "validation.csv")["step"]) == [3, 6]
    assert len(list((tmp_path / "samples").glob("*.png"))) == 2
    model, config = load_model(tmp_path / "last.pt")
    assert type(model).__name__ == "SLAMP" and not model.training and config == tiny(tmp_path, val_every=3,
        val_sequences=2, val_samples=2, val_n_future=3)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(tiny(tmp_path))


def test_resume_continues_exactly(tmp_path):
    """Updates 5..6 after a resume at 4 equal those of an uninterrupted run, bit for bit, with
    scheduled sampling on (so the coins must come out the same too)."""
    config = tiny(tmp_path, scheduled_sampling_k=1.0)
    train(replace(config, out=str(tmp_path / "straight")))
    stopped = replace(config, out=str(tmp_path / "stopped"))
    train(stopped, stop_after=4)
    assert load_checkpoint(tmp_path / "stopped" / "last.pt")["step"] == 4
    train(stopped, resume=True)
    straight, resumed = (read_log(tmp_path / name / "train.csv") for name in ("straight", "stopped"))
    assert list(resumed["step"]) == [1, 2, 3, 4, 5, 6]
    assert (straight["total"] == resumed["total"]).all()
    a, b = (load_checkpoint(tmp_path / name / "last.pt")["model"] for name in ("straight", "stopped"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_a_new_learning_rate_uses_it(tmp_path):
    """A decay stage: resuming with another lr continues at that lr (the optimiser's saved state
    must not bring the old one back), and Adam's moments carry over."""
    config = tiny(tmp_path, epochs=1, epoch_size=4)
    train(config, stop_after=2)
    before = load_checkpoint(tmp_path / "last.pt")["model"]
    train(replace(config, lr=1e-12), resume=True)  # two more updates at a vanishing rate
    after = load_checkpoint(tmp_path / "last.pt")
    assert after["step"] == 4 and after["optimizer"]["param_groups"][0]["lr"] == 1e-12
    assert after["optimizer"]["state"][0]["step"] == 4  # the same Adam, continued
    floats = [k for k in before if before[k].is_floating_point() and "running" not in k]
    assert all(torch.allclose(before[k], after["model"][k], atol=1e-9) for k in floats)


def test_init_from_starts_a_new_run_from_trained_weights(tmp_path):
    first = tiny(tmp_path / "first", epochs=1, epoch_size=2)
    train(first)
    trained = load_checkpoint(tmp_path / "first" / "last.pt")["model"]
    second = tiny(tmp_path / "second", epochs=1, epoch_size=1, init_from=str(tmp_path / "first" / "last.pt"), lr=1e-12)
    train(second)  # one update with a vanishing step: the weights stay those of the first run
    continued = load_checkpoint(tmp_path / "second" / "last.pt")
    assert continued["step"] == 1
    floats = [k for k in trained if trained[k].is_floating_point() and "running" not in k]
    assert all(torch.allclose(trained[k], continued["model"][k], atol=1e-6) for k in floats)
    with pytest.raises(ConfigError, match="init_from"):  # another model class: refused, not half-loaded
        train(tiny(tmp_path / "third", model="svg", init_from=str(tmp_path / "first" / "last.pt")))


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_forward, calls = TrainingObjective.forward, []

    def poisoned(self, x, n_past, teacher_forcing):
        calls.append(1)
        total, terms = real_forward(self, x, n_past, teacher_forcing)
        return (total * float("nan"), terms) if len(calls) == 3 else (total, terms)

    monkeypatch.setattr(TrainingObjective, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"the loss is nan at update 3.*last good checkpoint.*update 2"):
        train(tiny(tmp_path))
    kept = load_checkpoint(tmp_path / "last.pt")
    assert kept["step"] == 2 and all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


# ---- checkpoints --------------------------------------------------------------------------------
def test_damaged_or_foreign_checkpoints_get_a_clear_error(tmp_path):
    train(tiny(tmp_path, epochs=1, epoch_size=1))
    good = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="truncated, corrupt or not written by slamp.train"):
        load_checkpoint(tmp_path / "truncated.pt")
    with pytest.raises(CheckpointError, match="not a slamp training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "notes.txt")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        train(tiny(tmp_path / "elsewhere"), resume=True)


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"step": 1})
    before = path.read_bytes()

    def crash(obj, file, *args, **kwargs):
        Path(file).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


# ---- several processes --------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_train_like_one_over_the_same_global_batch(tmp_path):
    """torchrun with 2 CPU processes (gloo): the same losses and parameters as one process.

    Adam divides each gradient by its running RMS, so an entry whose gradient is zero up to float
    noise (a convolution's bias before BatchNorm) takes a full ±lr step of random sign, and
    parameters would differ by ~lr whatever DDP does. A large ``adam_eps`` makes every step
    proportional to its gradient, so equal parameters mean equal gradients."""
    settings = ["device=cpu", "workers=0", "batch_size=4", "epochs=1", "epoch_size=3", "n_past=2", "n_future=2",
                "val_every=0", "log_every=1", "checkpoint_every=3", "adam_eps=1e-2",
                # oneDNN's channels-last convolutions round differently for a batch of 2 and of 4;
                # the default layout isolates what DDP does.
                "memory_format=contiguous"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "slamp", "train", "--preset", "tiny", "--set", *settings]
    for name, launcher in [("one", []), ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                 "--nproc_per_node", "2", "-m"])]:
        argv = launcher + command[2:] if launcher else command
        result = subprocess.run(argv + ["--out", str(tmp_path / name)], env=env, capture_output=True, text=True,
                                timeout=600, cwd=ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
    one, two = (read_log(tmp_path / name / "train.csv") for name in ("one", "two"))
    assert list(two["step"]) == [1, 2, 3]
    assert torch.allclose(torch.tensor(one["total"]), torch.tensor(two["total"]), rtol=1e-4)
    a, b = (load_checkpoint(tmp_path / name / "last.pt") for name in ("one", "two"))
    assert b["world_size"] == 2
    for key, value in a["model"].items():
        if value.is_floating_point():
            assert torch.allclose(value, b["model"][key], atol=1e-5, rtol=1e-4), key
