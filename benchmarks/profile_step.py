"""Where one training step spends its time: `torch.profiler` over forward + backward + Adam.

Prints the operators with the most self time (CPU; on CUDA also the device's), the forward time
of each top-level part of the model (encoder, latent streams, decoders, mask net, motion
encoder: labelled with forward hooks, inclusive of everything they call), and the split
forward / backward / optimiser. Writes the tables to `benchmarks/results/profile_<preset>.txt`
and the numbers to `profile_<preset>.json` (`_quick` appended for `--quick`).

    python benchmarks/profile_step.py --quick                    # tiny SLAMP, batch 4: seconds
    python benchmarks/profile_step.py --preset mnist             # the paper's MNIST step (batch 32, 5 + 10 frames)
    python benchmarks/profile_step.py --preset mnist --batch-size 4 --per-step --model SVG
"""
import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    MODEL_NAMES,
    TrainStep,
    count_flops,
    default_out,
    format_table,
    model_class,
    resolve_device,
    seed_everything,
    start_run,
    time_calls,
    train_defaults,
    write_json,
)

from slamp.models import PRESETS  # noqa: E402


PHASES = ("step::forward", "step::backward", "step::optimizer")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny preset, batch 4, one profiled step (seconds)")
    parser.add_argument("--model", default="SLAMP", choices=MODEL_NAMES)
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS), help="model preset (default mnist; --quick: tiny)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the paper's (mnist 32, kth 20); --quick: 4")
    parser.add_argument("--n-past", type=int, default=None)
    parser.add_argument("--n-future", type=int, default=None)
    parser.add_argument("--per-step", action="store_true", help="profile the per-step path instead of the batched one")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--memory-format", default="contiguous", choices=["contiguous", "channels_last"],
                        help="the model's weights (and so its activations) in this layout")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=1, help="profiled steps")
    parser.add_argument("--warmup", type=int, default=1, help="unprofiled steps first")
    parser.add_argument("--rows", type=int, default=25, help="operators in the table")
    parser.add_argument("--no-flops", dest="flops", action="store_false",
                        help="skip counting the step's FLOPs (an extra, unprofiled step)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default benchmarks/results/profile_<preset>[_quick].json); "
                             "the table goes next to it as .txt")
    args = parser.parse_args(argv)
    args.preset = args.preset or ("tiny" if args.quick else "mnist")
    args.out = args.out or default_out(f"profile_{args.preset}", args.quick)
    return args, resolve_device(args.device)


class PhasedStep(TrainStep):
    """A :class:`TrainStep` whose forward, backward and optimiser step are labelled for the profiler."""

    def __call__(self):
        with record_function(PHASES[0]):
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
                total = self.objective(self.x)
        with record_function(PHASES[1]):
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(total).backward()
        with record_function(PHASES[2]):
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.last_loss = total.detach()


def label_modules(model: torch.nn.Module, prefix: str = "") -> list:
    """Forward hooks that open a profiler range ``module::<name>`` around each top-level child of
    ``model`` (inclusive time of its forward); a child that is used through named methods instead
    of ``forward`` (SLAMP's ``motion`` stream) has its own children labelled (``motion.encoder``).
    Returns the hook handles (``.remove()`` them)."""
    handles = []
    for name, child in model.named_children():
        if type(child).forward is torch.nn.Module.forward:  # never called as child(...)
            handles += label_modules(child, f"{prefix}{name}.")
            continue
        open_ranges = []

        def before(module, inputs, name=f"{prefix}{name}", open_ranges=open_ranges):
            scope = record_function(f"module::{name}")
            scope.__enter__()
            open_ranges.append(scope)

        def after(module, inputs, output, open_ranges=open_ranges):
            open_ranges.pop().__exit__(None, None, None)

        handles += [child.register_forward_pre_hook(before), child.register_forward_hook(after)]
    return handles


def _us(event, *names) -> float:
    for name in names:
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return 0.0


