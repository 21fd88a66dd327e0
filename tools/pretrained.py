"""Make the models shipped in slamp/pretrained/ and the README's results table, reproducibly.

    python tools/pretrained.py train [--updates N] [--continue] [--models M ...]
                                          # SVG-LP, AppearanceOnly, SLAMP-Baseline and SLAMP, `cpu` preset,
                                          # one budget: round robin in chunks of 250 updates (runs/pretrained/)
    python tools/pretrained.py export     # last.pt of each run -> slamp/pretrained/<model>.pt (float16),
                                          # with its learning curve
    python tools/pretrained.py evaluate   # best-of-100 on the first 500 sequences of SRVP's test set
    python tools/pretrained.py references # the floors (black, last frame, mean frame) on the same sequences
    python tools/pretrained.py record     # those numbers and the small CI check -> slamp/pretrained/results.json
    python tools/pretrained.py curves     # docs/learning_curves.png, from the shipped models' curves, and
                                          # docs/per_frame_scores.png, each predicted frame's scores
    python tools/pretrained.py table      # the README's table, from slamp/pretrained/results.json
    python tools/pretrained.py check      # the small evaluation that tests/test_pretrained.py repeats
    python tools/pretrained.py compare svg appearance_only   # one model minus another, sequence by sequence
    python tools/pretrained.py rename svg appearance_only    # ship a model under another name (done once)
    python tools/pretrained.py budget-fit                    # issue 35: SSIM against CPU-hours, fitted
    python tools/pretrained.py train-on --model slamp --lr 1e-3 --hours 8
                                          # train on from the shipped weights (or shipped_training/<model>.pt)
                                          # in runs/continue/<model>, one chunk per process, writing the
                                          # snapshot shipped_training/<model>.pt after every chunk
    python tools/pretrained.py ship --model slamp           # shipped_training/slamp.pt -> slamp/pretrained/

Every step goes through the public commands (`slamp train`, `slamp evaluate`), with fixed seeds;
`--models` limits train, export, evaluate and record to some models (`record` then replaces only theirs).
Training can be spread over sessions: `train --continue` starts new runs from the shipped weights
(`init_from=pretrained:<model>`), and `export` appends the new run to the shipped learning curve.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
MODELS = ("svg", "appearance_only", "slamp_baseline", "slamp")
NAMES = {"svg": "SVG-LP", "appearance_only": "AppearanceOnly", "slamp_baseline": "SLAMP-Baseline", "slamp": "SLAMP"}
COLOURS = {"svg": "tab:blue", "appearance_only": "tab:purple", "slamp_baseline": "tab:orange",
           "slamp": "tab:green"}  # one colour per model in every figure
# One budget for the models: the `cpu` preset (5 + 10 frames, batch 8, lr 1e-3), trained in chunks,
# round robin, so that they have had the same number of updates whenever it stops. (AppearanceOnly
# is the SVG of earlier sessions, renamed when `svg` became SVG-LP; SVG-LP was then trained on the
# same schedule: see the README.)
PRESET, CHUNK = "cpu", 250
RUNS = ROOT / "runs" / "pretrained"
BUDGET = RUNS / "budget.csv"  # model, updates reached, wall seconds of the chunk, when, threads
# 5 -> 20 frames, the first 500 test sequences (100 until issue 35, which asked for 500); 200 futures
# per call is fastest on a CPU (larger batches spend their time allocating memory)
EVALUATE = ["--sequences", "500", "--num-samples", "100", "--max-batch", "200"]
CHECK = {"sequences": 8, "num_samples": 10}  # what tests/test_pretrained.py re-runs in CI
PAPER = {"svg": (14.50, 0.7090), "slamp": (18.07, 0.7736)}  # Table 4, SM-MNIST, best of 100
# Predictors that learn nothing, scored by `slamp evaluate --reference` on the models' sequences.
REFERENCES = {"black": "all-black frame", "last_frame": "last conditioning frame", "mean_frame": "mean training frame"}


def run(argv: list[str]) -> None:
    from slamp.cli import main

    print("$ slamp", " ".join(argv), flush=True)
    if main(argv) != 0:
        sys.exit(f"slamp {' '.join(argv)} failed")


def _updates_done(model: str) -> int:
    return _updates_in(RUNS / model)


def _shipped_updates(models=MODELS) -> int:
    """Updates the shipped ``models`` have had (equal: one budget)."""
    from slamp.pretrained import info

    done = {info(model)["metrics"]["updates_in_all"] for model in models}
    if len(done) != 1:
        sys.exit(f"the shipped models have had different budgets: {sorted(done)} updates")
    return done.pop()


def train(updates: int, continue_shipped: bool = False, chunk: int = CHUNK, lr: float | None = None,
          models=MODELS) -> None:
    """Train each model to ``updates`` updates, ``chunk`` at a time, round robin (resuming where a run
    stopped). ``continue_shipped``: new runs start from the shipped weights (a later session).
    ``lr``: the learning rate from here on (a decay stage of the same runs; default the preset's)."""
    import os
    import subprocess
    import time

    from slamp.config import TrainConfig

    planned = TrainConfig.preset(PRESET)
    # A run longer than the preset's plan gets more epochs (the learning rate is constant, so
    # nothing else depends on the plan). A continued run draws other clips than every run before it:
    # its seed is the number of updates the shipped weights already had (the first run's seed is 0).
    epochs = max(planned.epochs, -(-updates // planned.epoch_size))
    seed = [f"seed={_shipped_updates(models)}"] if continue_shipped else []
    settings = [f"epochs={epochs}", *seed] + ([f"lr={lr}"] if lr else [])
    RUNS.mkdir(parents=True, exist_ok=True)
    for end in range(chunk, updates + chunk, chunk):
        end = min(end, updates)
        for model in models:
            if _updates_done(model) >= end:
                continue
            argv = [sys.executable, "-m", "slamp", "train", "--preset", PRESET, "--set", f"model={model}", *settings,
                    "--out", str(RUNS / model), "--stop-after", str(end)]
            if continue_shipped:  # on every chunk, so that the run's recorded config says where it started
                argv += ["--set", f"init_from=pretrained:{model}"]
            if (RUNS / model / "last.pt").is_file():
                argv.append("--resume")
            print("$", " ".join(argv[2:]), flush=True)
            started = time.perf_counter()
            with open(RUNS / f"{model}.log", "a") as log:
                if subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode != 0:
                    sys.exit(f"training {model} failed: see {RUNS / (model + '.log')}")
            with open(BUDGET, "a") as budget:
                budget.write(f"{model},{end},{time.perf_counter() - started:.0f},{time.strftime('%H:%M:%S')},"
                             f"threads={os.environ.get('OMP_NUM_THREADS', 'all')},lr={lr or planned.lr}\n")


def _minutes_at(step: int, seconds: dict) -> float:
    """Minutes of training up to update ``step``: the chunks that ended by then, and the share of the
    chunk that was running (validation points can fall inside a chunk). ``seconds``: the wall
    seconds of each chunk, by the update it reached."""
    minutes, previous = 0.0, 0
    for reached in sorted(seconds):
        if reached <= step:
            minutes += seconds[reached] / 60
        else:  # the chunk running at ``step``: its time, pro rata
            minutes += seconds[reached] / 60 * (step - previous) / (reached - previous)
            break
        previous = reached
    return minutes


def learning_curve(model: str, start: dict | None = None) -> dict:
    """The run's validation scores against updates and CPU-minutes (wall time of the chunks that
    reached each point, validation included), continuing ``start`` (the shipped curve) if given."""
    import csv

    rows = list(csv.DictReader(open(RUNS / model / "validation.csv")))
    seconds = {}
    for line in BUDGET.read_text().splitlines():
        name, reached, wall = line.split(",")[:3]
        if name == model and wall.isdigit():
            seconds[int(reached)] = seconds.get(int(reached), 0) + int(wall)
    offset_updates = start["updates"][-1] if start else 0
    offset_minutes = start["cpu_minutes"][-1] if start else 0.0
    curve = {key: list(start[key]) if start else [] for key in
             ("updates", "cpu_minutes", "psnr_best", "ssim_best", "psnr_mean", "ssim_mean")}
    for row in rows:
        step = int(row["step"])
        minutes = _minutes_at(step, seconds)
        curve["updates"].append(offset_updates + step)
        curve["cpu_minutes"].append(round(offset_minutes + minutes, 1))
        for key in ("psnr_best", "ssim_best", "psnr_mean", "ssim_mean"):
            curve[key].append(round(float(row[key]), 4))
    return curve


def export(continued: bool = False, models=MODELS) -> None:
    from slamp.pretrained import FOLDER, export_checkpoint, info

    for model in models:
        start = info(model)["metrics"].get("learning_curve") if continued else None
        curve = learning_curve(model, start)
        summary = json.loads((RUNS / model / "summary.json").read_text())
        path = export_checkpoint(RUNS / model / "last.pt", model, metrics={
            "updates_in_all": curve["updates"][-1], "cpu_minutes": curve["cpu_minutes"][-1],
            "continued_from_shipped": continued, "device": summary["device"], "learning_curve": curve},
            folder=FOLDER)
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1e6:.2f} MB), "
              f"{curve['updates'][-1]} updates, {curve['cpu_minutes'][-1]:.0f} CPU-minutes")


