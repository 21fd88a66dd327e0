"""How one training step grows: time and memory against batch size, clip length and resolution.

Each axis varies one thing and holds the others:

- `batch`: batch sizes (default 2 4 8 16) at the preset's training clip length;
- `length`: clip lengths T = frames per clip (default 6 10 15 20) at `--base-batch`;
- `resolution`: frame sizes (default 32 64 64x128 128 128x256) with the `conv` backbone (the
  DCGAN-64 and VGG-64 backbones work only at 64x64; `conv` takes any even size >= 32, as for
  KITTI and Cityscapes), small widths (`--conv-width`), at `--base-batch` and `--base-length`.

For each axis the order of growth is the slope of log(time) and log(memory) against log(size)
(least squares, `numpy.polyfit`): 1 is linear, 2 quadratic. Resolution is fitted against the
pixel count H*W. A slope below 1 means fixed costs (per-call overheads, the LSTMs, the optimiser)
are being amortised.

    python benchmarks/scaling.py --quick                    # tiny preset, two points per axis: seconds
    python benchmarks/scaling.py                            # mnist preset (the paper's model), default axes
    python benchmarks/scaling.py --preset tiny --axes batch length --batch-sizes 2 4 8 16 32
"""
import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ALLOCATORS,
    MODEL_NAMES,
    TrainStep,
    default_out,
    error_text,
    format_table,
    loglog_slope,
    measure_step,
    model_class,
    resolve_device,
    seed_everything,
    start_run,
    train_defaults,
    use_allocator,
    write_json,
)

from slamp.models import PRESETS, ModelConfig  # noqa: E402
from slamp.runtime import MEMORY_FORMATS, memory_format  # noqa: E402


AXES = ("batch", "length", "resolution")


def parse_size(text: str) -> tuple[int, int]:
    """``"64"`` → (64, 64); ``"64x128"`` → (64, 128) (height x width)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is N or HxW, found {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 32 or parts[0] % 2 or parts[1] % 2:
        raise argparse.ArgumentTypeError(f"the conv backbone needs an even height and width >= 32, found {text!r}")
    return tuple(parts)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny preset and widths, two points per axis, one step each")
    parser.add_argument("--model", default="SLAMP", choices=MODEL_NAMES)
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS),
                        help="model preset for the batch and length axes (default mnist; --quick: tiny)")
    parser.add_argument("--axes", nargs="+", default=list(AXES), choices=AXES)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="default 2 4 8 16 (--quick: 2 4)")
    parser.add_argument("--lengths", nargs="+", type=int, default=None,
                        help="frames per clip; default 6 10 15 20 (--quick: 4 8)")
    parser.add_argument("--resolutions", nargs="+", type=parse_size, default=None,
                        help="N or HxW; default 32 64 64x128 128 128x256 (--quick: 32 64)")
    parser.add_argument("--base-batch", type=int, default=None,
                        help="batch of the length and resolution axes (default 4; --quick: 2)")
    parser.add_argument("--base-length", type=int, default=None,
                        help="clip length of the batch and resolution axes (default: the preset's training length)")
    parser.add_argument("--conv-width", type=int, default=None,
                        help="first-layer and mask-net width of the resolution axis's conv model (default 32; --quick: 8)")
    parser.add_argument("--per-step", action="store_true", help="time the per-step path instead of the batched one")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--memory-format", default="auto", choices=MEMORY_FORMATS,
                        help="the weights' layout (auto: as `slamp train` sets it, channels-last on a CPU)")
    parser.add_argument("--allocator", default="keep", choices=ALLOCATORS,
                        help="the C allocator's policy on a CPU (keep: as `slamp train` sets it; settled: glibc's own)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed steps per point (default 3 on CPU, 10 on CUDA; --quick: 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per point (default 1, 3 on CUDA)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/scaling[_quick].json)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    q = args.quick
    args.preset = args.preset or ("tiny" if q else "mnist")
    args.batch_sizes = args.batch_sizes or ([2, 4] if q else [2, 4, 8, 16])
    args.lengths = args.lengths or ([4, 8] if q else [6, 10, 15, 20])
    args.resolutions = args.resolutions or ([(32, 32), (64, 64)] if q else
                                            [(32, 32), (64, 64), (64, 128), (128, 128), (128, 256)])
    args.base_batch = args.base_batch or (2 if q else 4)
    defaults = train_defaults(args.preset)
    args.base_length = args.base_length or defaults["n_past"] + defaults["n_future"]
    args.conv_width = args.conv_width or (8 if q else 32)
    args.repeats = args.repeats or (1 if q else 10 if device.type == "cuda" else 3)
    args.warmup = args.warmup if args.warmup is not None else (3 if device.type == "cuda" else 1)
    if min(args.lengths + [args.base_length]) < 2:
        parser.error("clips need at least 2 frames")
    args.out = args.out or default_out("scaling", q)
    return args, device


def conv_config(size, width: int) -> ModelConfig:
    """A small model on the conv backbone (the KITTI/Cityscapes family) at ``size`` (H, W)."""
    return ModelConfig(backbone="conv", channels=3, image_size=size, g_dim=2 * width, z_dim=max(width // 4, 2),
                       rnn_size=2 * width, width=width, mask_width=width)


def points(args) -> list[dict]:
    """Every (axis, x, batch, length, model config) to measure."""
    preset_config = ModelConfig.preset(args.preset)
    plan = []
    if "batch" in args.axes:
        plan += [{"axis": "batch", "x": b, "batch_size": b, "length": args.base_length, "config": preset_config}
                 for b in args.batch_sizes]
    if "length" in args.axes:
        plan += [{"axis": "length", "x": t, "batch_size": args.base_batch, "length": t, "config": preset_config}
                 for t in args.lengths]
    if "resolution" in args.axes:
        plan += [{"axis": "resolution", "x": h * w, "size": f"{h}x{w}", "batch_size": args.base_batch,
                  "length": args.base_length, "config": conv_config((h, w), args.conv_width)}
                 for h, w in args.resolutions]
    return plan


def measure(point, device, args) -> dict:
    row = {k: v for k, v in point.items() if k != "config"}
    c = point["config"]
    row.update(backbone=c.backbone, image_size=list(c.image_size))
    seed_everything(args.seed)
    try:
        model = model_class(args.model)(c).to(device).to(memory_format=memory_format(args.layout, device))
        row["parameters_m"] = model.num_parameters() / 1e6
        x = torch.rand(point["batch_size"], point["length"], c.channels, *c.image_size, device=device)
        n_past = max(1, point["length"] // 3)  # under teacher forcing the cost does not depend on it
        step = TrainStep(model, x, n_past, per_step=args.per_step, amp=args.amp)
        row.update(measure_step(step, device, args.warmup, args.repeats))
        row["sequences_per_s"] = point["batch_size"] / row["median_s"]
        row["error"] = None
    except Exception as error:  # noqa: BLE001 -- e.g. out of memory at the largest point: record it
        row["error"] = error_text(error)
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def fit_axes(rows) -> dict:
    """Log-log slopes of step time and step memory against each axis's size."""
    fits = {}
    for axis in AXES:
        good = [r for r in rows if r["axis"] == axis and r.get("error") is None]
        if len(good) >= 2:
            xs = [r["x"] for r in good]
            time_slope, time_intercept = loglog_slope(xs, [r["median_s"] for r in good])
            memory_slope, memory_intercept = loglog_slope(xs, [r["delta_mib"] for r in good])
            fits[axis] = {"x": "pixels (H*W)" if axis == "resolution" else axis, "points": len(good),
                          "time_slope": time_slope, "time_intercept": time_intercept,
                          "memory_slope": memory_slope, "memory_intercept": memory_intercept}
    return fits


