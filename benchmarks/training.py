"""Training throughput: sequences per second and peak memory of one training step.

One step is what `slamp train` does per update: the loss of a batch of clips, backward, and an
Adam step (with autocast and a gradient scaler when `--amp` asks). For each model (`SVG`,
`SLAMPBaseline`, `SLAMP`) and preset (`mnist`, `kth`, `tiny`) it compares the two ways `slamp`
computes the teacher-forced loss:

- `batched`: `model.loss(x, n_past)`: every frame encoded once and the encoders, decoders, warp
  and mask net run over all time steps as one batch; only the LSTMs step through time;
- `per_step`: `model.loss(x, n_past, per_step=True)`: one time step after another, as the public
  code does (and as scheduled sampling must).

Batch sizes and clip lengths default to the paper's training settings (MNIST: batch 32, 5 + 10
frames; KTH: batch 20, 10 + 10); one paper-size MNIST step takes ~30 s on a 2-core CPU, so
`--batch-size` can shrink them. Clips are random pixels (the speed of a step does not depend on
what the frames show). Throughput is the batch size over the median step time.

    python benchmarks/training.py --quick                       # tiny (batch 4) and mnist (batch 2), < 1 min on a CPU
    python benchmarks/training.py                               # paper sizes, all three models, both paths
    python benchmarks/training.py --presets mnist --batch-size 8 --amp off bf16 --compile off on
"""
import argparse
import itertools
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ALLOCATORS,
    MODEL_NAMES,
    TIMED_MODELS,
    TrainStep,
    count_flops,
    default_out,
    error_text,
    format_table,
    measure_step,
    model_class,
    resolve_device,
    seed_everything,
    start_run,
    train_defaults,
    use_allocator,
    write_json,
)

from slamp.models import PRESETS  # noqa: E402


PATHS = ("batched", "per_step")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="tiny (batch 4) and mnist (batch 2), one timed step each: well under a minute on a CPU")
    parser.add_argument("--models", nargs="+", default=list(TIMED_MODELS), choices=MODEL_NAMES)
    parser.add_argument("--presets", nargs="+", default=None, choices=sorted(PRESETS),
                        help="model presets (default mnist kth; --quick: tiny mnist)")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="one batch size for every preset (default: the paper's, mnist 32, kth 20; "
                             "--quick: tiny 4, mnist 2)")
    parser.add_argument("--n-past", type=int, default=None, help="conditioning frames (default: the preset's training value)")
    parser.add_argument("--n-future", type=int, default=None, help="predicted frames (default: the preset's training value)")
    parser.add_argument("--amp", nargs="+", default=["off"], choices=["off", "bf16", "fp16"],
                        help="autocast dtypes to compare (CPU autocast supports bf16; it is fast only with AVX-512 BF16/AMX)")
    parser.add_argument("--memory-format", nargs="+", default=["contiguous"], choices=["contiguous", "channels_last"],
                        help="the model's weights (and so its activations) in this layout; several values compare them")
    parser.add_argument("--allocator", nargs="+", default=["keep"], choices=ALLOCATORS,
                        help="the C allocator's policy: keep (what `slamp train` sets on a CPU: freed memory "
                             "reused, no page faults) or settled (glibc's own, the public code's); several compare them")
    parser.add_argument("--public-code-baseline", action="store_true",
                        help="also time the per-step path as the public code runs (contiguous layout, glibc's "
                             "allocator, no autocast or compile) and print every configuration's time over it")
    parser.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on"],
                        help="torch.compile the loss (off, on or both); a failure is recorded, not raised")
    parser.add_argument("--flops", action="store_true",
                        help="also count the FLOPs of a step (one extra step per configuration) and report GFLOP/s")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed steps per configuration (default: 3 on CPU, 20 on CUDA; --quick: 1)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps first (default: 2 on CPU, where the heap grows to its size over the "
                             "first steps, 3 on CUDA; --quick: 1, none for non-tiny presets on CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/training[_quick].json)")
    args = parser.parse_args(argv)
    args.presets = args.presets or (["tiny", "mnist"] if args.quick else ["mnist", "kth"])
    device = resolve_device(args.device)
    args.repeats = args.repeats or (1 if args.quick else 20 if device.type == "cuda" else 3)
    args.out = args.out or default_out("training", args.quick)
    return args, device


