"""The engine around the training loop of 05 (``slamp.train``): a :class:`TrainingRun` sets a run
up (a fresh folder or a resumed checkpoint, the model, Adam, loss scaling, DDP, the data stream,
the logs), and does what happens between updates: logging, validation with the best model kept,
checkpoints, the stop on a non-finite loss, the summary.

Plain Python: 05 teaches the loop and says what each of these does; ``tests/test_train.py`` checks
them (exact resume, the NaN guard, DDP on two CPU processes).
"""
from __future__ import annotations

import json
import math
import shutil
import signal
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from slamp.checkpoint import (
    CheckpointError,
    NonFiniteLossError,
    build_model,
    check_weights,
    load_checkpoint,
    load_model,
    load_weights,
    rng_state,
    save_checkpoint,
    saved_as_now,
    set_rng_state,
)
from slamp.config import ConfigError, TrainConfig
from slamp.console import progress_bar, say
from slamp.data.files import atomic_path
from slamp.data.stream import epoch_loader, training_sequences, validation_videos
from slamp.distributed import Distributed, global_noise, synchronise_batchnorm
from slamp.evaluate import validate
from slamp.models import VideoPredictor
from slamp.pretrained import load as load_shipped
from slamp.runlock import RUN_MARKER, RunLock, holds_a_slamp_run, mark_run_folder, writing_in
from slamp.runlog import CSVLog, sample_figure, save_figure, tensorboard_writer
from slamp.runtime import adam, autocast_dtype, keep_freed_memory, memory_format, seed_everything, select_device


# Continuing a run in a new one: `--set init_from=pretrained:slamp` (or a checkpoint's path) copies
# the trained weights into the new run's model, then trains with a fresh optimiser. Unlike
# `--resume` (an exact continuation, but the checkpoint holds Adam's moments: three times the
# weights), it needs only the shipped float16 weights: how the shipped models are trained over
# several CPU sessions.
def initialise_from(model: VideoPredictor, source: str) -> VideoPredictor:
    """Copy into ``model`` the weights of ``source``: a training checkpoint's path, or
    ``pretrained:<name>`` for a model shipped in ``slamp.pretrained``. Class and sizes must match:
    this continues a training run in a new one (fresh optimiser and schedule), e.g. spread over
    several sessions on a CPU."""
    if source.startswith("pretrained:"):
        trained = load_shipped(source.removeprefix("pretrained:"))
    else:
        trained, _ = load_model(source)
    # β weighs the loss and the output bias is only an initial value: neither is the architecture
    same = replace(trained.config, beta=model.config.beta, output_bias=model.config.output_bias) == model.config
    if type(trained) is not type(model) or not same:
        raise ConfigError(f"init_from={source!r} holds a {type(trained).__name__} {trained.config}, "
                          f"but this run trains a {type(model).__name__} {model.config}")
    model.load_state_dict(trained.state_dict())
    return model


class TrainingObjective(nn.Module):
    """``forward(x, n_past, teacher_forcing)`` → ``(total, terms)``: the model's loss as a forward,
    which is what DDP and ``torch.compile`` wrap. Process ``rank`` of ``world_size`` uses its rows
    of the global batch's latent noise (:func:`slamp.distributed.global_noise`)."""

    def __init__(self, model: VideoPredictor, rank: int = 0, world_size: int = 1, per_step: bool = False):
        super().__init__()
        self.model, self.rank, self.world_size, self.per_step = model, rank, world_size, per_step

    def forward(self, x, n_past: int, teacher_forcing: float):
        noise = global_noise(self.model, x.shape[0], x.shape[1] - 1, self.rank, self.world_size, x.device)
        total, terms, _ = self.model.loss(x, n_past, teacher_forcing, self.per_step, noise=noise)
        return total, terms


def loss_terms(model: VideoPredictor) -> list[str]:
    """The names of the loss terms ``model.loss`` returns."""
    return ["x_hat"] + (["x_p", "x_f"] if model.motion_head else []) + [f"kl_{s}" for s in model.streams]


def _grad_scaler(device: torch.device, dtype: torch.dtype | None):
    """Loss scaling, only for fp16 (its small exponent range underflows gradients)."""
    enabled = dtype == torch.float16
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)  # torch < 2.3


RUN_FILES = ("last.pt", "best.pt", "train.csv", "validation.csv", "summary.json")


