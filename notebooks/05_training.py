# %% [markdown]
# # 05 · Training: the loop, the paper's recipes, scheduled sampling
#
# `00_elbo` derived the objective and `03_slamp_baseline`/`04_slamp` built the models; what is left
# is to *minimise* the loss of `00` (the negative ELBO of the paper's Eq. 3, as the public code scales it),
#
# $$\text{loss} = \sum_{t} \underbrace{\mathrm{MSE}_t(x^p) + \mathrm{MSE}_t(x^f)
#   + \mathrm{MSE}_t(\hat x)}_{\text{the three image terms}}
#   + \beta \big(\mathrm{KL}^p_t + \mathrm{KL}^f_t\big),$$
#
# where $\mathrm{MSE}_t(x^p) = \frac1D\lVert x^p_t - x_t\rVert^2$ is the mean over the $D$ numbers
# of a frame, as in §5 of `00_elbo` (which is why β means pixel noise $\sigma^2 = \beta D/2$),
# by stochastic gradient descent over random training clips, with Adam. This notebook teaches the
# three things the paper says about it (Sec. 4 and App. C.3):
#
# 1. **the loop**: one update is a loss, a backward pass and an Adam step; the loop fits on a screen;
# 2. **the recipes**: batch size, learning rate, β, clip length and schedule per dataset;
# 3. **scheduled sampling** (the paper's App. C.3 uses it on KTH; the public code's README also
#    trains BAIR with it), which slowly replaces true input frames by the model's own predictions.
#
# What turns the loop into a tool (resuming exactly, several GPUs, logs, validation, checkpoints)
# is engineering, not the paper: it lives in plain modules (`slamp.config`, `slamp.data.stream`,
# `slamp.distributed`, `slamp.checkpoint`, `slamp.runlog`, `slamp.run`), and the end of this
# notebook says in a paragraph each what they do and checks the claims that matter.

# %%
# Setup. On Colab, install slamp from its repository (it carries its trained models, so nothing
# else is downloaded; SLAMP_REPO overrides where from). Then seed, and pick the GPU when present.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("slamp") is None and "google.colab" in sys.modules:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           os.environ.get("SLAMP_REPO", "git+https://github.com/slamp-project/slamp")])

from slamp.notebook import setup

device = setup()  # "cuda" or "cpu"

# %%
#| default_exp train

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

SMOKE = os.environ.get("SLAMP_SMOKE", "0") == "1"  # small settings for CI
WORK = Path(tempfile.mkdtemp(prefix="slamp-05-"))  # scratch space for the runs this notebook makes
torch.manual_seed(0);

# %% [markdown]
# ## One update
#
# `train_step` is all of the optimisation: the loss of a batch of clips `x` `(B, T, C, H, W)`
# (the first `n_past` frames condition, the rest are predicted), computed under autocast on a GPU;
# a check before anything changes (training stops on a non-finite loss rather than writing NaN
# weights); then backward and the Adam step. `scaler` is PyTorch's gradient scaler, a no-op
# except in fp16 (whose small exponent range would underflow the gradients). `objective` is the
# model's `loss` wrapped as a module (`slamp.run.TrainingObjective`), because DDP synchronises
# gradients only through a `forward` and `torch.compile` compiles one.

# %%
#| export
"""Training (05): one update, the loop, scheduled sampling; `train` runs a config end to end.
The engine around the loop is ``slamp.run``; configs and presets are ``slamp.config``."""
import math

import torch

from slamp.config import TrainConfig
from slamp.distributed import init_distributed


def train_step(objective, optimizer, scaler, x: torch.Tensor, n_past: int, teacher_forcing: float,
               dtype: torch.dtype | None = None, check=None) -> tuple[torch.Tensor, dict]:
    """One update on clips ``x`` ``(B, T, C, H, W)``. ``check(total, terms)`` may raise before the
    model changes. Returns the loss and its terms, detached."""
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        total, terms = objective(x, n_past, teacher_forcing)
    if check is not None:
        check(total, terms)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()  # DDP averages the gradients of the processes here
    scaler.step(optimizer)
    scaler.update()
    return total.detach(), {name: value.detach() for name, value in terms.items()}

# %% [markdown]
# **Check.** Two updates on one batch with a `tiny` SLAMP: every parameter moves, and the loss of
# the batch falls.

# %%
from slamp.models import SLAMP
from slamp.run import TrainingObjective, adam

