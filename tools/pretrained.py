"""Make the models shipped in slamp/pretrained/ and the README's results table, reproducibly.

    python tools/pretrained.py train      # train SVG, SLAMP-Baseline and SLAMP with one budget (runs/pretrained/)
    python tools/pretrained.py export     # last.pt of each run -> slamp/pretrained/<model>.pt (float16)
    python tools/pretrained.py evaluate   # best-of-100 on the first 32 SM-MNIST test sequences (results/pretrained/)
    python tools/pretrained.py references # the floors (black, last frame, mean frame) on the same sequences,
                                          # recorded in results.json under "references"
    python tools/pretrained.py record     # those numbers and the small CI check -> slamp/pretrained/results.json
    python tools/pretrained.py table      # the README's table, from slamp/pretrained/results.json
    python tools/pretrained.py check      # the small evaluation that tests/test_pretrained.py repeats

Every step goes through the public commands (`slamp train`, `slamp evaluate`), with fixed seeds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("svg", "slamp_baseline", "slamp")
NAMES = {"svg": "SVG", "slamp_baseline": "SLAMP-Baseline", "slamp": "SLAMP"}
# One budget for the three models: the `tiny` preset (2 + 4 frames, batch 16, lr 1e-3), 600 updates.
TRAIN = ["epochs=12", "epoch_size=50", "val_every=200", "checkpoint_every=100", "log_every=10"]
EVALUATE = ["--sequences", "32", "--num-samples", "100"]  # 5 -> 20 frames, the first 32 test sequences
CHECK = {"sequences": 8, "num_samples": 10}  # what tests/test_pretrained.py re-runs in CI
PAPER = {"svg": (14.50, 0.7090), "slamp": (18.07, 0.7736)}  # Table 4, SM-MNIST, best of 100
# Predictors that learn nothing, scored by `slamp evaluate --reference` on the models' sequences.
REFERENCES = {"black": "all-black frame", "last_frame": "last conditioning frame", "mean_frame": "mean training frame"}


def run(argv: list[str]) -> None:
    from slamp.cli import main

    print("$ slamp", " ".join(argv), flush=True)
    if main(argv) != 0:
        sys.exit(f"slamp {' '.join(argv)} failed")


def train() -> None:
    for model in MODELS:
        run(["train", "--preset", "tiny", "--set", f"model={model}", *TRAIN,
             "--out", str(ROOT / "runs" / "pretrained" / model), "--overwrite"])


def export() -> None:
    from slamp.pretrained import export_checkpoint, FOLDER

    for model in MODELS:
        run_folder = ROOT / "runs" / "pretrained" / model
        summary = json.loads((run_folder / "summary.json").read_text())
        path = export_checkpoint(run_folder / "last.pt", model, metrics={
            "train_seconds": summary["seconds"], "updates_per_second": summary["updates_per_second"],
            "device": summary["device"], "validation_psnr_best": summary["best_psnr"]}, folder=FOLDER)
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1e6:.2f} MB)")


def evaluate() -> None:
    for model in MODELS:
        run(["evaluate", "--pretrained", model, *EVALUATE, "--out", str(ROOT / "results" / "pretrained" / model)])


def evaluate_references() -> None:
    """The floors with the protocol of EVALUATE (one sample each: they are deterministic), in
    results/pretrained/references/<name>/."""
    run(["evaluate", "--reference", "all", *EVALUATE, "--out", str(ROOT / "results" / "pretrained" / "references")])


def record_references() -> dict:
    """Add the floors to results.json (under "references"), next to the models already recorded."""
    recorded = json.loads(RESULTS.read_text())
    recorded["references"] = _recorded_references(recorded["models"])
    RESULTS.write_text(json.dumps(recorded, indent=2) + "\n")
    return recorded["references"]


def _summary(path: Path) -> dict:
    summary = json.loads(path.read_text())
    return {"settings": summary["settings"], "results": {
        head: {m: {"mean": v["mean"], "ci95": v["ci95"]} for m, v in metrics.items()}
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
                            progress=False).summary()["final"]
        results[model] = {metric: round(summary[metric]["mean"], 4) for metric in ("psnr", "ssim")}
    return results


RESULTS = ROOT / "slamp" / "pretrained" / "results.json"


def record() -> dict:
    """The evaluation of every model (from results/pretrained/) and the CI check, in one file."""
    import platform

    import torch

    sequences = EVALUATE[EVALUATE.index("--sequences") + 1]
    results = {"protocol": f"SRVP's SM-MNIST test set, first {sequences} sequences, condition on 5, predict 20, "
                           "best of 100 samples by PSNR/SSIM averaged over frames; mean ± 95% CI over sequences",
               "versions": {"torch": torch.__version__, "python": platform.python_version()},
               "models": {}, "check": {"settings": CHECK, "results": check_results()}}
    for model in MODELS:
        results["models"][model] = _summary(ROOT / "results" / "pretrained" / model / "summary.json")
    if (ROOT / "results" / "pretrained" / "references").is_dir():  # the floors, when they were evaluated
        results["references"] = _recorded_references(results["models"])
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


def table() -> str:
    recorded = json.loads(RESULTS.read_text())
    lines = ["| model (`slamp.pretrained`) | PSNR ↑ | SSIM ↑ | paper PSNR | paper SSIM |",
             "|---|---|---|---|---|"]
    for model in MODELS:
        final = recorded["models"][model]["results"]["final"]
        paper = PAPER.get(model)
        paper_cells = f"{paper[0]:.2f} | {paper[1]:.4f}" if paper else "– | –"
        lines.append(f"| {NAMES[model]} (`{model}`) | {final['psnr']['mean']:.2f} ± {final['psnr']['ci95']:.2f} | "
                     f"{final['ssim']['mean']:.4f} ± {final['ssim']['ci95']:.4f} | {paper_cells} |")
    for name, reference in recorded.get("references", {}).items():  # the floors, on the same sequences
        final = reference["results"]["final"]
        lines.append(f"| floor: {REFERENCES[name]} (`--reference {name}`) | {final['psnr']['mean']:.2f} ± "
                     f"{final['psnr']['ci95']:.2f} | {final['ssim']['mean']:.4f} ± {final['ssim']['ci95']:.4f} | – | – |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["train", "export", "evaluate", "references", "record", "table", "check", "all"])
    step = parser.parse_args(argv).step
    if step in ("train", "all"):
        train()
    if step in ("export", "all"):
        export()
    if step in ("evaluate", "all"):
        evaluate()
    if step in ("references", "all"):
        evaluate_references()
    if step == "references":  # `all` records them with the models
        record_references()
    if step in ("record", "all"):
        record()
    if step in ("table", "all"):
        print(table())
    if step == "check":
        print(json.dumps(check_results(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