class TrainingInterrupted(Exception):
    """A signal (SIGTERM, SIGINT) stopped the run after an update; ``checkpoint`` holds it. The
    command line exits with ``exit_code``, the convention of 128 + the signal's number."""

    def __init__(self, signal_number: int, checkpoint: Path, step: int):
        super().__init__(f"stopped by {signal.Signals(signal_number).name} after update {step}; "
                         f"checkpoint {checkpoint}")
        self.signal_number, self.checkpoint, self.step = signal_number, Path(checkpoint), step
        self.exit_code = 128 + signal_number


class TrainingRun:
    """One training run's state and everything around its updates; ``slamp.train.fit`` drives it.

    Holds ``model``, ``optimizer``, ``scaler`` (fp16 loss scaling), ``objective`` (the loss as a
    module: what DDP and ``torch.compile`` wrap), ``step`` (updates done), ``best_psnr``, the
    training stream and the validation clips."""

    def __init__(self, config: TrainConfig, place: Distributed = Distributed(), device=None,
                 resume=None, overwrite: bool = False):
        self.config, self.place = config, place
        self.device = torch.device(device) if device is not None else select_device(config.device)
        self.out = Path(config.out)
        self.dtype = autocast_dtype(config.amp, self.device)
        # One run per folder, before anything in it is read or removed (the main process holds it).
        self.lock = RunLock(self.out, self.say).acquire() if place.is_main else None
        try:
            if place.is_main:
                self._remove_unfinished_writes()
            self._set_up(resume, overwrite)
            self._catch_signals()
        except BaseException:
            self.close()
            raise

    def _remove_unfinished_writes(self) -> None:
        """Temporary files of writes that a killed run never finished (``.<name>.<random>.part``);
        safe to remove: this run holds the folder's lock."""
        unfinished = sorted(self.out.glob(".*.part"))
        for path in unfinished:
            path.unlink(missing_ok=True)
        if unfinished:
            self.say(f"removed {len(unfinished)} unfinished file(s) of an interrupted write in {self.out}: "
                     + ", ".join(p.name for p in unfinished[:3]))

    def close(self) -> None:
        """Give back the signal handlers and release the folder's lock (the run is over, or failed)."""
        self._release_signals()
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _set_up(self, resume, overwrite):
        config, place = self.config, self.place
        checkpoint = self._resume_point(resume, overwrite)
        seed_everything(config.seed)
        self.model = build_model(config)
        if place.enabled and config.sync_batchnorm:
            synchronise_batchnorm(self.model, self.device)
        if checkpoint is None and config.init_from:
            initialise_from(self.model, config.init_from)
        self.model.to(self.device, memory_format=memory_format(config.memory_format, self.device))
        if self.device.type == "cpu" and config.keep_freed_memory:
            keep_freed_memory()
        self.optimizer = adam(self.model.parameters(), config.lr, config.betas, config.adam_eps)
        self.scaler = _grad_scaler(self.device, self.dtype)
        self.step, self.best_psnr = 0, -math.inf
        if checkpoint is not None:
            self._restore(checkpoint)
        self.objective = self._wrap(TrainingObjective(self.model, place.rank, place.world_size,
                                                      per_step=config.per_frame_batchnorm))
        self.terms = loss_terms(self.model)
        self.sequences = training_sequences(config)
        self.validation = validation_videos(config) if place.is_main and config.val_every else None
        self._open_logs(resumed=checkpoint is not None)

    # ---- set-up ------------------------------------------------------------------------------
    def _resume_point(self, resume, overwrite):
        """The checkpoint to continue from (None for a fresh run), after checking the folder."""
        last = self.out / "last.pt"
        if resume is None or resume is False:
            if last.exists() and not overwrite:
                raise FileExistsError(f"{self.out} already holds a run ({last}); resume it, pass overwrite "
                                      f"(--overwrite), or choose another output folder")
            if self.place.is_main:
                self._claim_folder(overwrite)
            return None
        path = last if resume is True else Path(resume)
        if not path.is_file():
            raise CheckpointError(f"no checkpoint to resume at {path}")
        self.resumed_from = path
        checkpoint = load_checkpoint(path)  # on the CPU: the RNG states must stay there
        if self.place.is_main and path == last:
            mark_run_folder(self.out)  # a run from before the marker: it is slamp's
        return checkpoint

    def _claim_folder(self, overwrite: bool) -> None:
        """A fresh run: files of a run's names that no slamp run wrote (no marker) are neither
        overwritten nor deleted; with ``overwrite``, a slamp run's files are removed. Then the
        folder is marked as a run's (``runlock.mark_run_folder``)."""
        present = [name for name in (*RUN_FILES, "config.json", "samples", "tensorboard") if (self.out / name).exists()]
        if present and not holds_a_slamp_run(self.out):
            raise FileExistsError(f"{self.out} holds {', '.join(present)}, which no slamp run wrote (it has no "
                                  f"{RUN_MARKER}): slamp neither overwrites nor deletes them, with or without "
                                  f"--overwrite; choose another output folder, or move them away")
        if overwrite:
            for name in RUN_FILES:
                (self.out / name).unlink(missing_ok=True)
            shutil.rmtree(self.out / "samples", ignore_errors=True)
            shutil.rmtree(self.out / "tensorboard", ignore_errors=True)
        mark_run_folder(self.out)

    def _check_same_model(self, checkpoint) -> None:
        """A checkpoint of another model class or other sizes: one clear error instead of hundreds
        of lines of ``load_state_dict`` mismatches. β and the output bias may change on resume."""
        ours = {k: v for k, v in asdict(self.model.config).items() if k not in ("beta", "output_bias")}
        # a field added since the checkpoint was written holds its default there (skips: see saved_as_now)
        defaults = asdict(type(self.model.config)())
        their_class, their_config = saved_as_now(checkpoint["model_class"], checkpoint["model_config"])
        theirs = {k: their_config.get(k, defaults[k]) for k in ours}
        ours = {k: list(v) if isinstance(v, tuple) else v for k, v in ours.items()}
        theirs = {k: list(v) if isinstance(v, tuple) else v for k, v in theirs.items()}
        if their_class == type(self.model).__name__ and theirs == ours:
            return
        sizes = {k: (theirs.get(k), ours[k]) for k in ours if theirs.get(k) != ours[k]}
        preset = checkpoint.get("config", {}).get("model_preset", "?")
        raise CheckpointError(f"{self.resumed_from} holds a {their_class} (preset {preset}), but this run "
                              f"trains a {type(self.model).__name__} (preset {self.config.model_preset})"
                              + (f"; sizes that differ (checkpoint, run): {sizes}" if sizes else "")
                              + ": resume with the model and preset it was trained with, or start a new run")

    def _restore(self, checkpoint):
        self._check_same_model(checkpoint)
        check_weights(self.resumed_from, self.model, checkpoint["model"])
        load_weights(self.model, checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        # load_state_dict brings back the checkpoint's lr, betas and eps too; the config decides
        # them, so that resuming with `--set lr=...` really continues at the new rate (a decay stage).
        for group in self.optimizer.param_groups:
            group.update(lr=self.config.lr, betas=self.config.betas, eps=self.config.adam_eps)
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.step, self.best_psnr = int(checkpoint["step"]), float(checkpoint["best_psnr"])
        set_rng_state(checkpoint["rng"])
        changed = {k: (v, getattr(self.config, k)) for k, v in checkpoint["config"].items()
                   if k in TrainConfig.__dataclass_fields__ and v != getattr(self.config, k)}
        if changed:
            self.say(f"resuming with config changes (checkpoint -> now): {changed}")

    def _wrap(self, objective):
        if self.place.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            objective = nn.parallel.DistributedDataParallel(objective, device_ids=ids)
        if self.config.compile:
            objective = torch.compile(objective)
        return objective

    def _open_logs(self, resumed: bool):
        self.writer = None
        if not self.place.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        since = self.step if resumed else None
        with writing_in(self.out, "config.json"), atomic_path(self.out / "config.json") as temporary:
            temporary.write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        with writing_in(self.out, "the logs"):
            self.train_log = CSVLog(self.out / "train.csv", ["step", "epoch", "teacher_forcing", "total", *self.terms,
                                                             "updates_per_second"], since, self.say)
            self.val_log = CSVLog(self.out / "validation.csv", ["step", "epoch", "psnr_best", "psnr_mean",
                                                                "ssim_best", "ssim_mean", "seconds"], since, self.say)
        self.writer = tensorboard_writer(self.out / "tensorboard")

    def say(self, message: str) -> None:
        if self.place.is_main:
            say(message)

    # ---- around the updates -------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.config.epoch_size

    def begin(self, stop_after: int | None = None) -> int:
        """Say what this run trains, open the progress bar and start the clock; returns the update
        to stop after (``stop_after``, or the end of the schedule)."""
        c, end = self.config, min(self.total_steps, stop_after or self.total_steps)
        self.say(f"training {type(self.model).__name__} ({self.model.num_parameters() / 1e6:.2f} M parameters) "
                 f"on {c.dataset}, {self.place.world_size} process(es) on {self.device}, "
                 f"autocast {self.dtype}, updates {self.step} -> {end}, writing to {self.out}")
        self.progress = progress_bar(total=self.total_steps, initial=self.step, disable=not self.place.is_main,
                             dynamic_ncols=True)
        self.end, self.first, self.busy = end, self.step, 0.0
        self.started = self.tick = time.perf_counter()
        return end

    def batches(self, epoch: int, start: int):
        """This process's batches ``(B / processes, T, C, H, W)`` of updates ``start..`` of ``epoch``,
        on the run's device."""
        self.progress.set_description(f"epoch {epoch}")
        self.tick = time.perf_counter()
        for batch in epoch_loader(self.sequences, self.config, epoch, start, self.place.rank, self.place.world_size,
                                  pin_memory=self.device.type == "cuda"):
            yield batch.to(self.device, non_blocking=True)

    def stop_if_not_finite(self, total, terms) -> None:
        """Raise :class:`NonFiniteLossError` when the loss is not finite in any process (all must
        stop together, or the others hang in backward), before the model changes."""
        finite = torch.isfinite(total.detach()).float()
        if self.place.enabled:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if finite.item():
            return
        last = self.out / "last.pt"
        kept = "no checkpoint was written yet"
        if last.is_file():
            saved = load_checkpoint(last)
            largest = max(value.abs().max().item() for value in saved["model"].values()
                          if torch.is_tensor(value) and value.is_floating_point() and value.numel())
            kept = (f"the last good checkpoint is {last} (update {saved['step']}; finite, largest weight "
                    f"{largest:.3g}{': already blown up, go back further' if largest > 1e3 else ''})")
        values = {k: f"{v.item():.4g}" for k, v in terms.items()}
        raise NonFiniteLossError(f"the loss is {total.item()} at update {self.step + 1} (terms {values}); stopped "
                                 f"before updating the model. {kept}; resume from it with a lower lr "
                                 f"(--set lr=...) or amp=off.")

    def log(self, epoch, p_true, total, terms, rate):
        values = torch.stack([total.float()] + [terms[name].float() for name in self.terms])
        if self.place.enabled:  # the mean over processes is the loss of the global batch
            dist.all_reduce(values)
            values = values / self.place.world_size
        if not self.place.is_main:
            return
        numbers = dict(zip(["total", *self.terms], values.tolist()))
        row = {"step": self.step, "epoch": epoch, "teacher_forcing": p_true, **numbers, "updates_per_second": rate}
        with writing_in(self.out, "train.csv"):
            self.train_log.append(row)
        self.progress.set_postfix({k: f"{v:.3g}" for k, v in numbers.items()}, refresh=False)
        if self.writer is not None:
            for name, value in numbers.items():
                self.writer.add_scalar(f"train/{name}", value, self.step)
            self.writer.add_scalar("train/teacher_forcing", p_true, self.step)

    def after_update(self, epoch: int, p_true: float, total, terms) -> None:
        """Everything between two updates: count the update; the log every ``log_every`` updates and
        at the end; validation every ``val_every`` updates and at the end; ``last.pt`` every
        ``checkpoint_every``, at the end and at the stop of ``begin``. After a SIGTERM or SIGINT:
        ``last.pt`` now, then :class:`TrainingInterrupted`."""
        c, end = self.config, self.end
        self.step += 1
        self.progress.update()
        self.busy += time.perf_counter() - self.tick
        if self.step % c.log_every == 0 or self.step == end:
            self.log(epoch, p_true, total, terms, (self.step - self.first) / max(self.busy, 1e-9))
        if c.val_every and (self.step % c.val_every == 0 or self.step == self.total_steps):
            self.validate()
        stop = self._stop_requested()
        if self.step % c.checkpoint_every == 0 or self.step >= end or stop:
            self.checkpoint(self.out / "last.pt")
        if stop:
            name = signal.Signals(stop).name
            self.say(f"stopped by {name} after update {self.step}: wrote {self.out / 'last.pt'}; continue with "
                     f"`slamp train --resume --out {self.out}` (the same run, exactly)")
            raise TrainingInterrupted(stop, self.out / "last.pt", self.step)
        self.tick = time.perf_counter()

    # ---- signals: a cluster's SIGTERM before pre-emption, Ctrl-C ----------------------------------
    def _catch_signals(self) -> None:
        """SIGTERM and SIGINT ask the run to stop after the update under way (a second Ctrl-C stops
        at once). Only the main thread can take signals; elsewhere nothing changes."""
        self._signal, self._handlers = 0, {}
        if threading.current_thread() is not threading.main_thread():
            return

        def ask_to_stop(number, frame):
            if self._signal and number == signal.SIGINT:  # a second Ctrl-C: stop now
                raise KeyboardInterrupt
            self._signal = number
            self.say(f"{signal.Signals(number).name}: stopping after this update and writing a checkpoint")

        for number in (signal.SIGTERM, signal.SIGINT):
            self._handlers[number] = signal.signal(number, ask_to_stop)

    def _release_signals(self) -> None:
        for number, handler in getattr(self, "_handlers", {}).items():
            signal.signal(number, handler)
        self._handlers = {}

    def _stop_requested(self) -> int:
        """The signal that asked to stop (0: none), agreed by every process of a DDP run."""
        stop = getattr(self, "_signal", 0)
        if self.place.enabled:  # all processes must stop after the same update, or they hang
            flag = torch.tensor([float(stop)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = int(flag.item())
        return stop

    def validate(self):
        if self.place.is_main:
            c, started = self.config, time.perf_counter()
            metrics, example = validate(self.model, self.validation, c.n_past, c.val_n_future, c.val_samples,
                                        c.val_batch_size, self.device, self.dtype,
                                        seed=c.seed if c.val_seed is None else c.val_seed)
            seconds = time.perf_counter() - started
            epoch = (self.step - 1) // c.epoch_size
            self.val_log.append({"step": self.step, "epoch": epoch, **metrics, "seconds": seconds})
            figure = sample_figure(example["truth"], example["samples"], c.n_past, example["psnr"],
                                   title=f"update {self.step}: futures from the learned prior")
            save_figure(figure, self.out / "samples" / f"step_{self.step:07d}.png")
            if self.writer is not None:
                for name, value in metrics.items():
                    self.writer.add_scalar(f"validation/{name}", value, self.step)
                self.writer.add_figure("validation/samples", figure, self.step)
            improved = metrics["psnr_best"] > self.best_psnr
            self.say(f"update {self.step}: validation PSNR {metrics['psnr_best']:.2f} dB best-of-{c.val_samples} "
                      f"({metrics['psnr_mean']:.2f} mean), SSIM {metrics['ssim_best']:.4f} ({seconds:.1f} s)"
                      + (" -- new best" if improved else ""))
            if improved:
                self.best_psnr = metrics["psnr_best"]
                self.checkpoint(self.out / "best.pt")
        if self.place.enabled:
            # Every process tracks the best score, so that any of them could write the checkpoint.
            best = torch.tensor([self.best_psnr], dtype=torch.float64, device=self.device)  # NCCL: on the GPU
            dist.broadcast(best, 0)
            self.best_psnr = best.item()

    def checkpoint(self, path):
        if self.place.is_main:
            c = self.config
            state = {
                "step": self.step, "config": c.to_dict(), "model_class": type(self.model).__name__,
                "model_config": asdict(self.model.config), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": rng_state(), "best_psnr": self.best_psnr, "world_size": self.place.world_size,
                # The stream is a function of the step; recorded so a reader can see where it stood.
                "data": {"epoch": self.step // c.epoch_size, "update_in_epoch": self.step % c.epoch_size,
                         "sequences_seen": self.step * c.batch_size}}
            with writing_in(self.out, Path(path).name):  # a full disk: the previous checkpoint is still there
                save_checkpoint(path, state)
        if self.place.enabled:
            dist.barrier()

    def finish(self) -> dict:
        """Close the progress bar; write and return the summary of the run."""
        self.progress.close()
        first, seconds = self.first, time.perf_counter() - self.started
        summary = {"updates": self.step, "updates_this_run": self.step - first,
                   "updates_per_second": (self.step - first) / max(self.busy, 1e-9), "seconds": seconds,
                   "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
                   "last": str(self.out / "last.pt"),
                   "best": str(self.out / "best.pt") if (self.out / "best.pt").is_file() else None,
                   "device": str(self.device), "processes": self.place.world_size}
        if self.place.is_main:
            with writing_in(self.out, "summary.json"), atomic_path(self.out / "summary.json") as temporary:
                temporary.write_text(json.dumps(summary, indent=2) + "\n")
            if self.writer is not None:
                self.writer.close()
        return summary


__all__ = ["initialise_from", "TrainingObjective", "loss_terms", "adam", "RUN_FILES", "TrainingInterrupted", "TrainingRun"]