model = SLAMP.from_preset("tiny")
objective, optimizer = TrainingObjective(model), adam(model.parameters(), lr=1e-3)
scaler = torch.amp.GradScaler("cpu", enabled=False)
x = torch.rand(4, 6, 1, 64, 64)  # (B, T, C, H, W)
before = [p.detach().clone() for p in model.parameters()]
first, terms = train_step(objective, optimizer, scaler, x, n_past=2, teacher_forcing=1.0)
second, _ = train_step(objective, optimizer, scaler, x, n_past=2, teacher_forcing=1.0)
moved = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
print(f"loss {first.item():.4f} -> {second.item():.4f}; terms {sorted(terms)}; "
      f"{moved} of {len(before)} parameter tensors moved")
assert second < first and moved == len(before)

# %% [markdown]
# ## Scheduled sampling
#
# *Paper: App. C.1, and Table 3 (its ablation on KTH).*
#
# Under teacher forcing the model always reads the *true* previous frame, but at test time it
# reads its own predictions, whose small errors it has never seen. Scheduled sampling (Bengio et
# al., 2015) closes the gap slowly: after the conditioning frames, each step reads the true frame
# with probability $p$ and the model's own (detached) prediction otherwise, and $p$ decays with
# the epoch $e$ along an inverse sigmoid,
#
# $$p(e) = \frac{k}{k + \exp(e / k)},$$
#
# which stays near 1 for the first epochs, crosses ½ at $e = k \ln k$ ($\approx 80$ epochs for the
# public code's $k = 25$), and is almost 0 by the end of 300 epochs. As in the public code, one coin
# per step decides for the whole batch; $k = 0$ switches it off. A step that may read a prediction
# cannot be batched over time, so with $p < 1$ the model runs its step-by-step path.

# %% [markdown]
# **Exercise: `teacher_forcing_probability`**
#
# Write `teacher_forcing_probability`: the probability $p(e)$ above of reading the true frame
# in epoch `epoch`, the inverse-sigmoid decay with constant `k`; `k = 0` switches scheduled
# sampling off. Returns a float in [0, 1]. Checked at epochs 0, 25, 80, 299 for k = 25, with k = 0,
# and at an epoch so late that `math.exp` would overflow.
#
# The cell after the function runs the grader's own checks on it,
# `check(teacher_forcing_probability)`: it prints ✓ when they pass, or ✗ and the hint the grader
# gives for the mistake it finds, and stops there.

# %%
#| export
def teacher_forcing_probability(epoch: int, k: float) -> float:
    """Probability that a step reads the true previous frame in ``epoch`` (counted from 0): the
    inverse-sigmoid decay with constant ``k`` (App. C.1); 1 (teacher forcing) when ``k == 0``."""
    # BEGIN SOLUTION teacher_forcing_probability
    if k == 0:
        return 1.0
    if epoch / k > 700:  # exp would overflow; the probability is 0 to double precision anyway
        return 0.0
    return k / (k + math.exp(epoch / k))
    # END SOLUTION


# %%
from slamp.exercises import check
from slamp.notebook import use

check(teacher_forcing_probability)  # the grader's checks: ✓, or ✗ and its hint for the mistake found (the run stops)
use(teacher_forcing_probability)  # from here on the package runs this teacher_forcing_probability: in a student's notebook, yours

# %%
import math

from slamp.train import teacher_forcing_probability

epochs = range(300)
fig, ax = plt.subplots(figsize=(5, 2.6))
for k in [10, 25, 50]:
    ax.plot(epochs, [teacher_forcing_probability(e, k) for e in epochs], label=f"k = {k}")
ax.axhline(0.5, color="grey", lw=0.5)
ax.set(xlabel="epoch", ylabel="p (true frame)", title="inverse-sigmoid decay")
ax.legend()
fig.tight_layout()
half = 25 * math.log(25)  # where p crosses 1/2
print(f"k = 25: p(0) = {teacher_forcing_probability(0, 25):.3f}, p({half:.0f}) = "
      f"{teacher_forcing_probability(half, 25):.3f}, p(299) = {teacher_forcing_probability(299, 25):.1e}")
assert abs(teacher_forcing_probability(half, 25) - 0.5) < 1e-12 and teacher_forcing_probability(7, 0) == 1