def _by_model(recorded: dict) -> list:
    """The groups of results.json keyed by model (each present one: older files lack some)."""
    return [recorded.get("models", {}), recorded.get("paired", {}), recorded.get("paired_per_frame", {}),
            recorded.get("check", {}).get("results", {})]


def rename(old: str, new: str) -> Path:
    """Ship ``old`` as ``new``, its class and config as this slamp names them
    (:func:`slamp.checkpoint.saved_as_now`): how the SVG of earlier sessions, trained with SLAMP's
    running-mean skips, became ``appearance_only`` when ``svg`` became SVG-LP. Weights, curve and
    record are kept; the results recorded for ``old`` move to ``new``."""
    from slamp.checkpoint import saved_as_now
    from slamp.model_registry import model_class
    from slamp.pretrained import FOLDER, _read, write_shipped

    shipped = _read(old)
    shipped["model_class"], shipped["model_config"] = saved_as_now(shipped["model_class"], shipped["model_config"])
    shipped["train_config"] = {**shipped["train_config"], "model": model_class(shipped["model_class"]).registry_name}
    shipped["metrics"] = {**shipped["metrics"], "shipped_before_as": old}
    path = write_shipped(shipped, new, FOLDER, replaces=old)
    recorded = json.loads(RESULTS.read_text())
    for group in _by_model(recorded):
        if old in group:
            group[new] = group.pop(old)
    if new in recorded["models"]:
        recorded["models"][new]["settings"]["model"] = shipped["model_class"]
    RESULTS.write_text(json.dumps(recorded, indent=2) + "\n")
    return path


def evaluate(models=MODELS) -> None:
    for model in models:
        run(["evaluate", "--pretrained", model, *EVALUATE, "--out", str(ROOT / "results" / "pretrained" / model)])


