"""``slamp demo``, the README's main job: the shipped SLAMP on Stochastic Moving MNIST in two minutes.

    from slamp.demo import run_demo
    metrics = run_demo("results/demo")        # prediction.png, prediction.gif, metrics.json

It loads ``slamp.pretrained.load("slamp")`` (or trains the ``tiny`` SLAMP for a few updates, or
reads a checkpoint), scores it with the paper's Moving MNIST protocol (condition on 5 frames,
predict 20, best of N samples) on the first K sequences of the default test set beside three
reference predictors that learn nothing (black, last frame, mean frame), and draws one test
sequence: the truth, the best of N samples, random samples, and the best sample's parts x^p,
x^f, mask and flow. Plain glue over the exported modules: no notebook teaches this module, and
``tools/literate.py`` does not generate it.
"""
from __future__ import annotations

import json
import os
import platform
import textwrap
import time
from pathlib import Path

import matplotlib.colors
import numpy as np
import torch
from matplotlib.figure import Figure

from slamp.registry import dataset_spec


N_PAST, N_FUTURE = dataset_spec("mnist").test_protocol  # the paper's protocol: condition on 5 frames, predict 20
# K and N: small enough that the whole demo (load, score, draw) runs in minutes on a laptop's CPU
# (benchmarks/README.md, "Timings behind the code's choices").
SEQUENCES, NUM_SAMPLES = 16, 20
RANDOM_ROWS = 3  # random samples drawn below the best one
# Futures per generate call: larger calls spend their time in the kernel, allocating memory.
FUTURES_PER_CALL = 40
METRICS = ("psnr", "ssim")
REFERENCE_TITLES = {"black": "black", "last_frame": "last frame", "mean_frame": "mean frame"}


# ---- the model ----------------------------------------------------------------------------------
def demo_model(train_updates: int | None = None, checkpoint=None, run_folder=None, seed: int = 0):
    """The model the demo shows and what to call it: the shipped SLAMP (default), the ``tiny``
    SLAMP trained for ``train_updates`` updates in ``run_folder``, or a training ``checkpoint``.
    Returns ``(model in eval mode, {"name", "source", "updates", ...})``."""
    if train_updates is not None and checkpoint is not None:
        raise ValueError("pass train_updates or checkpoint, not both")
    if train_updates is not None:
        return _trained_model(train_updates, Path(run_folder), seed)
    if checkpoint is not None:
        from slamp.checkpoint import PublicReleaseFile, load_checkpoint, load_model

        try:
            state = load_checkpoint(checkpoint)
        except PublicReleaseFile as public:  # the paper's own model, from the public release
            from slamp.release import convert_release, updates_of

            updates = updates_of(public.release)
            name = f"the paper's SLAMP (public release, {public.release.dataset}, {updates:,} updates)"
            return convert_release(public.release), {"name": name, "source": f"public:{checkpoint}", "updates": updates}
        model, config = load_model(checkpoint)
        updates = int(state["step"])
        name = f"{type(model).__name__} ({config.model_preset}, checkpoint {checkpoint}, {updates} updates)"
        return model, {"name": name, "source": f"checkpoint:{checkpoint}", "updates": updates}
    from slamp.pretrained import info, load

    model, about = load("slamp"), info("slamp")
    preset = about["train_config"].get("model_preset", "?")
    updates = about["metrics"].get("updates_in_all", about["updates"])  # over every run it was trained in
    return model, {"name": f"shipped SLAMP ({preset}, {updates} updates)", "source": "pretrained:slamp",
                   "updates": updates}