# %% [markdown]
# ## The loop
#
# An epoch is `epoch_size` updates (1,000 in the paper); each reads the true previous frame with
# the epoch's probability $p(e)$. `fit` is the whole of training: the objective, the optimiser,
# the loss scaler and the clips come from `run` (a `slamp.run.TrainingRun`, which sets them up from
# a config, or from a checkpoint to resume), and every update is `train_step` above. What happens
# between updates is one hook, `run.after_update`: count the update, write the log every
# `log_every`, validate every `val_every`, write a checkpoint every `checkpoint_every`, and stop
# cleanly on a signal. `train` below sets a run up from a config and calls `fit`.

# %%
#| export
def fit(run, stop_after: int | None = None) -> dict:
    """Train ``run`` (a :class:`slamp.run.TrainingRun`) until ``epochs * epoch_size`` updates, or
    until update ``stop_after`` (then write a checkpoint and return). Returns the summary."""
    objective, optimizer, scaler, config = run.objective, run.optimizer, run.scaler, run.config
    end = run.begin(stop_after)  # the last update of this call; says what it trains, starts the clock
    while run.step < end:
        epoch, start = divmod(run.step, config.epoch_size)
        p_true = teacher_forcing_probability(epoch, config.scheduled_sampling_k)
        for x in run.batches(epoch, start):  # clips (B, T, C, H, W) on the run's device
            total, terms = train_step(objective, optimizer, scaler, x, config.n_past, p_true, run.dtype,
                                      check=run.stop_if_not_finite)
            run.after_update(epoch, p_true, total, terms)  # log, validate, checkpoint, signals
            if run.step >= end:
                break
    return run.finish()

def train(config: TrainConfig, resume=None, stop_after: int | None = None, overwrite: bool = False) -> dict:
    """Run (or continue) training as ``config`` says; inside ``torchrun`` as one of its processes.

    ``resume``: True for ``<out>/last.pt``, or a checkpoint path; the run then continues exactly
    where the checkpoint stood. ``stop_after``: stop after that many updates in all (a checkpoint is
    written). ``overwrite``: start afresh in a folder that holds a run. Returns the summary of
    :func:`fit`."""
    from slamp.run import TrainingRun  # the engine (imported here: it needs the evaluation protocol)

    place, device, created = init_distributed(config.device)
    run = None
    try:
        run = TrainingRun(config, place, device, resume=resume, overwrite=overwrite)
        return fit(run, stop_after)
    finally:
        if run is not None:
            run.close()  # the folder's lock: another run may use it now
        if created:
            torch.distributed.destroy_process_group()

# %% [markdown]
# ## The paper's recipes
#
# One config, `slamp.config.TrainConfig`, holds every choice of a run; it is frozen and checks
# itself when it is made, so a typo or a bad value fails at once with a message naming the field.
# `TrainConfig.preset(name)` gives the paper's recipe for each dataset, read from that dataset's
# spec (`slamp.registry`). From the paper (Sec. 4, App. C.3) and the public code's README:
#
# * Adam with $(\beta_1, \beta_2) = (0.9, 0.999)$; 300 epochs of 1,000 updates;
# * Moving MNIST: batch 32, learning rate $3\cdot10^{-4}$, β $10^{-4}$, clips of 5 + 10 frames;
#   then a **fine-tuning stage** at learning rate $10^{-5}$, β $5\cdot10^{-5}$, $\beta_1 = 0.7$
#   (`mnist_finetune`, started from the trained model with `--set init_from=PATH`; the paper does
#   not say for how long: 50 epochs is our choice);
# * KTH: batch 20, $10^{-4}$, β $10^{-6}$, 10 + 10 frames, scheduled sampling with $k = 25$;
#   BAIR: batch 20, $10^{-4}$, β $10^{-4}$, 2 + 10 frames. The paper (App. C.3) names scheduled
#   sampling for KTH only; the public code's README trains BAIR with $k = 25$ too, and so does our
#   `bair` preset (set `scheduled_sampling_k=0` for the paper's wording);
# * KITTI and Cityscapes: batches of 8 and 7, $10^{-4}$, 10 + 10 frames, **until 2.4 M video
#   samples have been seen**: 300,000 and 343,000 updates (300 and 343 epochs of 1,000).
#
# `tiny` and `cpu` are ours: the `tiny` model on 2 + 4-frame clips, about 1 s an update on two CPU
# cores, shows in a few minutes that the loop runs and the losses fall (its 200 updates below give a
# blur, not digits); `cpu` trains the shipped models: 6,750 updates each, and the shipped SLAMP was
# then trained on from those weights with the same preset at lower learning rates (the README's
# "Trained models" says how long).