def evaluate_references() -> None:
    """The floors with the protocol of EVALUATE (one sample each: they are deterministic), in
    results/pretrained/references/<name>/."""
    run(["evaluate", "--reference", "all", *EVALUATE, "--out", str(ROOT / "results" / "pretrained" / "references")])


def record_references() -> dict:
    """Add the floors to results.json (under "references", with the paired differences), next to
    the models already recorded."""
    recorded = json.loads(RESULTS.read_text())
    recorded.update(_floors(recorded["models"]))
    RESULTS.write_text(json.dumps(recorded, indent=2) + "\n")
    return recorded["references"]


def _floors(models: dict) -> dict:
    """What results.json records of the floors: their scores and each model's paired differences."""
    return {"references": _recorded_references(models), "paired": paired_differences(),
            "paired_per_frame": paired_per_frame()}


def _summary(path: Path) -> dict:
    """An evaluation's settings and, per head and metric, the mean, its 95% CI and the per-frame means."""
    summary = json.loads(path.read_text())
    return {"settings": summary["settings"], "results": {
        head: {m: {"mean": v["mean"], "ci95": v["ci95"], "per_frame": [round(x, 4) for x in v["per_frame"]]}
               for m, v in metrics.items()}
        for head, metrics in summary["results"].items()}}


def _recorded_references(models: dict) -> dict:
    """The floors in results/pretrained/references/, checked to be on the models' sequences."""
    references = {name: _summary(ROOT / "results" / "pretrained" / "references" / name / "summary.json")
                  for name in REFERENCES}
    keys = ("dataset", "sequences", "n_past", "n_future")
    for name, reference in references.items():
        for model, recorded in models.items():
            found, expected = ({k: s["settings"].get(k) for k in keys} for s in (reference, recorded))
            if found != expected:
                sys.exit(f"the {name} reference was scored on {found}, {model} on {expected}: "
                         "run `python tools/pretrained.py references` again, after `evaluate`")
    return references


def check_results(models=MODELS) -> dict:
    """Best-of-10 PSNR/SSIM of each shipped model on the first 8 sequences of SRVP's test set, seed 0."""
    import torch
    from torch.utils.data import DataLoader

    from slamp.data import MovingMNISTTestSet
    from slamp.evaluate import evaluate as best_of_n
    from slamp.pretrained import load

    # The first sequences of SRVP's set only need the beginning of its random stream: no need to make all 5,000.
    test_set = MovingMNISTTestSet.generate(num_sequences=CHECK["sequences"], n_frames=25, seed=42, protocol="srvp")
    results = {}
    for model in models:
        torch.manual_seed(0)
        summary = best_of_n(load(model), DataLoader(test_set, batch_size=8), 5, 20, CHECK["num_samples"],
                            progress=False).summary()["x_hat"]
        results[model] = {metric: round(summary[metric]["mean"], 4) for metric in ("psnr", "ssim")}
    return results


RESULTS = ROOT / "slamp" / "pretrained" / "results.json"


def _per_sequence(folder: Path) -> dict:
    """{metric: [score of each sequence]} of the x̂ head, from an evaluation's per_sequence.csv."""
    import csv

    from slamp.renamed import HEADS

    scores = {}
    for row in csv.DictReader(open(folder / "per_sequence.csv")):
        if HEADS.get(row["head"], row["head"]) == "x_hat":  # older files use an older name
            scores.setdefault(row["metric"], []).append(float(row["score"]))
    return scores


def _against_floors(models, read, summarise) -> dict:
    """``{model: {floor: {metric: summarise(model's scores - floor's scores)}}}``, sequence by
    sequence on the same sequences; ``read`` gives an evaluation folder's ``{metric: scores}``."""
    import torch

    results = ROOT / "results" / "pretrained"
    floors = {name: read(results / "references" / name) for name in REFERENCES}
    paired = {}
    for model in models:
        scores = read(results / model)
        paired[model] = {name: {metric: summarise(torch.as_tensor(scores[metric]) - torch.as_tensor(floor[metric]))
                                for metric in ("psnr", "ssim")} for name, floor in floors.items()}
    return paired


def _interval(difference) -> dict:
    """``{"mean", "ci95"}`` of paired differences, one per sequence: their mean and its 95% CI."""
    from slamp.metrics import mean_confidence_interval

    return dict(zip(("mean", "ci95"), mean_confidence_interval(difference)))


def paired_differences(models=MODELS) -> dict:
    """Each model minus each floor, sequence by sequence (the same sequences): mean ± 95% CI."""
    return _against_floors(models, _per_sequence, _interval)


def _per_sequence_frame(folder: Path) -> dict:
    """{metric: (sequences, frames) tensor} of the x̂ head, from an evaluation's per_sequence_frame.csv."""
    import csv

    import torch

    rows = {}
    for row in csv.DictReader(open(folder / "per_sequence_frame.csv")):
        if row["head"] == "x_hat":
            rows.setdefault(row["metric"], {})[(int(row["sequence"]), int(row["frame"]))] = float(row["score"])
    scores = {}
    for metric, found in rows.items():
        sequences, frames = (max(key[i] for key in found) for i in (0, 1))
        scores[metric] = torch.tensor([[found[(i, t)] for t in range(1, frames + 1)] for i in range(sequences + 1)])
    return scores


def paired_per_frame(models=MODELS) -> dict:
    """Each model minus each floor at each predicted frame, sequence by sequence: ``{model: {floor:
    {metric: {"mean": [per frame], "ci95": [per frame]}}}}``, from per_sequence_frame.csv."""
    from slamp.metrics import mean_confidence_interval

    def per_frame(difference) -> dict:
        frames = [mean_confidence_interval(difference[:, t]) for t in range(difference.shape[1])]
        return {"mean": [round(float(m), 4) for m, _ in frames], "ci95": [round(float(h), 4) for _, h in frames]}

    return _against_floors(models, _per_sequence_frame, per_frame)