def main(argv=None) -> dict:
    args, device = parse_args(argv)
    info = start_run(args.threads, device)
    args.allocator = args.allocator if use_allocator(args.allocator) else "unchanged (not glibc)"
    args.layout = "channels_last" if memory_format(args.memory_format, device) == torch.channels_last else "contiguous"
    path = "per_step" if args.per_step else "batched"
    print(f"{args.model} training step ({path} path, amp {args.amp}, {args.layout} layout, {args.allocator} "
          f"allocator) on {info['device_name']} ({device}), "
          f"{info['torch_threads']} threads, torch {info['torch']}", flush=True)
    plan = points(args)
    rows = []
    for point in tqdm(plan, desc="points", disable=len(plan) < 2):
        row = measure(point, device, args)
        rows.append(row)
        label = point.get("size", point["x"])
        tqdm.write(f"  {point['axis']:>10} {label!s:>8}: " + (f"{row['median_s']:.3g} s/step, +{row['delta_mib']:.0f} MiB"
                                                               if row["error"] is None else f"FAILED {row['error']}"))
    fits = fit_axes(rows)
    for axis in args.axes:
        axis_rows = [r for r in rows if r["axis"] == axis]
        model = f"{args.conv_width}-wide conv backbone" if axis == "resolution" else f"preset {args.preset}"
        print(f"\n{axis} ({model})")
        first = {"batch": [("batch_size", "batch", "d"), ("length", "T", "d")],
                 "length": [("length", "T", "d"), ("batch_size", "batch", "d")],
                 "resolution": [("size", "H x W", ""), ("batch_size", "batch", "d"), ("length", "T", "d")]}[axis]
        print(format_table(axis_rows, first + [("median_s", "s/step", ".3f"), ("sequences_per_s", "seq/s", ".3g"),
                                               ("delta_mib", "step MiB", ".0f"), ("error", "error", "")]))
        if axis in fits:
            f = fits[axis]
            print(f"order of growth in {f['x']}: time ~ x^{f['time_slope']:.2f}, memory ~ x^{f['memory_slope']:.2f}")
    measure_text = next((r["memory_measure"] for r in rows if r.get("memory_measure")), None)
    print(f"\nmemory: {measure_text}")
    configs = {"preset": asdict(ModelConfig.preset(args.preset)),
               "resolution": asdict(conv_config((64, 64), args.conv_width)) | {"image_size": "varies"}}
    result = {"benchmark": "scaling", "quick": args.quick, "args": vars(args), "machine": info, "model": args.model,
              "path": path, "model_configs": configs, "memory_measure": measure_text, "rows": rows, "fits": fits}
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