# %%
from slamp.config import ConfigError, TrainConfig, apply_overrides, training_presets

shown = ["model_preset", "n_past", "n_future", "batch_size", "lr", "beta", "epochs", "scheduled_sampling_k"]
print(f"{'preset':>14} " + " ".join(f"{name[:12]:>12}" for name in shown))
for name, preset in training_presets().items():
    print(f"{name:>14} " + " ".join(f"{str(getattr(preset, field)):>12}" for field in shown))
for name in ("kitti", "cityscapes"):  # App. C.3: until 2.4 M video samples are seen
    recipe = TrainConfig.preset(name)
    assert abs(recipe.epochs * recipe.epoch_size * recipe.batch_size - 2.4e6) < 1e4 and recipe.lr == 1e-4

# %% [markdown]
# (β `None` means the model preset's: $10^{-4}$ for MNIST and BAIR, $10^{-6}$ for KTH.)
# Overrides come as values or as `field=value` text (what `slamp train --set ...` passes), and
# every mistake gets a message that says what was expected:

# %%
config = apply_overrides(TrainConfig.preset("tiny"), ["lr=2e-3", "batch_size=8", "betas=0.5,0.99"])
print(config.lr, config.batch_size, config.betas)
for bad in [["lrr=1e-3"], ["batch_size=eight"], ["batch_size=0"], ["model=gan"], ["model_preset=bair"]]:
    try:
        apply_overrides(config, bad)
        raise AssertionError(f"{bad} was accepted")
    except ConfigError as error:
        print(f"{bad[0]:>20} -> {error}")

# %% [markdown]
# ## Training
#
# On a GPU (Colab: *Runtime → Change runtime type*), this cell trains the paper's Moving MNIST
# model for a few epochs (set `EPOCHS = 300` for the paper's schedule); on a CPU it runs the `tiny`
# preset, and under CI (`SLAMP_SMOKE=1`) a handful of updates of it. From a shell the same runs are
#
# ```bash
# slamp train --preset tiny --out runs/tiny                      # a few minutes on a CPU
# slamp train --preset mnist --set epochs=20 --out runs/mnist    # on a GPU
# torchrun --nproc_per_node 4 -m slamp train --preset kth        # four GPUs, one global batch of 20
# slamp train --resume --out runs/tiny                           # continue where last.pt stood
# ```

# %%
from slamp.runlog import plot_training
from slamp.train import train

if SMOKE:
    config = TrainConfig.preset("tiny", epochs=1, epoch_size=6, log_every=1, val_every=6, val_sequences=4,
                                val_samples=2, val_n_future=4, batch_size=8, out=str(WORK / "tiny"))
elif torch.cuda.is_available():
    EPOCHS = 10  # the paper: 300 (about 300k updates)
    config = TrainConfig.preset("mnist", epochs=EPOCHS, val_every=1000, val_sequences=64, out="runs/05_training_mnist")
else:
    config = TrainConfig.preset("tiny", out="runs/05_training_tiny")
summary = train(config, overwrite=True)
print({k: summary[k] for k in ["updates", "updates_per_second", "best_psnr", "device"]})
assert Path(summary["last"]).is_file() and summary["updates"] == config.epochs * config.epoch_size

# %% [markdown]
# The loss curves of the run stored here: the reconstruction terms fall (`x_p` from about 0.6 to
# 0.15) as the model learns to paint the background and a blur where the digits are. Of the KL
# terms only the motion one moves: near 0 for the first 70 or so updates, it rises to about 13 nats
# by update 135 (the motion posterior starts to carry what its prior cannot predict) and is still
# moving, about 10, when the run stops at 200. The appearance KL stays near 0 throughout: the
# posterior of $z^p$ says nothing its prior does not, so $z^p$ carries no information (a *posterior
# collapse* of the appearance stream; the shipped model's $z^p$, too, varies on one of its 20
# dimensions only, `07_latents`).

# %%
plot_training(config.out, smooth=1 if SMOKE else 5)

# %% [markdown]
# Futures drawn from the learned prior by the best model, for a validation sequence (the sample
# with the highest PSNR first):