def _shapes(event, limit: int = 70) -> str:
    """The non-empty input shapes of a profiler event, shortened to ``limit`` characters."""
    shapes = [s for s in (getattr(event, "input_shapes", None) or []) if s]
    text = " ".join("x".join(map(str, s)) for s in shapes)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def main(argv=None) -> dict:
    args, device = parse_args(argv)
    info = start_run(args.threads, device)
    settings = train_defaults(args.preset)
    if args.quick and args.batch_size is None:
        settings["batch_size"] = 4
    for key in ("batch_size", "n_past", "n_future"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    seed_everything(args.seed)
    model = model_class(args.model).from_preset(args.preset).to(device)
    if args.memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    c = model.config
    x = torch.rand(settings["batch_size"], settings["n_past"] + settings["n_future"], c.channels, *c.image_size,
                   device=device)
    step = PhasedStep(model, x, settings["n_past"], per_step=args.per_step, amp=args.amp, lr=settings["lr"])
    path = "per_step" if args.per_step else "batched"
    title = (f"{args.model} preset {args.preset}, {path} path, batch {settings['batch_size']}, {args.memory_format}, "
             f"{settings['n_past']} + {settings['n_future']} frames, amp {args.amp}, on {info['device_name']} "
             f"({device}, {info['torch_threads']} threads), torch {info['torch']}")
    print(f"profiling {title}", flush=True)
    time_calls(step, args.warmup, device)
    gflop = count_flops(step) / 1e9 if args.flops else None
    handles = label_modules(model)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        seconds = time_calls(step, args.steps, device)
    for handle in handles:
        handle.remove()

    events = prof.key_averages()
    on_cuda = device.type == "cuda"
    sort_by = "self_cuda_time_total" if on_cuda else "self_cpu_time_total"
    labels = [e for e in events if e.key.startswith(("module::", "step::"))]
    ops = [e for e in events if not e.key.startswith(("module::", "step::", "ProfilerStep"))]
    self_key = (lambda e: _us(e, "self_device_time_total", "self_cuda_time_total")) if on_cuda \
        else (lambda e: _us(e, "self_cpu_time_total"))
    ops.sort(key=self_key, reverse=True)
    total_self = sum(self_key(e) for e in ops) or 1.0
    top = [{"op": e.key, "calls": int(e.count), "self_ms": self_key(e) / 1e3 / args.steps,
            "self_percent": 100 * self_key(e) / total_self,
            "self_cpu_ms": _us(e, "self_cpu_time_total") / 1e3 / args.steps,
            "total_cpu_ms": _us(e, "cpu_time_total") / 1e3 / args.steps} for e in ops[:args.rows]]
    by_shape = [e for e in prof.key_averages(group_by_input_shape=True)
                if not e.key.startswith(("module::", "step::", "ProfilerStep"))]
    by_shape.sort(key=self_key, reverse=True)
    top_shapes = [{"op": e.key, "input_shapes": _shapes(e), "calls": int(e.count),
                   "self_ms": self_key(e) / 1e3 / args.steps, "self_percent": 100 * self_key(e) / total_self}
                  for e in by_shape[:args.rows]]
    phases = {e.key: _us(e, "cpu_time_total") / 1e3 / args.steps for e in labels if e.key.startswith("step::")}
    forward_ms = phases.get(PHASES[0], 0.0) or 1.0
    modules = sorted(({"module": e.key.split("::", 1)[1], "calls": int(e.count) // args.steps,
                       "forward_cpu_ms": _us(e, "cpu_time_total") / 1e3 / args.steps,
                       "percent_of_forward": 100 * _us(e, "cpu_time_total") / 1e3 / args.steps / forward_ms}
                      for e in labels if e.key.startswith("module::")), key=lambda m: -m["forward_cpu_ms"])

    op_table = format_table(top, [("op", "operator", ""), ("calls", "calls", "d"),
                                  ("self_ms", "self ms" + (" (device)" if on_cuda else ""), ".1f"),
                                  ("self_percent", "% self", ".1f"), ("total_cpu_ms", "CPU total ms", ".1f")])
    shape_table = format_table(top_shapes, [("op", "operator", ""), ("input_shapes", "input shapes", ""),
                                            ("calls", "calls", "d"), ("self_ms", "self ms", ".1f"),
                                            ("self_percent", "% self", ".1f")])
    phase_rows = [{"phase": k.split("::")[1], "cpu_ms": phases.get(k)} for k in PHASES]
    phase_table = format_table(phase_rows, [("phase", "phase", ""), ("cpu_ms", "CPU ms (inclusive)", ".1f")])
    if on_cuda:
        phase_table += "\n(host time: CUDA kernels run asynchronously, so backward may absorb forward's device time)"
    module_table = format_table(modules, [("module", "module", ""), ("calls", "calls/step", "d"),
                                          ("forward_cpu_ms", "forward CPU ms", ".1f"),
                                          ("percent_of_forward", "% of forward", ".1f")])
    full = events.table(sort_by=sort_by, row_limit=args.rows)
    step_s = sum(seconds) / len(seconds)
    text = "\n\n".join([
        f"# one training step: {title}",
        f"profiled steps: {args.steps} (after {args.warmup} warm-up), {step_s:.3f} s per step under the profiler"
        + (f"; {gflop:.1f} GFLOP per step (convolutions and matrix products, forward + backward), "
           f"{gflop / step_s:.1f} GFLOP/s" if gflop else ""),
        "## top operators by self time (per step)\n" + op_table,
        "## top operators by self time and input shapes (per step)\n" + shape_table,
        "## phases (per step)\n" + phase_table,
        "## forward time of the model's parts (inclusive, per step; backward is not split by part"
        + ("; host time: CUDA kernels run asynchronously" if on_cuda else "") + ")\n" + module_table,
        "## torch.profiler's own table (totals over the profiled steps)\n" + full,
    ]) + "\n"
    print("\n" + text.split("## torch.profiler's own table")[0])
    txt = args.out.with_suffix(".txt")
    txt.parent.mkdir(parents=True, exist_ok=True)
    txt.write_text(text)
    print(f"wrote {txt}")
    result = {"benchmark": "profile_step", "quick": args.quick, "args": vars(args), "machine": info,
              "model": args.model, "preset": args.preset, "path": path, **settings,
              "parameters_m": model.num_parameters() / 1e6, "step_seconds_profiled": seconds,
              "gflop_per_step": gflop,
              "phases_cpu_ms": {k.split("::")[1]: v for k, v in phases.items()}, "modules": modules,
              "top_ops": top, "top_ops_by_shape": top_shapes, "table": str(txt)}
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