def compare(first: str, second: str) -> dict:
    """``first`` minus ``second``, sequence by sequence on the evaluated sequences (both evaluated by
    ``evaluate``): mean ± 95% CI of the PSNR and SSIM differences."""
    import torch

    a, b = (_per_sequence(ROOT / "results" / "pretrained" / model) for model in (first, second))
    return {metric: _interval(torch.tensor(a[metric]) - torch.tensor(b[metric])) for metric in ("psnr", "ssim")}


def record(models=MODELS) -> dict:
    """The evaluation of every model (from results/pretrained/) and the CI check, in one file. With
    some of the models, only theirs are replaced in the recorded file (their evaluation, check and
    paired differences; the floors are evaluated again, and must be the recorded ones)."""
    import platform

    import torch

    if tuple(models) != MODELS:
        recorded = json.loads(RESULTS.read_text())
        floors = _recorded_references({model: _summary(ROOT / "results" / "pretrained" / model / "summary.json")
                                       for model in models})
        for name, floor in floors.items():  # the same sequences and code: the same numbers, to float rounding
            for metric, value in floor["results"]["x_hat"].items():
                if abs(value["mean"] - recorded["references"][name]["results"]["x_hat"][metric]["mean"]) > 1e-5:
                    sys.exit(f"the {name} floor's {metric} evaluated now differs from the recorded one: "
                             "evaluate every model again")
        check = check_results(models)
        for model in models:
            recorded["models"][model] = _summary(ROOT / "results" / "pretrained" / model / "summary.json")
            recorded["check"]["results"][model] = check[model]
        recorded["paired"].update(paired_differences(models))
        recorded.setdefault("paired_per_frame", {}).update(paired_per_frame(models))
        order = {name: i for i, name in enumerate(MODELS)}  # the file lists the models in MODELS' order
        for group in _by_model(recorded):
            items = sorted(group.items(), key=lambda item: order[item[0]])
            group.clear()
            group.update(items)
        RESULTS.write_text(json.dumps(recorded, indent=2) + "\n")
        return recorded
    sequences = EVALUATE[EVALUATE.index("--sequences") + 1]
    results = {"protocol": f"SRVP's SM-MNIST test set, first {sequences} sequences, condition on 5, predict 20, "
                           "best of 100 samples by PSNR/SSIM averaged over frames; mean ± 95% CI over sequences",
               "versions": {"torch": torch.__version__, "python": platform.python_version()},
               "models": {}, "check": {"settings": CHECK, "results": check_results()}}
    for model in MODELS:
        results["models"][model] = _summary(ROOT / "results" / "pretrained" / model / "summary.json")
    if (ROOT / "results" / "pretrained" / "references").is_dir():  # the floors, when they were evaluated
        results.update(_floors(results["models"]))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _diversity(final: dict) -> str:
    """How much a model's samples differ (per-pixel standard deviation over the 100 samples, mean
    over pixels, frames and sequences), or a dash for results recorded before it was measured."""
    return f"{final['diversity']['mean']:.4f}" if "diversity" in final else "–"


def table() -> str:
    recorded = json.loads(RESULTS.read_text())
    lines = ["| model (`slamp.pretrained`) | PSNR ↑ | SSIM ↑ | diversity | paper PSNR | paper SSIM |",
             "|---|---|---|---|---|---|"]
    for model in MODELS:
        final = recorded["models"][model]["results"]["x_hat"]
        paper = PAPER.get(model)
        paper_cells = f"{paper[0]:.2f} | {paper[1]:.4f}" if paper else "– | –"
        lines.append(f"| {NAMES[model]} (`{model}`) | {final['psnr']['mean']:.2f} ± {final['psnr']['ci95']:.2f} | "
                     f"{final['ssim']['mean']:.4f} ± {final['ssim']['ci95']:.4f} | {_diversity(final)} | {paper_cells} |")
    for name, reference in recorded.get("references", {}).items():  # the floors, on the same sequences
        final = reference["results"]["x_hat"]
        lines.append(f"| floor: {REFERENCES[name]} (`--reference {name}`) | {final['psnr']['mean']:.2f} ± "
                     f"{final['psnr']['ci95']:.2f} | {final['ssim']['mean']:.4f} ± {final['ssim']['ci95']:.4f} | "
                     f"0 (one prediction) | – | – |")
    return "\n".join(lines)


CURVES = ROOT / "docs" / "learning_curves.png"


