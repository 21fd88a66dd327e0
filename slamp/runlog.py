"""What a run leaves for people to read: CSV logs (and TensorBoard when installed), figures of
sampled futures, and the training curves.

Plain Python; 05 shows the curves and the samples of its run.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from slamp.data.files import atomic_path
from slamp.renamed import LOSS_TERMS, renamed_columns


def sample_figure(truth: torch.Tensor, samples: torch.Tensor, n_past: int, psnrs=None, max_frames: int = 12,
                  title: str = "") -> Figure:
    """The true video ``(T, C, H, W)`` (conditioning frames, then the future) above sampled futures
    ``(S, F, C, H, W)``, best PSNR first; at most ``max_frames`` columns (``slamp.viz.show_futures``)."""
    from slamp.viz import show_futures

    order = torch.argsort(torch.as_tensor(psnrs), descending=True).tolist() if psnrs is not None else range(len(samples))
    columns = min(truth.shape[0], max_frames)
    labels = [f"sample {k + 1}" + (f" ({float(psnrs[k]):.1f} dB)" if psnrs is not None else "") for k in order]
    return show_futures(truth[:columns], [samples[k][:columns - n_past] for k in order], labels, n_past, title=title)


def save_figure(figure: Figure, path) -> Path:
    """Write a figure as PNG, atomically."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=80)
    return Path(path)


class CSVLog:
    """Rows appended to a CSV file, flushed at once. With ``resume_step``, an existing file keeps
    its rows up to that step; otherwise it is started afresh."""

    def __init__(self, path, columns: list[str], resume_step: int | None = None, say=print):
        self.path, self.columns = Path(path), list(columns)
        kept = []
        if resume_step is not None and self.path.is_file():
            kept, damaged = rows_until(self.path, resume_step)
            if damaged:  # the checkpoint holds the run's state; these rows are only its record
                say(f"{self.path}: dropped {len(damaged)} damaged row(s) (line(s) {', '.join(map(str, damaged[:5]))}"
                    f"{' ...' if len(damaged) > 5 else ''}) while resuming; the training state is unaffected")
        with atomic_path(self.path) as temporary, open(temporary, "w", newline="") as file:
            writer = csv.DictWriter(file, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    def append(self, row: dict) -> None:
        with open(self.path, "a", newline="") as file:
            csv.DictWriter(file, self.columns, extrasaction="ignore").writerow(
                {k: repr(v) if isinstance(v, float) else v for k, v in row.items()})  # repr: exact round trip


def rows_until(path, last_step: int) -> tuple[list[dict], list[int]]:
    """The complete rows of a CSV log up to ``last_step`` and the line numbers of damaged ones (a
    field missing or extra, or a step that is not a whole number: flipped bytes, a cut line)."""
    kept, damaged = [], []
    with open(path, newline="", errors="replace") as file:
        reader = csv.DictReader(file)
        for row in reader:
            try:
                whole = None not in row and None not in row.values() and int(row["step"]) >= 0
            except (KeyError, ValueError):
                whole = False
            if not whole:
                damaged.append(reader.line_num)
            elif int(row["step"]) <= last_step:
                kept.append(renamed_columns(row))  # an older run's loss terms under today's names
    return kept, damaged


def read_log(path) -> dict[str, np.ndarray]:
    """A log written by :class:`CSVLog` as columns of floats."""
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    columns = rows[0].keys() if rows else []
    return {LOSS_TERMS.get(name, name): np.array([float(row[name]) for row in rows]) for name in columns}


def tensorboard_writer(folder):
    """A TensorBoard ``SummaryWriter`` on ``folder``, or None when ``tensorboard`` is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: the CSV logs hold the same numbers
        return None
    return SummaryWriter(str(folder))


def plot_training(run, smooth: int = 1) -> Figure:
    """Loss curves (L2 terms, KL terms) and, if any, validation scores of the run in folder ``run``;
    ``smooth`` averages that many logged points."""
    log = read_log(Path(run) / "train.csv")
    validation = Path(run) / "validation.csv"
    scores = read_log(validation) if validation.is_file() else {}
    panels = 3 if len(scores.get("step", ())) else 2
    figure = Figure(figsize=(4 * panels, 3))
    axes = figure.subplots(1, panels)
    kernel = np.ones(smooth) / smooth

    def curve(ax, name):
        values = np.convolve(log[name], kernel, mode="valid")
        ax.plot(log["step"][len(log["step"]) - len(values):], values, label=name)

    for name in [n for n in ("x_p", "x_f", "x_hat") if n in log]:
        curve(axes[0], name)
    for name in [n for n in log if n.startswith("kl_")]:
        curve(axes[1], name)
    axes[0].set(xlabel="update", ylabel="L2, summed over steps", yscale="log", title="reconstruction")
    axes[1].set(xlabel="update", ylabel="nats per sequence", title="KL (before β)")
    if panels == 3:
        for name in ("psnr_best", "psnr_mean"):
            axes[2].plot(scores["step"], scores[name], marker="o", label=name)
        axes[2].set(xlabel="update", ylabel="dB", title="validation PSNR")
    for ax in axes:
        ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


__all__ = ["sample_figure", "save_figure", "CSVLog", "rows_until", "read_log", "tensorboard_writer", "plot_training"]