# %%
from slamp.checkpoint import load_model
from slamp.data.stream import validation_videos
from slamp.evaluate import validate
from slamp.runlog import sample_figure

best, _ = load_model(Path(config.out) / "best.pt")
videos = validation_videos(config)
metrics, example = validate(best, videos, config.n_past, config.val_n_future, num_samples=4)
print({k: round(v, 3) for k, v in metrics.items()})
sample_figure(example["truth"], example["samples"], config.n_past, example["psnr"], title="best model")

# %% [markdown]
# After 200 updates the model does not follow the digits yet: in the run stored here its four
# samples are the same blur (14.4 to 14.5 dB), which stays near where the digits were last seen and
# fades. Its validation SSIM, 0.09, is far below what an all-black frame scores (0.72 on the test
# sequences of `06_evaluation`): SSIM punishes the grey haze on the black background that PSNR
# hardly sees. The shipped models, trained with the `cpu` preset for thousands of updates, carry
# the digits a few frames into the future before they blur (`06_evaluation` shows them).

# %% [markdown]
# ## The engine, briefly
#
# Everything below is plain Python in `slamp/`, with its own tests; each paragraph says what a
# module guarantees and, where it matters, checks it here.
#
# **The data stream** (`slamp.data.stream`). To resume a run *exactly*, the trainer must produce
# "the batches after update $n$" without replaying the first $n$, so the stream is defined by
# position: the $i$-th clip of epoch $e$ is a function of (seed, $e$, $i$) alone. Stochastic Moving
# MNIST is generated on the fly from those numbers (`02_data`); a dataset of clips is walked through
# one seeded permutation per pass. Update $j$ of an epoch reads the **global batch** of clips
# $jB, \dots, jB + B - 1$; with $W$ processes, process $r$ takes the $r$-th of $W$ equal slices.
# Two processes' slices concatenate to the one-process batch, and a loader started at update 3
# yields what an uninterrupted one yields from update 3 on:

# %%
from slamp.data.stream import epoch_loader, training_sequences

small = TrainConfig.preset("tiny", batch_size=4, epoch_size=5, workers=0)
sequences = training_sequences(small)
whole = list(epoch_loader(sequences, small, epoch=1, start=0))
halves = [list(epoch_loader(sequences, small, epoch=1, start=0, rank=r, world_size=2)) for r in range(2)]
resumed = list(epoch_loader(sequences, small, epoch=1, start=3))
print(f"{len(whole)} batches of {tuple(whole[0].shape)}; each process gets {tuple(halves[0][0].shape)}")
assert all(torch.equal(torch.cat([a, b]), w) for a, b, w in zip(*halves, whole))
assert all(torch.equal(a, b) for a, b in zip(resumed, whole[3:])) and len(resumed) == 2
assert not torch.equal(whole[0], list(epoch_loader(sequences, small, epoch=2, start=0))[0])  # epochs differ

# %% [markdown]
# **Devices and precision** (`slamp.runtime`). `device="auto"` picks CUDA when present, else the
# CPU. On a GPU the step runs under autocast: bf16 on Ampere and later (no loss scaling needed),
# fp16 with the gradient scaler before that (Colab's T4); the losses are computed in float32
# either way. `compile=True` hands the objective to `torch.compile`.
#
# **Several GPUs** (`slamp.distributed`). `torchrun --nproc_per_node N -m slamp train ...` starts
# $N$ processes, each with a replica of the model and its slice of the global batch; DDP averages
# the gradients. To get **the same run** as on one process, to float precision: every process
# draws the latent noise of the *global* batch (one shared seed) and keeps its own rows (the
# objective passes them to `loss(..., noise=...)`), and
# BatchNorm normalises over the global batch (`SyncBatchNorm` on GPUs; on CPUs `GlobalBatchNorm`,
# a differentiable all-reduce of the moments). `tests/test_train.py` runs two CPU processes
# against one. Without a second process: "process 1 of 2" gets the second half of the noise that
# one process draws for the global batch.

# %%
from slamp.distributed import global_noise

model = SLAMP.from_preset("tiny")
torch.manual_seed(5)
full = model.draw_noise(8, 3)  # one process, the global batch of 8
torch.manual_seed(5)
half = global_noise(model, 4, 3, rank=1, world_size=2)  # process 1 of 2: its 4 rows
assert all(torch.equal(half[s], full[s][4:]) for s in full)
print({s: tuple(v.shape) for s, v in half.items()}, "= rows 4..7 of the one-process draw")

