"""The ``slamp`` command line (thin glue over the exported modules; no notebook teaches it).

    slamp demo      [--out results/demo] [--seed 0] [--updates 200]
    slamp train     --preset tiny [--set field=value ...] [--out DIR] [--resume [PATH]] [--overwrite]
    slamp evaluate  (--checkpoint PATH | --pretrained NAME) [--num-samples 100] [--out results/eval]
    slamp evaluate  --reference black|last_frame|mean_frame|all [--sequences N] [--out results/eval]

``python -m slamp ...`` is the same command; ``torchrun --nproc_per_node N -m slamp train ...``
trains on N processes (DDP). ``demo`` is the README's main job: it trains a tiny SLAMP on
Stochastic Moving MNIST, evaluates it with the best-of-N protocol and writes a figure, a GIF and
``metrics.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the commands write files; they never need a display

EXIT_BAD_INPUT, EXIT_FAILED = 2, 1


def _heads(model) -> tuple[str, ...]:
    """Every head the model has: x̂ only for SVG; x̂, x^p, x^f and their average otherwise."""
    from slamp.evaluate import HEADS

    return HEADS if model.motion_head else ("final",)


def run_demo(out: Path, seed: int = 0, updates: int = 200, sequences: int = 32, num_samples: int = 20,
             progress: bool = True) -> dict:
    """Train the ``tiny`` SLAMP on Stochastic Moving MNIST for ``updates`` updates, evaluate it
    (condition on 5 frames, predict 10, best of ``num_samples``, ``sequences`` test sequences) and
    write ``loss.png``, ``prediction.png``, ``prediction.gif`` and ``metrics.json`` into ``out``
    (the run itself, with its checkpoints, in ``out/run``). Returns the metrics."""
    import torch
    from torch.utils.data import DataLoader

    from slamp.data import MovingMNISTTestSet
    from slamp.evaluate import evaluate
    from slamp.train import TrainConfig, load_model, plot_training, sample_figure, save_figure, train
    from slamp.viz import save_gif

    out = Path(out)
    started = time.perf_counter()
    config = TrainConfig.preset("tiny", seed=seed, epochs=1, epoch_size=updates, val_every=updates,
                                checkpoint_every=updates, log_every=max(1, min(10, updates // 4)),
                                out=str(out / "run"))
    summary = train(config, overwrite=True)
    model, _ = load_model(out / "run" / "last.pt")
    save_figure(plot_training(out / "run"), out / "loss.png")

    n_past, n_future = 5, 10
    test_set = MovingMNISTTestSet.generate(num_sequences=sequences, n_frames=n_past + n_future, seed=42)
    torch.manual_seed(seed)
    result = evaluate(model, DataLoader(test_set, batch_size=16), n_past, n_future, num_samples,
                      metrics=("psnr", "ssim"), heads=_heads(model), progress=progress)
    scores = result.summary()
    truth = test_set[0]  # the sequence whose best sample is result.best_frames[0]
    torch.manual_seed(seed)
    samples = model.generate(truth[None, :n_past], n_future, num_samples=4).frames[0]  # (4, F, C, H, W)
    best = result.best_frames[0]
    figure = sample_figure(truth, torch.cat([best[None], samples]), n_past,
                           title="Stochastic Moving MNIST: truth (top), the best of "
                                 f"{num_samples} samples, then 4 random samples")
    save_figure(figure, out / "prediction.png")
    # The GIF: truth | best sample, side by side; the conditioning frames are the truth in both.
    both = torch.cat([truth, torch.cat([truth[:n_past], best])], dim=-1)
    save_gif(both, out / "prediction.gif", fps=4, scale=3)

    metrics = {
        "model": "SLAMP (tiny preset)", "updates": summary["updates"],
        "updates_per_second": round(summary["updates_per_second"], 3),
        "final_loss": _last_logged_loss(out / "run" / "train.csv"),
        "protocol": {"n_past": n_past, "n_future": n_future, "num_samples": num_samples, "sequences": sequences},
        "results": {head: {metric: {"mean": v["mean"], "ci95": v["ci95"]} for metric, v in values.items()}
                    for head, values in scores.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "device": summary["device"], "torch": torch.__version__, "python": platform.python_version(), "seed": seed,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _last_logged_loss(path) -> float:
    from slamp.train import read_log

    return float(read_log(path)["total"][-1])


def _train(args) -> int:
    from slamp.train import TrainConfig, apply_overrides, train

    overrides = list(args.set) + ([f"out={args.out}"] if args.out is not None else [])
    config = apply_overrides(TrainConfig.preset(args.preset), overrides)
    if args.show_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    summary = train(config, resume=args.resume, stop_after=args.stop_after, overwrite=args.overwrite)
    if _is_main_process():  # under torchrun, one summary rather than one per process
        print(json.dumps(summary, indent=2))
    return 0


def _is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _load_for_evaluation(args):
    """The model to evaluate and the dataset it was trained on."""
    if args.pretrained is not None:
        from slamp.pretrained import info, load

        return load(args.pretrained), info(args.pretrained)["train_config"]["dataset"]
    from slamp.train import load_model

    model, config = load_model(args.checkpoint)
    return model, config.dataset


def _test_videos(dataset: str, data_root, sequences: int | None, n_frames: int):
    """The test split of ``dataset`` as clips of ``n_frames``, the first ``sequences`` of them."""
    from torch.utils.data import Subset

    if dataset == "mnist":
        from slamp.data import MovingMNISTTestSet

        # SRVP's 5,000-sequence test set (the paper's) is made once and kept in data/mnist/; asking for
        # more than 25 frames makes another set by the same recipe, not a longer version of it.
        test_set = MovingMNISTTestSet.cached(n_frames=max(25, n_frames))
    else:
        from slamp.train import REAL_DATASETS, TrainConfig, data_root as default_root

        root = Path(data_root) if data_root else default_root(TrainConfig(dataset=dataset, model_preset=dataset))
        test_set = REAL_DATASETS[dataset](root, "test", seq_len=n_frames)
    if sequences is not None:
        test_set = Subset(test_set, range(min(sequences, len(test_set))))
    return test_set


def _evaluate(args) -> int:
    import torch
    from torch.utils.data import DataLoader

    from slamp.evaluate import PROTOCOLS, evaluate
    from slamp.train import select_device

    if args.reference is not None:
        return _evaluate_references(args)
    model, dataset = _load_for_evaluation(args)
    dataset = args.dataset or dataset
    default_past, default_future = PROTOCOLS[dataset]
    n_past, n_future = args.n_past or default_past, args.n_future or default_future
    device = select_device(args.device)
    model.to(device)
    test_set = _test_videos(dataset, args.data_root, args.sequences, n_past + n_future)
    heads = args.heads or _heads(model)
    per_frame = tuple(m for m in args.metrics if m != "fvd") or ("psnr",)  # FVD scores sets, not frames
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    result = evaluate(model, DataLoader(test_set, batch_size=args.batch_size), n_past, n_future, args.num_samples,
                      metrics=per_frame, heads=tuple(heads), max_batch=args.max_batch, device=device)
    source = args.pretrained and f"pretrained:{args.pretrained}" or str(args.checkpoint)
    _save_evaluation(result, args, args.out, test_set, dataset, device, started, source,
                     f"{type(model).__name__} on {dataset}: {len(test_set)} sequences, {n_past} -> {n_future} "
                     f"frames, best of {args.num_samples} samples")
    return 0


def _save_evaluation(result, args, out: Path, test_set, dataset: str, device, started: float, source: str,
                     title: str) -> None:
    """FVD when asked for, the run's settings, ``summary.json`` (and the rest) in ``out``, and a report."""
    import torch

    n_past, n_future = result.settings["n_past"], result.settings["n_future"]
    per_frame = result.settings["metrics"]
    if "fvd" in args.metrics:  # the true videos against the conditioning frames + each best sample
        from slamp.metrics import fvd

        real = torch.stack([test_set[i][:n_past + n_future] for i in range(len(test_set))])
        result.settings["fvd"] = fvd(real, torch.cat([real[:, :n_past], result.best_frames.float()], 1))
    result.settings.update({"dataset": dataset, "sequences": len(test_set), "seed": args.seed,
                            "seconds": round(time.perf_counter() - started, 1), "device": str(device),
                            "source": source})
    result.save(out)
    print(f"{title} ({result.settings['seconds']} s)")
    for head, metrics in result.summary().items():
        cells = "  ".join(f"{name} {v['mean']:.4f} ± {v['ci95']:.4f}" for name, v in metrics.items())
        print(f"  {head:>10}: {cells}")
    if "fvd" in result.settings:
        print(f"  FVD (best samples by {per_frame[0]}): {result.settings['fvd']:.2f}")
    kept = ", best_samples.pt" if result.best_frames is not None else ""
    print(f"wrote {Path(out) / 'summary.json'}, per_frame.csv{kept}")


