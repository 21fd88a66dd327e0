"""The ``slamp`` command line (thin glue over the exported modules; no notebook teaches it).

    slamp demo [--out results/demo] [--seed 0]

``demo`` is the README's main job: it runs what the package can do end to end and writes a
figure, a GIF and ``metrics.json``. Later stages (data, models, training, evaluation) extend it
until it trains a tiny SLAMP on Stochastic Moving MNIST.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the demo writes files; it never needs a display


def run_demo(out: Path, seed: int = 0, fit_steps: int = 300) -> dict:
    """Warp a test pattern along known flows, recover a flow by gradient descent, and write
    ``warping.png``, ``warping.gif`` and ``metrics.json`` into ``out``. Returns the metrics."""
    import torch

    from slamp.viz import flow_legend, flow_to_colour, save_gif, show_row, demo_image
    from slamp.warp import fit_flow, rotation_flow, warp

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pattern = demo_image(64, 64)[None]
    size = pattern.shape[-2:]

    shift = torch.tensor([-3.0, 2.0]).view(1, 2, 1, 1).expand(1, 2, *size)
    shifted = warp(pattern, shift)
    identity_error = (warp(pattern, torch.zeros_like(shift)) - pattern).abs().max().item()
    shift_error = (shifted[..., :-2, 3:] - pattern[..., 2:, :-3]).abs().max().item()

    true_flow = torch.tensor([-1.5, 1.0]).view(1, 2, 1, 1).expand(1, 2, *size)
    fitted, losses = fit_flow(pattern, warp(pattern, true_flow), steps=fit_steps)
    endpoint_error = (fitted - true_flow)[..., 4:-4, 4:-4].norm(dim=1).mean().item()

    rotation = rotation_flow(*size, 30)[None]
    figure = show_row([pattern[0], warp(pattern, rotation)[0], flow_to_colour(rotation)[0],
                       flow_to_colour(fitted[..., 4:-4, 4:-4], max_flow=2.0)[0], flow_legend()],
                      ["source", "warped: rotate 30°", "rotation flow", "recovered shift flow", "colour key"])
    figure.savefig(out / "warping.png", dpi=120)
    spin = torch.cat([warp(pattern, rotation_flow(*size, a)[None]) for a in range(0, 360, 15)])
    save_gif(spin, out / "warping.gif", fps=12, scale=3)

    metrics = {
        "identity_max_abs_error": identity_error,
        "integer_shift_max_abs_error": shift_error,
        "fit_flow_initial_loss": losses[0],
        "fit_flow_final_loss": losses[-1],
        "fit_flow_endpoint_error_px": endpoint_error,
        "seconds": round(time.perf_counter() - started, 2),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slamp", description="SLAMP video prediction.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the end-to-end demo and write figures and metrics")
    demo.add_argument("--out", type=Path, default=Path("results/demo"), help="output folder")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--fit-steps", type=int, default=300, help="gradient steps of the flow fit")
    args = parser.parse_args(argv)

    if args.command == "demo":
        metrics = run_demo(args.out, args.seed, args.fit_steps)
        for key, value in metrics.items():
            print(f"{key:>30}: {value}")
        print(f"wrote {args.out / 'warping.png'}, {args.out / 'warping.gif'}, {args.out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