def settings_for(preset: str, args, device) -> dict:
    """Batch size and clip length of ``preset``: the paper's training values unless overridden."""
    settings = train_defaults(preset)
    if args.quick and args.batch_size is None:
        settings["batch_size"] = 4 if preset == "tiny" else 2
    if args.warmup is not None:
        settings["warmup"] = args.warmup
    elif args.quick:  # one paper-size step costs seconds on a CPU: quick times the first one
        settings["warmup"] = 1 if preset == "tiny" or device.type == "cuda" else 0
    else:
        settings["warmup"] = 3 if device.type == "cuda" else 2
    for key in ("batch_size", "n_past", "n_future"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    return settings


def run_one(model_name, preset, path, amp, compile_, settings, device, args, layout="contiguous",
            allocator="keep") -> dict:
    row = {"model": model_name, "preset": preset, "path": path, "amp": amp, "compile": compile_ == "on", "layout": layout,
           "allocator": allocator if use_allocator(allocator) else "unchanged (not glibc)",
           "batch_size": settings["batch_size"], "n_past": settings["n_past"], "n_future": settings["n_future"],
           "warmup": max(settings["warmup"], int(compile_ == "on")), "repeats": args.repeats}
    seed_everything(args.seed)
    if compile_ == "on":
        torch._dynamo.reset()
    try:
        model = model_class(model_name).from_preset(preset).to(device)
        if layout == "channels_last":  # oneDNN's (and cuDNN's) convolutions prefer it; measured, not assumed
            model = model.to(memory_format=torch.channels_last)
        row["parameters_m"] = model.num_parameters() / 1e6
        c = model.config
        x = torch.rand(settings["batch_size"], settings["n_past"] + settings["n_future"], c.channels, *c.image_size,
                       device=device)
        step = TrainStep(model, x, settings["n_past"], per_step=path == "per_step", amp=amp,
                         compile=compile_ == "on", lr=settings["lr"])
        row.update(measure_step(step, device, row["warmup"], args.repeats))
        row["loss"] = float(step.last_loss)
        if args.flops:
            try:
                row["gflop_per_step"] = count_flops(step) / 1e9
                row["gflop_per_s"] = row["gflop_per_step"] / row["median_s"]
            except Exception as error:  # noqa: BLE001 -- e.g. under torch.compile: the timing stands
                row["flops_error"] = error_text(error)
        row["sequences_per_s"] = settings["batch_size"] / row["median_s"]
        row["frames_per_s"] = row["sequences_per_s"] * (settings["n_past"] + settings["n_future"] - 1)
        row["error"] = None
    except Exception as error:  # noqa: BLE001 -- compile/AMP may be unsupported here: record, go on
        row["error"] = error_text(error)
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def speedups(rows) -> list[dict]:
    """batched over per_step throughput for every configuration that has both."""
    out = []
    key = lambda r: (r["model"], r["preset"], r["amp"], r["compile"], r["batch_size"], r.get("layout"),  # noqa: E731
                     r.get("allocator"))
    by_key = {}
    for r in rows:
        if r.get("error") is None:
            by_key.setdefault(key(r), {})[r["path"]] = r
    for k, paths in by_key.items():
        if {"batched", "per_step"} <= paths.keys():
            b, p = paths["batched"], paths["per_step"]
            out.append({"model": k[0], "preset": k[1], "amp": k[2], "compile": k[3], "batch_size": k[4], "layout": k[5],
                        "allocator": k[6],
                        "batched_seq_per_s": b["sequences_per_s"], "per_step_seq_per_s": p["sequences_per_s"],
                        "speedup": b["sequences_per_s"] / p["sequences_per_s"],
                        "memory_ratio": (p["delta_mib"] / b["delta_mib"]) if b["delta_mib"] > 0 else None})
    return out


PUBLIC_CODE = {"path": "per_step", "amp": "off", "compile": False, "layout": "contiguous", "allocator": "settled"}


def is_public_code(row) -> bool:
    return all(row.get(k) == v for k, v in PUBLIC_CODE.items())


def over_public_code(rows) -> list[dict]:
    """Each configuration's step time over the public code's way (:data:`PUBLIC_CODE`) for the same
    model, preset and batch: below 1 is faster."""
    base = {(r["model"], r["preset"], r["batch_size"]): r for r in rows if r.get("error") is None and is_public_code(r)}
    out = []
    for r in rows:
        b = base.get((r["model"], r["preset"], r["batch_size"]))
        if b is not None and r is not b and r.get("error") is None:
            out.append({**{k: r[k] for k in ("model", "preset", "batch_size", "path", "amp", "compile", "layout",
                                             "allocator")},
                        "median_s": r["median_s"], "public_code_s": b["median_s"],
                        "time_ratio": r["median_s"] / b["median_s"]})
    return out


def main(argv=None) -> dict:
    args, device = parse_args(argv)
    info = start_run(args.threads, device)
    print(f"training step on {info['device_name']} ({device}), torch {info['torch']}, {info['torch_threads']} threads, "
          f"load average {info['load_average_1_5_15']}", flush=True)
    plan = []
    for p, m in itertools.product(args.presets, args.models):
        if args.public_code_baseline:  # first, while the allocator is still the process's own
            plan.append((m, p, "per_step", "off", "off", "contiguous", "settled"))
        plan += [(m, p, path, amp, comp, layout, allocator) for amp, comp, layout, allocator, path
                 in itertools.product(args.amp, args.compile, args.memory_format, args.allocator, args.paths)
                 if (m, p, path, amp, comp, layout, allocator) not in plan]
    rows = []
    for model_name, preset, path, amp, compile_, layout, allocator in tqdm(plan, desc="configurations",
                                                                           disable=len(plan) < 2):
        row = run_one(model_name, preset, path, amp, compile_, settings_for(preset, args, device), device, args, layout,
                      allocator)
        rows.append(row)
        tqdm.write(f"  {model_name:>13} {preset:>5} {path:>8} amp={amp} compile={compile_} {layout} {allocator}: "
                   + (f"{row['sequences_per_s']:.3g} seq/s, {row['median_s']:.3g} s/step, +{row['delta_mib']:.0f} MiB"
                      if row["error"] is None else f"FAILED {row['error']}"))
    columns = [("model", "model", ""), ("preset", "preset", ""), ("path", "path", ""), ("amp", "amp", ""),
               ("compile", "compile", ""), ("layout", "layout", ""), ("allocator", "allocator", ""),
               ("batch_size", "batch", "d"), ("parameters_m", "params M", ".2f"),
               ("median_s", "s/step", ".3f"), ("sequences_per_s", "seq/s", ".3g"), ("first_call_s", "1st call s", ".2f"),
               ("delta_mib", "step MiB", ".0f"), ("peak_mib", "peak MiB", ".0f")]
    if args.flops:
        columns += [("gflop_per_step", "GFLOP/step", ".1f"), ("gflop_per_s", "GFLOP/s", ".1f")]
    columns.append(("error", "error", ""))
    print()
    print(format_table(rows, columns))
    ratios = speedups(rows)
    if ratios:
        print("\nbatched over per-step:")
        print(format_table(ratios, [("model", "model", ""), ("preset", "preset", ""), ("amp", "amp", ""),
                                    ("compile", "compile", ""), ("layout", "layout", ""), ("allocator", "allocator", ""),
                                    ("batch_size", "batch", "d"), ("speedup", "speed-up", ".2f"),
                                    ("memory_ratio", "per-step/batched memory", ".2f")]))
    against_public = over_public_code(rows)
    if against_public:
        print("\nstep time over the public code's (per-step, contiguous, glibc's allocator; below 1 is faster):")
        print(format_table(against_public, [("model", "model", ""), ("preset", "preset", ""), ("batch_size", "batch", "d"),
                                            ("path", "path", ""), ("amp", "amp", ""), ("compile", "compile", ""),
                                            ("layout", "layout", ""), ("allocator", "allocator", ""),
                                            ("median_s", "s/step", ".2f"), ("public_code_s", "public code s/step", ".2f"),
                                            ("time_ratio", "ratio", ".2f")]))
    measure = next((r["memory_measure"] for r in rows if r.get("memory_measure")), None)
    print(f"\nmemory: {measure}")
    result = {"benchmark": "training", "quick": args.quick, "args": vars(args), "machine": info,
              "memory_measure": measure, "rows": rows, "speedups": ratios, "over_public_code": against_public}
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