# %% [markdown]
# **Checkpoints** (`slamp.checkpoint`). A checkpoint holds what the next update depends on: the
# model, Adam's moments, the gradient scaler, the update count (which fixes the epoch, the place in
# the stream and $p(e)$), the config, the best validation score and the state of every random
# generator. It is written atomically (a temporary file renamed over the target) and read with
# `torch.load(weights_only=True)`, which refuses to run code from a file.
#
# **Validation and logs** (`slamp.evaluate.validate`, `slamp.runlog`). Every `val_every` updates
# the main process draws `val_samples` futures of held-out clips from the learned prior and scores
# them by the protocol of `06` (best of N by PSNR and SSIM averaged over frames); `best.pt` keeps
# the best model. Losses go to `train.csv` (and TensorBoard when installed), validation scores to
# `validation.csv`; a resumed run drops the rows written after its last checkpoint.
#
# **A resumed run continues exactly.** Train 6 updates with scheduled sampling (so the coins must
# come out the same too) in one go; train the same config again but stop after 4, then resume:
# updates 5 and 6 have bit-identical losses.

# %%
from dataclasses import replace

from slamp.runlog import read_log

check = TrainConfig.preset("tiny", epochs=2, epoch_size=3, batch_size=4, n_past=2, n_future=2, log_every=1,
                           val_every=0, scheduled_sampling_k=1.0)
train(replace(check, out=str(WORK / "straight")), overwrite=True)
stopped = replace(check, out=str(WORK / "stopped"))
train(stopped, stop_after=4, overwrite=True)
train(stopped, resume=True)
straight, resumed = read_log(WORK / "straight" / "train.csv"), read_log(WORK / "stopped" / "train.csv")
print("straight:", straight["total"].round(5), "\nresumed: ", resumed["total"].round(5))
assert list(resumed["step"]) == [1, 2, 3, 4, 5, 6] and (straight["total"] == resumed["total"]).all()

# %% [markdown]
# **A damaged checkpoint gets a clear error**, not a stack trace from deep inside `torch.load`:

# %%
from slamp.checkpoint import CheckpointError, load_checkpoint

damaged = WORK / "damaged.pt"
damaged.write_bytes((WORK / "stopped" / "last.pt").read_bytes()[:5000])
for path in [damaged, WORK / "stopped" / "train.csv"]:
    try:
        load_checkpoint(path)
        raise AssertionError("no error")
    except CheckpointError as error:
        print(error)

# %% [markdown]
# ## Exercises and what to try next
#
# The exercise of this notebook: **`teacher_forcing_probability`** (the inverse-sigmoid decay,
# with `k = 0` switching it off).
#
# * A β sweep: train the `tiny` preset with `--set beta=1e-5`, `1e-4`, `1e-3` (a few minutes each on
#   a CPU) and compare the KL curves and the validation PSNR. Which β makes the samples differ?
# * Scheduled sampling on Moving MNIST: `--set scheduled_sampling_k=2` (a fast decay for a short
#   run) against `0`. Do the futures drift less?
# * Resume a run with `--set lr=...` (a decay stage) and check in `train.csv` that nothing else
#   changed.

# %% [markdown]
# ## Summary
#
# * `train_step` (one update) and `fit` (the loop) are all of the optimisation; `train(config)`
#   runs a config end to end, on one process or inside `torchrun`.
# * The paper's recipes are `TrainConfig.preset("mnist" | "kth" | "bair" | "kitti" | "cityscapes")`
#   and `mnist_finetune`; ours are `tiny` and `cpu`. Every field can be overridden
#   (`slamp train --set field=value`).
# * Scheduled sampling: `teacher_forcing_probability(epoch, k)`, the inverse-sigmoid decay.
# * The engine, plain Python with its own tests: `slamp.config`, `slamp.data.stream` (resumable,
#   the same on any number of processes), `slamp.distributed`, `slamp.checkpoint`, `slamp.runlog`,
#   `slamp.run`; validation is `slamp.evaluate.validate`, the protocol of `06`.
# * From a shell: `slamp train --preset tiny`; `torchrun --nproc_per_node N -m slamp train ...`.
# * Next: the paper's evaluation protocol (`06_evaluation`).