def _trained_model(updates: int, run_folder: Path, seed: int):
    """Train the ``tiny`` SLAMP for ``updates`` updates into ``run_folder`` (no validation: the
    demo scores it anyway) and load it; its loss curves go to ``run_folder/../loss.png``."""
    from slamp.checkpoint import load_model
    from slamp.config import TrainConfig
    from slamp.runlog import plot_training, save_figure
    from slamp.train import train

    if updates < 1:
        raise ValueError(f"--train needs at least 1 update, found {updates}")
    config = TrainConfig.preset("tiny", seed=seed, epochs=1, epoch_size=updates, val_every=0,
                                checkpoint_every=updates, log_every=max(1, min(10, updates // 4)),
                                out=str(run_folder))
    summary = train(config, overwrite=True)
    model, _ = load_model(run_folder / "last.pt")
    save_figure(plot_training(run_folder), run_folder.parent / "loss.png")
    return model, {"name": f"SLAMP (tiny, trained here for {updates} updates)", "source": f"trained:{run_folder}",
                   "updates": summary["updates"], "updates_per_second": round(summary["updates_per_second"], 3)}


# ---- the test sequences -------------------------------------------------------------------------
def first_test_sequences(count: int, n_frames: int = N_PAST + N_FUTURE):
    """The first ``count`` sequences of the default Moving MNIST test set
    (``slamp.data.MovingMNISTTestSet`` with its default settings), each ``(T, 1, 64, 64)``.

    ``generate(num_sequences=count)`` makes just those (the rest of the set is not needed, and
    reading the whole cached set would cost more than making 16 sequences)."""
    from slamp.data import MovingMNISTTestSet

    if count < 1:
        raise ValueError(f"need at least one test sequence, found {count}")
    test_set = MovingMNISTTestSet.generate(num_sequences=count)
    if test_set.sequences.shape[1] < n_frames:
        raise ValueError(f"the default test set has {test_set.sequences.shape[1]} frames per sequence; "
                         f"the demo needs {n_frames}")
    return test_set


# ---- scores -------------------------------------------------------------------------------------
def _summary_row(name: str, kind: str, evaluation, sequences: int, num_samples: int) -> dict:
    """One row of the results table: mean ± 95% CI (over sequences) of each metric, head ``final``."""
    scores = evaluation.summary()["x_hat"]
    return {"name": name, "kind": kind, "sequences": sequences, "num_samples": num_samples,
            **{metric: {"mean": v["mean"], "ci95": v["ci95"]} for metric, v in scores.items()}}


def score_all(model, test_set, sequences: int, num_samples: int, seed: int = 0, progress: bool = True) -> list[dict]:
    """Best-of-``num_samples`` PSNR and SSIM of ``model`` (its final frames x̂) and of every
    reference predictor on the first ``sequences`` of ``test_set``, condition on ``N_PAST``,
    predict ``N_FUTURE``. Returns the rows of the table, the model first."""
    from torch.utils.data import DataLoader, Subset

    from slamp.evaluate import REFERENCES, evaluate, evaluate_reference, mean_training_frame

    loader = DataLoader(Subset(test_set, range(sequences)), batch_size=max(1, FUTURES_PER_CALL // num_samples))
    torch.manual_seed(seed)
    # Only x̂: SSIM of the other heads would double the demo's time and the table compares x̂.
    result = evaluate(model, loader, N_PAST, N_FUTURE, num_samples, metrics=METRICS, heads=("x_hat",),
                      max_batch=FUTURES_PER_CALL, keep_best=False, progress=progress)
    rows = [_summary_row(type(model).__name__, "model", result, sequences, num_samples)]
    mean_frame = mean_training_frame()  # from training clips only: no test digit leaks in
    for name in REFERENCES:
        reference = evaluate_reference(name, loader, N_PAST, N_FUTURE, metrics=METRICS, mean_frame=mean_frame)
        rows.append(_summary_row(name, "reference", reference, sequences, 1))
    return rows


# ---- the sequence shown -------------------------------------------------------------------------
@torch.no_grad()
def sample_sequence(model, truth: torch.Tensor, num_samples: int, random_rows: int = RANDOM_ROWS,
                    seed: int = 0) -> dict:
    """Draw ``num_samples`` futures of one test sequence ``truth`` ``(T, C, H, W)`` (conditioned on
    its first ``N_PAST`` frames) and pick the best by PSNR averaged over frames, and
    ``random_rows`` others at random. Returns ``parts`` ``{name: (S, F, ...)}`` (frames,
    appearance and, with a motion head, motion, mask, flow), ``psnr`` ``(S,)``, ``best`` (index),
    ``random`` (indices) and ``diversity``: the per-pixel standard deviation over the samples,
    averaged over pixels and predicted frames (0 when every sample is the same)."""
    from slamp.evaluate import best_of_n, score_frames
    from slamp.models import sample_spread

    n_future = truth.shape[0] - N_PAST
    torch.manual_seed(seed)
    prediction = model.generate(truth[None, :N_PAST], n_future, num_samples)
    parts = {name: value[0].float().cpu() for name, value in prediction.images().items()}
    per_frame = score_frames(parts["x_hat"][None], truth[None, N_PAST:], "psnr")  # (1, S, F)
    best, _ = best_of_n(per_frame)
    best = int(best[0])
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed)).tolist()
    others = [k for k in order if k != best][:random_rows]
    diversity = sample_spread(parts["x_hat"]).mean().item()
    return {"parts": parts, "psnr": per_frame[0].mean(-1), "best": best, "random": others, "diversity": diversity}


# ---- the figure ---------------------------------------------------------------------------------
GIVEN_COLOUR, PREDICTED_COLOUR = "#1a9850", "#d73027"  # green: given to the model; red: predicted
LABEL_CELLS = 1.3  # width of the label column, in frames: room for "truth"


def figure_rows(truth: torch.Tensor, shown: dict, n_past: int = N_PAST) -> list[tuple[str, torch.Tensor]]:
    """The rows of :func:`prediction_figure` as ``(label, images (T', C, H, W) in [0, 1])``: the
    truth (all T frames), then, over the F predicted frames, the best sample, the random samples
    and, with a motion head, the best sample's x^p, x^f, mask and colour-coded flow."""
    from slamp.viz import flow_to_colour

    parts, best, psnrs = shown["parts"], shown["best"], shown["psnr"]
    rows = [("truth", truth)]
    rows.append((f"best of {len(psnrs)} by PSNR\n(sample {best}: {psnrs[best]:.1f} dB)", parts["x_hat"][best]))
    for k, index in enumerate(shown["random"]):
        rows.append((f"random sample {k + 1}\n(sample {index}: {psnrs[index]:.1f} dB)", parts["x_hat"][index]))
    if "x_f" in parts:
        flow = parts["flow"][best]
        rows += [("appearance $x^p$ of the best\n(decoded pixels)", parts["x_p"][best]),
                 ("motion $x^f$ of the best\n(frame t−1 warped by $f$)", parts["x_f"][best]),
                 ("mask $m$ of the best\n1 = take $x^p$, 0 = take $x^f$", parts["mask"][best]),
                 ("flow $f$ of the best\nhue: direction, saturation: length",
                  flow_to_colour(flow, max_flow=_longest(flow)))]
    return [(label, images.detach().float().cpu().clamp(0, 1)) for label, images in rows]


def _longest(flow: torch.Tensor) -> float:
    """The longest vector (pixels) of a flow ``(T, 2, H, W)``: one scale for every frame."""
    return max(flow.norm(dim=-3).max().item(), 1e-6)


BORDER, GAP = 2, 4  # around each frame in the figure: a coloured border, then a white gap
DPI = 100  # one image pixel per screen pixel: the digits stay sharp
TITLE_POINTS = 10.5


def _cell_pixels(images: torch.Tensor) -> int:
    """The side of a frame's square cell in the figure, in pixels (frame, border and gap)."""
    return max(images.shape[-2:]) + 2 * BORDER + GAP


def _mosaic(images: torch.Tensor, first: int, n_past: int) -> np.ndarray:
    """Frames ``(T', C, H, W)`` side by side as one RGB array ``(cell, T' * cell, 3)``, each framed
    in green (given) or red (predicted), with a white gap right of and below it; ``first`` is the
    frame index of the first image."""
    length, _, height, width = images.shape
    cell = _cell_pixels(images)
    out = np.ones((cell, length * cell, 3))
    for k, image in enumerate(images):
        colour = matplotlib.colors.to_rgb(GIVEN_COLOUR if first + k < n_past else PREDICTED_COLOUR)
        left = k * cell
        out[:height + 2 * BORDER, left:left + width + 2 * BORDER] = colour
        rgb = image.expand(3, -1, -1).permute(1, 2, 0).numpy()
        out[BORDER:BORDER + height, left + BORDER:left + BORDER + width] = rgb
    return out


def prediction_figure(truth: torch.Tensor, shown: dict, title: str, n_past: int = N_PAST) -> Figure:
    """One figure of a predicted test sequence: a row per entry of :func:`figure_rows`, one column
    per frame (headers t = 1..T; given frames framed in green, predicted ones in red), labels on
    the left. Prediction rows start at frame ``n_past + 1``; their labels fill the space under the
    given frames, with a colour key for the flow and a scale for the mask. ``truth``
    ``(T, C, H, W)``, ``shown`` from :func:`sample_sequence`. Each row's label is the text of an
    axes with gid ``"label"`` (tests read the rows from there)."""
    rows = figure_rows(truth, shown, n_past)
    length = truth.shape[0]
    cell_pixels = _cell_pixels(truth)
    cell = cell_pixels / DPI  # inches
    # Lines wider than the figure would be cut off: wrap them (~0.6 em per character).
    title = "\n".join(textwrap.fill(line, int(cell * (LABEL_CELLS + length) * 72 / (TITLE_POINTS * 0.6)))
                      for line in title.split("\n"))
    title_lines = title.count("\n") + 1
    head, row_height = 0.22 * title_lines + 0.35, cell * 1.0  # the title and the t= headers, in inches
    height = head + row_height * len(rows) + 0.05
    figure = Figure(figsize=(cell * (LABEL_CELLS + length), height), dpi=DPI)
    grid = figure.add_gridspec(len(rows), 1 + length, width_ratios=[LABEL_CELLS] + [1] * length,
                               left=0, right=1, bottom=0.05 / height, top=1 - head / height, wspace=0, hspace=0)
    for r, (label, images) in enumerate(rows):
        first = 0 if r == 0 else n_past  # the frame index of the row's first image
        _label(figure.add_subplot(grid[r, 0:1 + first]), label, _key_for(label, shown))
        ax = figure.add_subplot(grid[r, 1 + first:])
        ax.imshow(_mosaic(images, first, n_past), interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        if r == 0:  # the column headers, above the truth
            for k in range(length):
                ax.text((k + 0.5) * cell_pixels - GAP / 2, -2, f"t={k + 1}", ha="center", va="bottom", fontsize=8.5,
                        color=GIVEN_COLOUR if k < n_past else PREDICTED_COLOUR)
    figure.suptitle(title, fontsize=TITLE_POINTS, y=1 - 0.06 / height, va="top")
    return figure


def save_png(figure: Figure, path) -> Path:
    """Write ``figure`` as a PNG at its own dpi, atomically."""
    from slamp.data.files import atomic_path

    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=figure.dpi)
    return Path(path)


def _key_for(label: str, shown: dict):
    """Which key a row's label area carries: the flow's colour wheel, the mask's scale, or none."""
    if label.startswith("flow"):
        return ("flow", _longest(shown["parts"]["flow"][shown["best"]]))
    if label.startswith("mask"):
        return ("mask", None)
    return None


def _label(ax, text: str, key=None) -> None:
    """A row label, right-aligned against the row's first image; with ``key`` ``("flow", longest
    vector in pixels)`` a colour wheel, with ``("mask", None)`` a grey scale, at its right end."""
    ax.set_axis_off()
    ax.set_gid("label")
    box, (fig_w, fig_h) = ax.get_position(), ax.figure.get_size_inches()
    square = (box.height * fig_h) / (box.width * fig_w)  # the row's height as a fraction of the label's width
    key_width = 0.0 if key is None else 2.2 * square  # the key takes the right end; the text ends left of it
    ax.text(1 - key_width - 0.12 * square, 0.5, text, ha="right", va="center", fontsize=11, transform=ax.transAxes)
    if key is None:
        return
    kind, longest = key
    if kind == "flow":
        _flow_key(ax.inset_axes([1 - key_width + 0.1 * square, 0.16, 0.76 * square, 0.76]), longest)
    else:
        _mask_key(ax.inset_axes([1 - key_width, 0.55, key_width - 0.2 * square, 0.22]))


def _flow_key(ax, longest: float) -> None:
    """The Middlebury colour wheel (``slamp.viz.flow_legend``): the colour at a point is the flow
    pointing from the centre to it; the rim is the longest vector of the shown flow."""
    from slamp.viz import flow_legend

    ax.imshow(flow_legend(65).permute(1, 2, 0).numpy(), interpolation="bilinear")
    ax.set_axis_off()
    ax.text(1.03, 0.5, "+x", transform=ax.transAxes, fontsize=8, ha="left", va="center")
    ax.text(0.5, -0.03, "+y", transform=ax.transAxes, fontsize=8, ha="center", va="top")  # image axes: y points down
    ax.text(1.03, 1.05, f"rim {longest:.2g} px", transform=ax.transAxes, fontsize=8, ha="left", va="top")


def _mask_key(ax) -> None:
    """A grey scale from 0 (take x^f) to 1 (take x^p), its ends named below it."""
    ax.imshow(np.linspace(0, 1, 64)[None], cmap="gray", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0, -0.25, "0: $x^f$", transform=ax.transAxes, fontsize=8, ha="left", va="top")
    ax.text(1, -0.25, "1: $x^p$", transform=ax.transAxes, fontsize=8, ha="right", va="top")


# ---- the GIF ------------------------------------------------------------------------------------
def gif_frames(truth: torch.Tensor, shown: dict, random_panels: int = 2, scale: int = 3,
               n_past: int = N_PAST) -> torch.Tensor:
    """Frames ``(T, 3, H', W')`` of the GIF: truth | best sample | ``random_panels`` random samples,
    side by side, each ``scale``× enlarged and labelled above; a line below says whether frame t
    was given to the model or predicted. ``truth`` ``(T, C, H, W)``, ``shown`` from
    :func:`sample_sequence` (the prediction panels show the given frames until t = ``n_past``)."""
    from PIL import Image, ImageDraw, ImageFont

    frames = shown["parts"]["x_hat"]
    panels = [("truth", truth), ("best sample", torch.cat([truth[:n_past], frames[shown["best"]]]))]
    panels += [(f"random {k + 1}", torch.cat([truth[:n_past], frames[index]]))
               for k, index in enumerate(shown["random"][:random_panels])]
    length, _, height, width = truth.shape
    size, gap, header, footer = (height * scale, width * scale), 4, 18, 18
    font = ImageFont.load_default(size=13)
    out = []
    for t in range(length):
        canvas = Image.new("RGB", (len(panels) * (size[1] + gap) - gap, header + size[0] + footer), "white")
        draw = ImageDraw.Draw(canvas)
        for p, (name, video) in enumerate(panels):
            image = (video[t].float().clamp(0, 1).expand(3, -1, -1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            left = p * (size[1] + gap)
            canvas.paste(Image.fromarray(image).resize(size[::-1], Image.NEAREST), (left, header))
            draw.text((left + size[1] // 2, header // 2), name, fill="black", font=font, anchor="mm")
        given = t < n_past
        status = f"t = {t + 1} / {length}: " + ("given to the model" if given else "predicted")
        draw.text((canvas.width // 2, header + size[0] + footer // 2), status, font=font, anchor="mm",
                  fill=GIVEN_COLOUR if given else PREDICTED_COLOUR)
        out.append(torch.from_numpy(np.array(canvas)).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


# ---- the whole demo -----------------------------------------------------------------------------
def comparison_line(rows: list[dict]) -> str:
    """One line: PSNR and SSIM of the model and of each reference."""
    def cells(metric, unit):
        return ", ".join(f"{REFERENCE_TITLES.get(row['name'], row['name'])} {row[metric]['mean']:.{2 if unit else 3}f}"
                         f" ± {row[metric]['ci95']:.{2 if unit else 3}f}{unit}" for row in rows)
    return f"PSNR: {cells('psnr', ' dB')} | SSIM: {cells('ssim', '')}"


def figure_title(model_name: str, show: int, num_samples: int, shown: dict, rows: list[dict]) -> str:
    """Four lines: what the figure shows, its rows, the diversity of its samples, and the scores
    of the table (the model beside the references)."""
    model = rows[0]
    references = ", ".join(f"{REFERENCE_TITLES.get(row['name'], row['name'])} {row['psnr']['mean']:.1f}"
                           for row in rows[1:])
    return (f"{model_name} on Moving MNIST test sequence {show}: given t = 1–{N_PAST} (green), predicted "
            f"t = {N_PAST + 1}–{N_PAST + N_FUTURE} (red)\n"
            f"rows: the truth, the best of N = {num_samples} sampled futures by PSNR averaged over frames, "
            f"{len(shown['random'])} random samples, and the best sample's parts\n"
            f"diversity of the {num_samples} samples: per-pixel standard deviation {shown['diversity']:.3f} "
            f"(mean over pixels and predicted frames; 0 = all samples alike)\n"
            f"first {model['sequences']} test sequences, best of {model['num_samples']}: "
            f"PSNR {model['psnr']['mean']:.2f} ± {model['psnr']['ci95']:.2f} dB, "
            f"SSIM {model['ssim']['mean']:.3f} ± {model['ssim']['ci95']:.3f} "
            f"(references, PSNR in dB: {references})")


def run_demo(out, seed: int = 0, sequences: int = SEQUENCES, num_samples: int = NUM_SAMPLES, show: int = 0,
             train_updates: int | None = None, checkpoint=None, progress: bool = True, model=None,
             about: dict | None = None) -> dict:
    """Score and draw a SLAMP (default: the shipped one; ``train_updates``: the ``tiny`` SLAMP
    trained here; ``checkpoint``: a training checkpoint; ``model``: that model, named by ``about``)
    and write into ``out``: ``prediction.png`` (test sequence ``show``), ``prediction.gif`` and
    ``metrics.json`` (best-of-``num_samples`` PSNR/SSIM on the first ``sequences`` test sequences,
    beside the reference predictors). Returns the metrics."""
    if sequences < 1 or num_samples < 1 or show < 0:
        raise ValueError(f"need sequences >= 1, num_samples >= 1, show >= 0; found {sequences}, {num_samples}, {show}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    load_at_start, started = _load_average(), time.perf_counter()
    timings = {}

    def lap(name):
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 1)

    if model is None:
        model, about = demo_model(train_updates, checkpoint, out / "run", seed)
    about = about or {"name": type(model).__name__, "source": "model passed in"}
    model.eval()
    lap("model")
    test_set = first_test_sequences(max(sequences, show + 1))
    truth = test_set[show][:N_PAST + N_FUTURE]
    lap("test_set")
    rows = score_all(model, test_set, sequences, num_samples, seed, progress)
    lap("scores")
    shown = sample_sequence(model, truth, num_samples, seed=seed)
    title = figure_title(about["name"], show, num_samples, shown, rows)
    from slamp.viz import save_gif

    save_png(prediction_figure(truth, shown, title), out / "prediction.png")
    save_gif(gif_frames(truth, shown), out / "prediction.gif", fps=4)
    lap("figures")

    metrics = _record(about, test_set, sequences, num_samples, rows, show, shown, seed, model)
    metrics.update({"timings_s": timings, "seconds": round(time.perf_counter() - started, 1),
                    "load_average_1min": {"start": load_at_start, "end": _load_average()}})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _record(about: dict, test_set, sequences: int, num_samples: int, rows: list[dict], show: int, shown: dict,
            seed: int, model) -> dict:
    """What ``metrics.json`` says (without the timings): the model, the test sequences, the
    protocol, the table (the model, then the references), the shown sequence and the machine."""
    psnrs = shown["psnr"]
    config = {k: v for k, v in test_set.config.items() if k != "num_sequences"}
    return {
        "model": about,
        "test_set": {"sequences": sequences, "which": f"the first {sequences} of the default "
                     "slamp.data.MovingMNISTTestSet", "config": config},
        "protocol": {"n_past": N_PAST, "n_future": N_FUTURE, "num_samples": num_samples, "sequences": sequences,
                     "selection": "per sequence, the best of num_samples futures by each metric averaged over "
                                  "frames; mean ± 95% CI over sequences; references are deterministic (1 sample)"},
        "results": rows,
        "shown": {"sequence": show, "num_samples": num_samples, "best_sample": shown["best"],
                  "best_psnr": psnrs[shown["best"]].item(), "random_samples": shown["random"],
                  "random_psnr": [psnrs[k].item() for k in shown["random"]], "diversity": shown["diversity"],
                  "diversity_definition": "per-pixel standard deviation over the samples' predicted frames x̂, "
                                          "averaged over pixels and frames (0: all samples alike)"},
        "seed": seed, "device": str(next(model.parameters()).device), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
    }


def _load_average() -> float | None:
    """The machine's 1-minute load average (the demo's timings depend on it), or None."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not on every platform
        return None


__all__ = ["SEQUENCES", "NUM_SAMPLES", "demo_model", "first_test_sequences", "score_all", "sample_sequence",
           "figure_rows", "prediction_figure", "gif_frames", "comparison_line", "run_demo"]