def curves(path: Path = CURVES) -> Path:
    """The learning curves of the shipped models (validation: 48 clips of the held-out training
    digits, best of 5 futures, 5 -> 20 frames) against updates and CPU-minutes, with the floors
    scored on the same clips."""
    from matplotlib.figure import Figure

    from slamp.config import TrainConfig
    from slamp.data.stream import validation_videos
    from slamp.evaluate import evaluate_reference, mean_training_frame
    from slamp.pretrained import info

    config = TrainConfig.preset(PRESET)
    clips = validation_videos(config)
    mean_frame = mean_training_frame()
    floors = {name: evaluate_reference(name, [clips], config.n_past, config.val_n_future,
                                       mean_frame=mean_frame).summary()["x_hat"] for name in REFERENCES}
    figure = Figure(figsize=(11, 6.5), layout="constrained")
    axes = figure.subplots(2, 2, sharey="row")
    for model in MODELS:
        curve = info(model)["metrics"]["learning_curve"]
        # A model trained on (issue 35) is drawn to where the shared budget ended: its continuation
        # validated on other clips, timed on one thread (docs/continuation_curves.png).
        shared = curve.get("continued_from", len(curve["updates"]))
        label = NAMES[model] + (f" (to {curve['updates'][shared - 1]:,} updates; trained on since: see "
                                "docs/continuation_curves.png)" if shared < len(curve["updates"]) else "")
        for row, metric in enumerate(("psnr", "ssim")):
            for column, x in enumerate(("updates", "cpu_minutes")):
                axes[row, column].plot(curve[x][:shared], curve[f"{metric}_best"][:shared], "o-",
                                       color=COLOURS[model], label=label)
    for row, metric in enumerate(("psnr", "ssim")):
        for column in range(2):
            for (name, floor), style in zip(floors.items(), (":", "--", "-.")):
                axes[row, column].axhline(floor[metric]["mean"], color="grey", linestyle=style, label=f"floor: {REFERENCES[name]}")
            axes[row, column].grid(alpha=0.3)
        axes[row, 0].set_ylabel({"psnr": "PSNR (dB), best of 5", "ssim": "SSIM, best of 5"}[metric])
    axes[1, 0].set_xlabel("updates (batch 8, 5 + 10 frames)")
    axes[1, 1].set_xlabel("minutes of training on the 2-core CPU (wall clock, validation included)")
    axes[0, 1].legend(loc="lower right", fontsize=8)
    figure.suptitle("Learning curves of the shipped models: validation on 48 held-out clips (SRVP's val fold), "
                    "5 → 20 frames")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


PER_FRAME = ROOT / "docs" / "per_frame_scores.png"


