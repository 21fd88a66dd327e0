"""How fast is `slamp.warp.warp` against the public code's formulation?

The public SLAMP code computes the out-of-image mask by warping an all-ones image (a second
`grid_sample`); `slamp` tests the sampling coordinates instead. Both give the same pixels
(tests/test_warp.py); this measures the time, forward and backward, at the paper's MNIST size
(batch 32, one channel, 64x64) and at KTH/BAIR-like sizes.

    python benchmarks/warp.py [--quick] [--device cuda] [--out benchmarks/results/warp.json]
"""
import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from slamp.warp import pixel_grid, warp


def warp_all_ones_mask(frames, flow):
    """The public code's rule: zero-padded grid_sample, masked where a warped all-ones image < 0.9999."""
    _, _, height, width = frames.shape
    coords = pixel_grid(height, width, frames.device) + flow
    grid = torch.stack([2 * coords[:, 0] / (width - 1) - 1, 2 * coords[:, 1] / (height - 1) - 1], -1)
    out = F.grid_sample(frames, grid, align_corners=True)
    ones = F.grid_sample(torch.ones_like(frames), grid, align_corners=True)
    return out * (ones >= 0.9999)


def seconds_per_call(fn, frames, flow, repeats):
    def step():
        flow.grad = None
        fn(frames, flow).sum().backward()
        if frames.is_cuda:
            torch.cuda.synchronize()
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a few seconds on CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/warp.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    repeats = 5 if args.quick else 50
    rows = []
    for name, (batch, channels, height, width) in {"mnist": (32, 1, 64, 64), "kth/bair": (20, 3, 64, 64),
                                                   "cityscapes": (8, 3, 128, 256)}.items():
        frames = torch.rand(batch, channels, height, width, device=args.device)
        flow = (3 * torch.randn(batch, 2, height, width, device=args.device)).requires_grad_()
        ours = seconds_per_call(warp, frames, flow, repeats)
        official = seconds_per_call(warp_all_ones_mask, frames, flow, repeats)
        rows.append({"size": name, "shape": [batch, channels, height, width], "slamp_ms": 1e3 * ours,
                     "all_ones_mask_ms": 1e3 * official, "speedup": official / ours})
        print(f"{name:>10} {str((batch, channels, height, width)):>18}: slamp {1e3 * ours:7.2f} ms, "
              f"all-ones mask {1e3 * official:7.2f} ms, speed-up {official / ours:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"device": args.device, "torch": torch.__version__, "repeats": repeats, "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
