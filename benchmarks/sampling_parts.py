"""Where one call of `slamp.evaluate`'s sampler spends its time: each part's seconds and GFLOP/s.

Times one `generate` call of what `evaluate` samples from (`slamp.evaluate.fast_sampler`: folded
BatchNorm, channels-last on a CPU) by the wall clock around each top-level part of the model
(forward hooks: encoder, latent streams, pixel and flow decoders, mask net, motion encoder), after
`--warmup` untimed calls, and counts each part's floating-point operations
(`torch.utils.flop_counter`: convolutions and matrix products; the LSTMs' fused kernels are not counted). A part running at close to what
the machine can do (the yardstick: a dense 256-channel convolution, timed in the same run) leaves
nothing to gain but arithmetic: that is what this shows. No
`torch.profiler` here: on a CPU it slowed the large convolutions two-fold and distorted the split.

    python benchmarks/sampling_parts.py --quick                       # tiny SLAMP, 2 sequences x 4 futures
    python benchmarks/sampling_parts.py --preset mnist --sequences 4 --num-samples 16
"""
import argparse
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


sys.path.insert(0, str(Path(__file__).resolve().parent))
import evaluation  # noqa: E402
from _common import (  # noqa: E402
    MODEL_NAMES,
    default_out,
    format_table,
    model_class,
    resolve_device,
    seed_everything,
    start_run,
    synchronize,
    write_json,
)

from slamp.kernels import fast_sampler  # noqa: E402
from slamp.runtime import keep_freed_memory  # noqa: E402


PARTS = ("image_encoder", "encoder", "appearance", "pixel_decoder", "flow_decoder", "mask_net", "motion.encoder", "motion.latent")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny preset, 2 sequences x 4 futures")
    parser.add_argument("--preset", default=None, help="model preset (default mnist; --quick: tiny)")
    parser.add_argument("--model", default="SLAMP", choices=MODEL_NAMES)
    parser.add_argument("--sequences", type=int, default=None, help="default 4 (--quick: 2)")
    parser.add_argument("--num-samples", type=int, default=None, help="futures per sequence (default 16; --quick: 4)")
    parser.add_argument("--n-past", type=int, default=5)
    parser.add_argument("--n-future", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON (default benchmarks/results/sampling_parts[_quick].json)")
    args = parser.parse_args(argv)
    args.preset = args.preset or ("tiny" if args.quick else "mnist")
    args.sequences = args.sequences or (2 if args.quick else 4)
    args.num_samples = args.num_samples or (4 if args.quick else 16)
    args.out = args.out or default_out("sampling_parts", args.quick)
    return args, resolve_device(args.device)


@contextmanager
def around_parts(sampler, on_enter, on_leave):
    """Call ``on_enter(name)`` and ``on_leave(name)`` around every forward of each part in
    :data:`PARTS` that ``sampler`` has (SVG has no motion head, SLAMP-Baseline no motion stream)."""
    hooks = []
    for name in PARTS:
        try:
            module = sampler.get_submodule(name)
        except AttributeError:
            continue
        hooks += [module.register_forward_pre_hook(lambda m, i, name=name: on_enter(name)),
                  module.register_forward_hook(lambda m, i, o, name=name: on_leave(name))]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def time_parts(sampler, call, device) -> tuple[float, dict]:
    """Seconds of one ``call()`` and of each part of ``sampler`` in it (inclusive, wall clock)."""
    seconds, started = defaultdict(float), {}

    def enter(name):
        synchronize(device)
        started[name] = time.perf_counter()

    def leave(name):
        synchronize(device)
        seconds[name] += time.perf_counter() - started[name]
    with around_parts(sampler, enter, leave):
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        return time.perf_counter() - start, dict(seconds)


def count_part_flops(sampler, call) -> dict:
    """Floating-point operations of each part in one ``call()``: the counter's running total read
    on entering and leaving each part (its module names would merge the two decoders)."""
    flops, entered = defaultdict(float), {}
    with FlopCounterMode(display=False) as counter:
        def enter(name):
            entered[name] = counter.get_total_flops()

        def leave(name):
            flops[name] += counter.get_total_flops() - entered[name]
        with around_parts(sampler, enter, leave):
            call()
    return dict(flops)


def convolution_gflop_per_s(device, batch: int = 32, repeats: int = 3) -> float:
    """The yardstick: a dense convolution (256 -> 256 channels, 3x3, 32x32, channels-last), the
    friendliest work these models have; a matrix product would not do (on some CPUs torch's fp32
    matrix product runs far below its convolutions)."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device, memory_format=torch.channels_last)
    x = torch.rand(batch, 256, 32, 32, device=device).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        conv(x)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            conv(x)
        synchronize(device)
    return 2 * batch * 32 * 32 * 256 * 256 * 9 * repeats / (time.perf_counter() - start) / 1e9


def main(argv=None) -> dict:
    args, device = parse_args(argv)
    info = start_run(args.threads, device)
    if device.type == "cpu":
        keep_freed_memory()  # as `slamp evaluate` runs
    seed_everything(args.seed)
    model = model_class(args.model).from_preset(args.preset).to(device).eval()
    evaluation.perturb_batchnorm(model)
    sampler = fast_sampler(model, device)
    past = torch.rand(args.sequences, args.n_past, model.config.channels, *model.config.image_size, device=device)
    noise = model.draw_noise(args.sequences * args.num_samples, args.n_past - 1 + args.n_future, device)

    def call():
        with torch.inference_mode():
            sampler.generate(past, args.n_future, args.num_samples, noise=noise)

    for _ in range(args.warmup):
        call()
    total, seconds = time_parts(sampler, call, device)
    flops = count_part_flops(sampler, call)
    rows = [{"part": name, "seconds": seconds[name], "share": seconds[name] / total, "gflop": flops.get(name, 0) / 1e9,
             "gflop_per_s": flops.get(name, 0) / 1e9 / seconds[name] if seconds[name] > 0 else None}
            for name in PARTS if name in seconds]
    rest = total - sum(r["seconds"] for r in rows)
    rows.append({"part": "rest (Python, warp, blend, stacking)", "seconds": rest, "share": rest / total})
    yardstick = convolution_gflop_per_s(device, 4 if args.quick else 32)
    print(f"{args.model} preset {args.preset} on {info['device_name']} ({device}, {info['torch_threads']} threads): one "
          f"sampling call, {args.sequences} sequences x {args.num_samples} futures, {args.n_past} -> {args.n_future} "
          f"frames: {total:.2f} s")
    print(format_table(rows, [("part", "part", ""), ("seconds", "seconds", ".2f"), ("share", "share", ".0%"),
                              ("gflop", "GFLOP", ".1f"), ("gflop_per_s", "GFLOP/s", ".0f")]))
    print(f"yardstick: a dense 256-channel 3x3 convolution runs at {yardstick:.0f} GFLOP/s here")
    result = {"benchmark": "sampling_parts", "quick": args.quick, "args": vars(args), "machine": info,
              "seconds": total, "rows": rows, "convolution_gflop_per_s": yardstick}
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