def per_frame_figure(path: Path = PER_FRAME) -> Path:
    """PSNR and SSIM of each predicted frame (best of 100, mean over the evaluated sequences) of the
    shipped models beside the floors, from results.json: where in the future each model is above them.
    Below, where recorded (``paired_per_frame``), each model minus the floor that scores highest on
    that metric, sequence by sequence, with its 95% CI: the frames where a model is surely above it."""
    from matplotlib.figure import Figure

    recorded = json.loads(RESULTS.read_text())
    settings = recorded["models"][MODELS[0]]["settings"]
    n_past, n_future = settings.get("n_past", 5), settings.get("n_future", 20)
    frames = range(n_past + 1, n_past + n_future + 1)  # numbered from 1, as in the figures of the demo
    paired = recorded.get("paired_per_frame")
    figure = Figure(figsize=(11, 6.8 if paired else 3.6), layout="constrained")
    axes = figure.subplots(2 if paired else 1, 2, squeeze=False)
    for ax, metric in zip(axes[0], ("psnr", "ssim")):
        for model in MODELS:
            values = recorded["models"][model]["results"]["x_hat"][metric]["per_frame"]
            ax.plot(frames, values, "o-", ms=3, color=COLOURS[model], label=NAMES[model])
        for (name, reference), style in zip(recorded.get("references", {}).items(), (":", "--", "-.")):
            values = reference["results"]["x_hat"][metric]["per_frame"]
            ax.plot(frames, values, color="grey", linestyle=style, label=f"floor: {REFERENCES[name]}")
        ax.set(ylabel=f"{metric.upper()}, best of 100", xticks=frames[::2])
        ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize=8)
    for ax, metric in zip(axes[1] if paired else [], ("psnr", "ssim")):
        floor = max(REFERENCES, key=lambda name: recorded["references"][name]["results"]["x_hat"][metric]["mean"])
        for model in MODELS:
            difference = paired[model][floor][metric]
            mean, half = difference["mean"], difference["ci95"]
            ax.plot(frames, mean, "o-", ms=3, color=COLOURS[model], label=NAMES[model])
            ax.fill_between(frames, [m - h for m, h in zip(mean, half)], [m + h for m, h in zip(mean, half)],
                            color=COLOURS[model], alpha=0.15, linewidth=0)
        ax.axhline(0, color="k", linewidth=1)
        ax.set(ylabel=f"{metric.upper()}: model − {REFERENCES[floor]}", xticks=frames[::2])
        ax.set_title(f"minus the best floor on {metric.upper()}, paired by sequence (± 95% CI)", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel(f"frame (1-{n_past} given, {frames[0]}-{frames[-1]} predicted)")
    figure.suptitle(f"Each predicted frame, shipped models and floors: the first {settings['sequences']} sequences "
                    "of SRVP's test set")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def paired_table() -> str:
    """The README's table of paired differences: each model minus each floor, same sequences."""
    recorded = json.loads(RESULTS.read_text())
    if "paired" not in recorded:
        return ""
    lines = ["| model − floor (same sequences) | " + " | ".join(f"{REFERENCES[n]}: PSNR / SSIM" for n in REFERENCES) + " |",
             "|---" * (1 + len(REFERENCES)) + "|"]
    for model in MODELS:
        cells = [f"{d['psnr']['mean']:+.2f} ± {d['psnr']['ci95']:.2f} / {d['ssim']['mean']:+.4f} ± {d['ssim']['ci95']:.4f}"
                 for d in (recorded["paired"][model][n] for n in REFERENCES)]
        lines.append(f"| {NAMES[model]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- training on from the shipped weights, in the background (issue 35) -------------------------
CONTINUE = RUNS.parent / "continue"  # runs/continue/<model>: one run, resumed chunk by chunk
SNAPSHOTS = ROOT / "shipped_training"       # committed as it goes: the weights so far and their record
VAL_SEED = 6750                       # the validation clips and noise of every continued run
CONTINUE_SETTINGS = ["val_every=500", "val_sequences=96", "val_samples=10", f"val_seed={VAL_SEED}", "epochs=3000"]


def _continue_start(model: str) -> tuple[str, dict]:
    """Where a continuation starts: the last committed snapshot (``shipped_training/<model>.pt``), else the
    shipped model; and that model's record (updates, curve, CPU time of the continuation so far)."""
    from slamp.pretrained import info

    snapshot = SNAPSHOTS / f"{model}.pt"
    source = str(snapshot) if snapshot.is_file() else model
    return f"pretrained:{source}", info(source)


def train_on(model: str, hours: float, lr: float, chunk: int = 500, batch_size: int | None = None,
             lr_given: bool = False) -> None:
    """Train ``model`` on from the shipped (or snapshot) weights until ``hours`` CPU-hours of
    continuation are spent, ``chunk`` updates per process; after every chunk write the snapshot
    ``shipped_training/<model>.pt`` (float16, its learning curve extended) and the budget. The run
    resumes exactly where ``runs/continue/<model>/last.pt`` is; a new machine starts a new run
    from the snapshot (fresh Adam, another seed: the record says so). ``lr`` given (``lr_given``)
    for a run that exists and differs from its rate: a decay stage, recorded with the update it
    starts at (``lr_from_update``, passed on to the snapshot)."""
    import resource
    import subprocess
    import time

    out = CONTINUE / model
    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "continuation.json"
    if state_file.is_file():  # the same run, resumed exactly
        state = json.loads(state_file.read_text())
        if lr_given and lr != state["lr"]:  # a decay stage: the same run, from its next update at `lr`
            steps = state.setdefault("lr_from_update", {"0": state["lr"]})
            steps[str(_updates_in(out))], state["lr"] = lr, lr
            state_file.write_text(json.dumps(state, indent=2) + "\n")
    else:  # a new run from the snapshot or the shipped weights
        source, start = _continue_start(model)
        state = {"init_from": source, "seed": start["metrics"]["updates_in_all"], "start": start["metrics"],
                 "cpu_seconds_before": start["metrics"].get("continuation_cpu_seconds", 0.0), "lr": lr,
                 "batch_size": batch_size}
        state_file.write_text(json.dumps(state, indent=2) + "\n")
    settings = [f"model={model}", f"init_from={state['init_from']}", f"seed={state['seed']}", f"lr={state['lr']}",
                *CONTINUE_SETTINGS] + ([f"batch_size={state['batch_size']}"] if state["batch_size"] else [])
    budget = out / "budget.csv"  # update reached, wall seconds, CPU seconds (user + system) of the chunk
    while True:
        spent = state["cpu_seconds_before"] + sum(float(line.split(",")[2]) for line in
                                                   (budget.read_text().splitlines() if budget.is_file() else []))
        if spent >= hours * 3600:
            print(f"{model}: {spent / 3600:.2f} CPU-hours of continuation spent; stopping", flush=True)
            return
        done = _updates_in(out)
        argv = [sys.executable, "-m", "slamp", "train", "--preset", PRESET, "--set", *settings, "--out", str(out),
                "--stop-after", str(_next_stop(done, chunk))] + (["--resume"] if (out / "last.pt").is_file() else [])
        print("$", " ".join(argv[2:]), flush=True)
        before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        with open(out / "train.log", "a") as log:
            if subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode != 0:
                sys.exit(f"training {model} failed: see {out / 'train.log'}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        with open(budget, "a") as record:
            record.write(f"{_updates_in(out)},{time.perf_counter() - started:.0f},{cpu:.0f}\n")
        snapshot(model)


def ship(model: str) -> Path:
    """Ship the continuation's snapshot ``shipped_training/<model>.pt`` as ``slamp/pretrained/<model>.pt``:
    the same weights, config and record (its learning curve extended, the CPU-seconds spent), its
    SHA-256 recorded in ``slamp/pretrained/SHA256SUMS``. Evaluate, record and redraw after it."""
    from slamp.pretrained import FOLDER, _read, write_shipped

    shipped = _read(str(SNAPSHOTS / f"{model}.pt"))  # checked against shipped_training/SHA256SUMS
    shipped["metrics"] = {**shipped["metrics"], "shipped_from": f"shipped_training/{model}.pt"}
    return write_shipped(shipped, model, FOLDER)


def _next_stop(done: int, chunk: int) -> int:
    """Where the next chunk stops: the next multiple of ``chunk``, so that a chunk cut short (a
    session's end) is followed by a shorter one and every snapshot again ends on a validation point
    (validation runs every 500 updates: the snapshot's curve then ends at its last update)."""
    return (done // chunk + 1) * chunk


def _updates_in(out: Path) -> int:
    log = out / "train.csv"
    rows = log.read_text().splitlines()[1:] if log.is_file() else []
    return int(rows[-1].split(",")[0]) if rows else 0


def snapshot(model: str) -> Path:
    """``shipped_training/<model>.pt``: the continuation's last checkpoint in float16, with the learning curve
    of the shipped model extended by the continuation's validation points (updates, CPU-minutes)."""
    import csv

    from slamp.pretrained import export_checkpoint

    out = CONTINUE / model
    state = json.loads((out / "continuation.json").read_text())
    start = state["start"]
    curve = {key: list(value) for key, value in start["learning_curve"].items()}
    rows = list(csv.DictReader(open(out / "validation.csv"))) if (out / "validation.csv").is_file() else []
    chunks = [line.split(",") for line in (out / "budget.csv").read_text().splitlines()]
    seconds = {int(reached): float(cpu) for reached, _, cpu in chunks}
    base_updates, base_minutes = start["updates_in_all"], start["cpu_minutes"]
    curve.setdefault("continued_from", len(curve["updates"]))  # index of the first point of the continuation
    for row in rows:
        step = int(row["step"])
        curve["updates"].append(base_updates + step)
        curve["cpu_minutes"].append(round(base_minutes + _minutes_at(step, seconds) + state["cpu_seconds_before"] / 60, 1))
        for key in ("psnr_best", "ssim_best", "psnr_mean", "ssim_mean"):
            curve[key].append(round(float(row[key]), 4))
    cpu_seconds = state["cpu_seconds_before"] + sum(seconds.values())
    done = _updates_in(out)
    SNAPSHOTS.mkdir(exist_ok=True)
    path = export_checkpoint(out / "last.pt", model, folder=SNAPSHOTS, metrics={
        "updates_in_all": base_updates + done, "cpu_minutes": round(base_minutes + cpu_seconds / 60, 1),
        "continuation_cpu_seconds": cpu_seconds, "continued_from_shipped": True, "device": "cpu",
        "continuation": {"init_from": state["init_from"], "seed": state["seed"], "lr": state["lr"],
                         "lr_from_update": state.get("lr_from_update", {}),
                         "batch_size": state["batch_size"], "val_seed": VAL_SEED, "settings": CONTINUE_SETTINGS},
        "learning_curve": curve})
    print(f"wrote {path.relative_to(ROOT)}: {base_updates + done} updates in all, "
          f"{cpu_seconds / 3600:.2f} CPU-hours of continuation", flush=True)
    return path


CONTINUATION_FIGURE = ROOT / "docs" / "continuation_curves.png"


def _continuation_schedule(continuation: dict) -> str:
    """The continuation's learning rate(s) and batch as the snapshot records them, e.g. ``lr 3e-4, 1e-4
    from update 13,650; batch 8`` (``lr_from_update``: ``{update: lr}``, updates since the shipped weights)."""
    from slamp.config import TrainConfig

    steps = _lr_steps(continuation)
    rates = ", ".join([f"lr {_rate(steps[0][1])}"] + [f"{_rate(rate)} from update {update:,}" for update, rate in steps[1:]])
    return f"{rates}; batch {continuation.get('batch_size') or TrainConfig.preset(PRESET).batch_size}"


def _rate(rate: float) -> str:
    """A learning rate as the figure and the README write it: 0.0003 -> ``3e-4``."""
    return f"{rate:.0e}".replace("e-0", "e-")


def _lr_steps(continuation: dict) -> list[tuple[int, float]]:
    """``[(update, lr), ...]`` from update 0 on (updates since the shipped weights): the snapshot's
    ``lr_from_update`` where it records steps, else its one ``lr`` (the preset's when it has none)."""
    from slamp.config import TrainConfig

    steps = sorted((int(update), float(rate)) for update, rate in continuation.get("lr_from_update", {}).items())
    if not steps or steps[0][0] != 0:
        steps.insert(0, (0, float(continuation.get("lr", TrainConfig.preset(PRESET).lr))))
    return steps


def continuation_figure(path: Path = CONTINUATION_FIGURE) -> Path:
    """Issue 35's curves: validation PSNR and SSIM (96 held-out clips, val seed 6750, best of 10)
    of the screening arms (``shipped_training/screening.csv``) and of the continuation
    (``shipped_training/slamp.pt``'s curve after the shipped part), against updates since the shipped
    weights and CPU-hours, with the shipped model and the black frame on the same clips."""
    import csv

    from matplotlib.figure import Figure

    from slamp.pretrained import info

    rows = list(csv.DictReader(open(SNAPSHOTS / "screening.csv")))
    fixed = {row["arm"]: row for row in rows if row["arm"] in ("shipped", "black_frame")}
    metrics = info(str(SNAPSHOTS / "slamp.pt"))["metrics"]
    curve = metrics["learning_curve"]
    first, start = curve["continued_from"], curve["updates"][curve["continued_from"] - 1]
    hours0 = curve["cpu_minutes"][first - 1] / 60
    label = f"continuation ({_continuation_schedule(metrics.get('continuation', {}))})"
    figure = Figure(figsize=(11, 6.5), layout="constrained")
    axes = figure.subplots(2, 2, sharey="row")
    for row, metric in enumerate(("psnr", "ssim")):
        updates = [0] + [u - start for u in curve["updates"][first:]]
        hours = [0] + [m / 60 - hours0 for m in curve["cpu_minutes"][first:]]
        values = [float(fixed["shipped"][f"{metric}_best"])] + curve[f"{metric}_best"][first:]
        axes[row, 0].plot(updates, values, "o-", color="tab:green", label=label)
        axes[row, 1].plot(hours, values, "o-", color="tab:green", label=label)
        for arm, colour in (("lr1e-3", "tab:red"), ("lr1e-4", "tab:purple"), ("lr3e-4_b16", "tab:orange"),
                            ("finetune", "tab:brown"), ("bn_only", "tab:grey")):
            points = [(0, float(fixed["shipped"][f"{metric}_best"]))] + [
                (int(r["updates"]), float(r[f"{metric}_best"])) for r in rows if r["arm"] == arm]
            axes[row, 0].plot(*zip(*points), "s--", color=colour, alpha=0.7, markersize=4,
                              label=f"screen: {arm}" + (" (lr 1e-12: BatchNorm statistics only)" if arm == "bn_only" else ""))
        for update, rate in _lr_steps(metrics.get("continuation", {}))[1:]:  # where the learning rate changed
            axes[row, 0].axvline(update, color="tab:green", linestyle="--", linewidth=1, alpha=0.6,
                                 label=f"lr {_rate(rate)} from here" if row == 0 else None)
        for column in range(2):
            axes[row, column].axhline(float(fixed["black_frame"][f"{metric}_best"]), color="k", linestyle=":",
                                      label="all-black frame, same clips")
            axes[row, column].grid(alpha=0.3)
        axes[row, 0].set_ylabel({"psnr": "PSNR (dB), best of 10", "ssim": "SSIM, best of 10"}[metric])
    axes[1, 0].set_xlabel(f"updates since the weights shipped before ({start:,} updates)")
    axes[1, 1].set_xlabel("CPU-hours of the continuation (one thread)")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    figure.suptitle("Training the shipped SLAMP on: validation on 96 held-out clips (seed 6750), 5 → 20 frames")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def budget_fit(hours_ahead=(8.0, 16.0)) -> dict:
    """What more budget buys (issue 35): least-squares fits of the continuation's validation SSIM
    (``shipped_training/slamp.pt``'s curve after the shipped part) against CPU-hours, ``a + b ln(h)``
    over every point and ``a + b h`` over the points after 1,500 updates, with their predictions at
    ``hours_ahead`` CPU-hours and the black frame's SSIM on the same clips."""
    import csv

    import numpy as np

    from slamp.pretrained import info

    curve = info(str(SNAPSHOTS / "slamp.pt"))["metrics"]["learning_curve"]
    first, start = curve["continued_from"], curve["updates"][curve["continued_from"] - 1]
    hours = np.array([m / 60 for m in curve["cpu_minutes"][first:]]) - curve["cpu_minutes"][first - 1] / 60
    ssim = np.array(curve["ssim_best"][first:])
    late = np.array([u - start > 1500 for u in curve["updates"][first:]])
    log_b, log_a = np.polyfit(np.log(hours), ssim, 1)
    line_b, line_a = np.polyfit(hours[late], ssim[late], 1)
    black = next(float(r["ssim_best"]) for r in csv.DictReader(open(SNAPSHOTS / "screening.csv"))
                 if r["arm"] == "black_frame")
    return {"points": len(ssim), "hours": round(float(hours[-1]), 2), "last_ssim": ssim[-4:].round(3).tolist(),
            "log_fit": {"a": round(log_a, 4), "b": round(log_b, 4),
                        **{f"at_{h:g}h": round(log_a + log_b * np.log(h), 3) for h in hours_ahead}},
            "line_after_1500": {"a": round(line_a, 4), "per_hour": round(line_b, 4),
                                **{f"at_{h:g}h": round(line_a + line_b * h, 3) for h in hours_ahead}},
            "black_frame": black}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["train", "export", "evaluate", "references", "record", "curves", "table",
                                         "check", "all", "train-on", "snapshot", "continuation-figure", "rename",
                                         "compare", "budget-fit", "ship"])
    parser.add_argument("names", nargs="*", help="rename: OLD NEW; compare: FIRST SECOND (evaluated models)")
    parser.add_argument("--model", default="slamp", choices=MODELS, help="train-on, snapshot, ship: which model")
    parser.add_argument("--hours", type=float, default=8.0, help="train-on: CPU-hours of continuation in all")
    parser.add_argument("--updates", type=int, default=750,
                        help="train: updates of each model (default 750, what the shipped models had)")
    parser.add_argument("--chunk", type=int, default=CHUNK, help=f"train: updates per turn of the round robin (default {CHUNK})")
    parser.add_argument("--lr", type=float, default=None,
                        help="train: learning rate from here on, resuming the same runs (a decay stage; default the preset's)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                        help="train, export, evaluate, record: which models (default: all)")
    parser.add_argument("--continue", dest="continued", action="store_true",
                        help="train: start new runs from the shipped weights; export: append to their curves")
    args = parser.parse_args(argv)
    step = args.step
    if step in ("train", "all"):
        train(args.updates, args.continued, args.chunk, args.lr, args.models)
    if step in ("export", "all"):
        export(args.continued, args.models)
    if step in ("evaluate", "all"):
        evaluate(args.models)
    if step in ("references", "all"):
        evaluate_references()
    if step == "references" and tuple(args.models) == MODELS:  # `all` records them with the models; with
        record_references()                                      # --models, `record --models` checks them
    if step in ("record", "all"):
        record(tuple(args.models))
    if step in ("curves", "all"):
        print(f"wrote {curves().relative_to(ROOT)}")
        print(f"wrote {per_frame_figure().relative_to(ROOT)}")
    if step in ("table", "all"):
        print(table())
        print()
        print(paired_table())
    if step == "train-on":
        train_on(args.model, args.hours, args.lr or 1e-3, args.chunk if args.chunk != CHUNK else 500,
                 lr_given=args.lr is not None)
    if step == "snapshot":
        snapshot(args.model)
    if step == "ship":
        print(f"wrote {ship(args.model).relative_to(ROOT)} from {SNAPSHOTS.name}/{args.model}.pt")
    if step == "continuation-figure":
        print(f"wrote {continuation_figure().relative_to(ROOT)}")
    if step == "budget-fit":
        print(json.dumps(budget_fit(), indent=2))
    if step == "compare":
        if len(args.names) != 2:
            parser.error("compare takes FIRST SECOND")
        print(json.dumps(compare(*args.names), indent=2))
    if step == "rename":
        if len(args.names) != 2:
            parser.error("rename takes OLD NEW")
        print(f"wrote {rename(*args.names).relative_to(ROOT)}")
    if step == "check":
        print(json.dumps(check_results(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
