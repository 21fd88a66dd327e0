"""Time of one Adam step over all parameters of a model: PyTorch's default implementation against
the fused kernel that `slamp.runtime.adam` uses (the same update, one call for every tensor).

    python benchmarks/optimizer.py                 # SLAMP at the tiny and mnist presets, 20 repeats
    python benchmarks/optimizer.py --quick         # tiny only, 5 repeats
"""
import argparse
import sys
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    default_out,
    machine_info,
    model_class,
    resolve_device,
    seed_everything,
    summarize_seconds,
    time_calls,  # noqa: E402
    write_json,
)


def measure(model, fused: bool, repeats: int, device) -> dict:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=fused)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    optimizer.step()  # allocate the moments before timing
    return summarize_seconds(time_calls(optimizer.step, repeats, device))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "mnist"])
    parser.add_argument("--model", default="SLAMP")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.presets, args.repeats = ["tiny"], 5
    device = resolve_device(args.device)
    rows = []
    for preset in args.presets:
        seed_everything(0)
        model = model_class(args.model).from_preset(preset).to(device)
        default, fused = (measure(model, flag, args.repeats, device) for flag in (False, True))
        rows.append({"model": args.model, "preset": preset, "parameters": model.num_parameters(),
                     "default_ms": 1000 * default["median_s"], "fused_ms": 1000 * fused["median_s"],
                     "speedup": default["median_s"] / fused["median_s"]})
        print(f"{args.model} {preset:>6}: Adam step {rows[-1]['default_ms']:.1f} ms default, "
              f"{rows[-1]['fused_ms']:.1f} ms fused ({rows[-1]['speedup']:.1f}x)")
    result = {"machine": machine_info(device), "rows": rows}
    write_json(args.out or default_out("optimizer", args.quick), result)
    return result


if __name__ == "__main__":
    main()