def _mean_frame(dataset: str, data_root, n_frames: int):
    """The mean training frame of ``dataset`` ``(C, H, W)``, from training clips only."""
    from slamp.evaluate import mean_training_frame

    if dataset == "mnist":
        return mean_training_frame()  # 1,000 clips of 15 frames of the training stream
    from slamp.train import REAL_DATASETS, TrainConfig, data_root as default_root

    root = Path(data_root) if data_root else default_root(TrainConfig(dataset=dataset, model_preset=dataset))
    return mean_training_frame(REAL_DATASETS[dataset](root, "train", seq_len=n_frames))


def _evaluate_references(args) -> int:
    """``--reference``: score the floors (black, last_frame, mean_frame) on the test sequences and
    protocol a model would be scored on; one reference writes to ``--out``, ``all`` to ``--out/<name>``."""
    from torch.utils.data import DataLoader

    from slamp.evaluate import PROTOCOLS, REFERENCES, evaluate_reference
    from slamp.train import select_device

    dataset = args.dataset or "mnist"
    if dataset not in PROTOCOLS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {sorted(PROTOCOLS)}")
    if args.heads and set(args.heads) != {"final"}:
        raise ValueError(f"a reference predicts frames only (head 'final'), not {args.heads}")
    default_past, default_future = PROTOCOLS[dataset]
    n_past, n_future = args.n_past or default_past, args.n_future or default_future
    device = select_device(args.device)
    test_set = _test_videos(dataset, args.data_root, args.sequences, n_past + n_future)
    per_frame = tuple(m for m in args.metrics if m != "fvd") or ("psnr",)
    names = REFERENCES if args.reference == "all" else (args.reference,)
    mean_frame = _mean_frame(dataset, args.data_root, n_past + n_future) if "mean_frame" in names else None
    for name in names:
        started = time.perf_counter()
        result = evaluate_reference(name, DataLoader(test_set, batch_size=args.batch_size), n_past, n_future,
                                    per_frame, mean_frame, device, keep_best="fvd" in args.metrics, progress=True)
        out = Path(args.out) if len(names) == 1 else Path(args.out) / name
        _save_evaluation(result, args, out, test_set, dataset, device, started, f"reference:{name}",
                         f"reference {name} on {dataset}: {len(test_set)} sequences, {n_past} -> {n_future} "
                         f"frames, deterministic (1 sample)")
    return 0


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="slamp", description="SLAMP video prediction.")
    commands = main_parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train a tiny SLAMP on Stochastic Moving MNIST, evaluate it, "
                                            "write figures, a GIF and metrics")
    demo.add_argument("--out", type=Path, default=Path("results/demo"), help="output folder")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--updates", type=int, default=200, help="training updates (about 1.5 per second on 2 CPU cores)")
    demo.add_argument("--sequences", type=int, default=32, help="test sequences to evaluate")
    demo.add_argument("--num-samples", type=int, default=20, help="futures per test sequence (best of N)")

    train = commands.add_parser("train", help="train a model (presets: mnist, kth, bair, kitti, cityscapes, tiny)")
    train.add_argument("--preset", default="tiny", help="the paper's settings for a dataset, or tiny (default)")
    train.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                       help="override config fields, e.g. --set lr=1e-3 batch_size=8 model=svg")
    train.add_argument("--out", default=None, help="output folder (default: the preset's, e.g. runs/tiny)")
    train.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                       help="continue exactly where <out>/last.pt (or CHECKPOINT) stood")
    train.add_argument("--overwrite", action="store_true", help="start afresh in a folder that holds a run")
    train.add_argument("--stop-after", type=int, default=None, metavar="N", help="stop after N updates in all")
    train.add_argument("--show-config", action="store_true", help="print the config and exit")

    evaluation = commands.add_parser("evaluate", help="the paper's best-of-N protocol on a test set")
    source = evaluation.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a training checkpoint (last.pt or best.pt)")
    source.add_argument("--pretrained", help="a model shipped with slamp (slamp.pretrained.available())")
    source.add_argument("--reference", choices=["black", "last_frame", "mean_frame", "all"],
                        help="a floor instead of a model: all-black frames, the last conditioning frame held, or "
                             "the mean training frame (one sample: they are deterministic); all: each in --out/<name>")
    evaluation.add_argument("--dataset", default=None,
                            help="default: the one the model was trained on (mnist for --reference)")
    evaluation.add_argument("--data-root", default=None, help="folder of a prepared real dataset")
    evaluation.add_argument("--sequences", type=int, default=None, help="evaluate only the first N test sequences")
    evaluation.add_argument("--n-past", type=int, default=None, help="conditioning frames (default: the paper's)")
    evaluation.add_argument("--n-future", type=int, default=None, help="predicted frames (default: the paper's)")
    evaluation.add_argument("--num-samples", type=int, default=100, help="futures per sequence (best of N)")
    evaluation.add_argument("--metrics", nargs="+", default=["psnr", "ssim"], help="psnr ssim lpips fvd (FVD of the best samples; needs the I3D weights)")
    evaluation.add_argument("--heads", nargs="+", default=None,
                            help="final appearance motion average (default: all the model has)")
    evaluation.add_argument("--batch-size", type=int, default=16, help="test sequences per batch")
    evaluation.add_argument("--max-batch", type=int, default=2048, help="futures generated per call")
    evaluation.add_argument("--device", default="auto")
    evaluation.add_argument("--seed", type=int, default=0)
    evaluation.add_argument("--out", type=Path, default=Path("results/eval"))
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from slamp.data.files import DataError
    from slamp.train import CheckpointError, ConfigError, NonFiniteLossError

    try:
        if args.command == "demo":
            metrics = run_demo(args.out, args.seed, args.updates, args.sequences, args.num_samples)
            final = metrics["results"]["final"]
            print(f"SLAMP (tiny), {metrics['updates']} updates: PSNR {final['psnr']['mean']:.2f} ± "
                  f"{final['psnr']['ci95']:.2f} dB, SSIM {final['ssim']['mean']:.4f} (best of "
                  f"{args.num_samples}, {args.sequences} sequences, 5 -> 10 frames), {metrics['seconds']} s")
            print(f"wrote {args.out}/prediction.png, prediction.gif, loss.png, metrics.json (run in {args.out}/run)")
            return 0
        if args.command == "train":
            return _train(args)
        return _evaluate(args)
    except ConfigError as error:
        print(f"slamp {args.command}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (CheckpointError, NonFiniteLossError, DataError, FileExistsError, ValueError, RuntimeError) as error:
        # Also LPIPSUnavailable, FVDUnavailable and PretrainedError (RuntimeErrors that say what to do).
        print(f"slamp {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
