"""Two rewritten kernels of `slamp.evaluate`, each against what it replaces, on a CPU.

- **Decoder output layer as matrix product + fold** (`slamp.evaluate.FoldedTransposedConv`, used by
  `fast_sampler` on a CPU): each preset's output layers (pixels: `channels`; flow: 2) as oneDNN's
  transposed convolution against one matrix product and `F.fold`, channels-last as the sampler
  runs them, with the largest difference between the two.
- **Decoder head as a linear layer** (the same class): the DCGAN and VGG decoders' first layer, a
  transposed convolution from the 1x1 features to 4x4, computed as the linear layer it is.
- **Mask net's last convolution, folded** (`slamp.evaluate.folded_convolution`, used by
  `fast_sampler` from 16 mask channels on): the 3x3 convolution to one channel, the same way.
- **SSIM against a shared target** (`slamp.metrics.ssim_of_samples`, used by `score_frames`):
  `--samples` futures of each sequence scored against its target, the target's local statistics
  filtered once per target frame, against `ssim` on every (sample, target) pair.

Both sides run in one process, alternating `--repeats` times after an untimed call each, freed
memory kept (as `slamp evaluate` runs); the ratio (old / new, > 1: the new way is faster) is the
median of the rounds.

    python benchmarks/evaluation_kernels.py --quick              # tiny and mnist, 16 futures
    python benchmarks/evaluation_kernels.py                      # every preset, 64 futures
"""
import argparse
import sys
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import default_out, format_table, model_class, seed_everything, start_run, write_json  # noqa: E402

from slamp.kernels import FoldedTransposedConv, fold_batchnorm, folded_convolution  # noqa: E402
from slamp.metrics import ssim, ssim_of_samples  # noqa: E402
from slamp.models import PRESETS  # noqa: E402
from slamp.runtime import keep_freed_memory  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny and mnist, 16 futures, 3 repeats")
    parser.add_argument("--presets", nargs="+", default=None, choices=sorted(PRESETS),
                        help="model presets (default: all; --quick: tiny mnist)")
    parser.add_argument("--futures", type=int, default=None, help="frames per output-layer call (default 64, "
                        "evaluate's CPU chunk; --quick 16)")
    parser.add_argument("--sequences", type=int, default=None, help="SSIM: sequences (default 8; --quick 2)")
    parser.add_argument("--samples", type=int, default=None, help="SSIM: samples per sequence (default 40; --quick 8)")
    parser.add_argument("--frames", type=int, default=20, help="SSIM: frames per sample")
    parser.add_argument("--repeats", type=int, default=None, help="alternating timed rounds (default 7; --quick 3)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON (default benchmarks/results/evaluation_kernels[_quick].json)")
    args = parser.parse_args(argv)
    args.presets = args.presets or (["tiny", "mnist"] if args.quick else sorted(PRESETS))
    args.futures = args.futures or (16 if args.quick else 64)
    args.sequences = args.sequences or (2 if args.quick else 8)
    args.samples = args.samples or (8 if args.quick else 40)
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.out = args.out or default_out("evaluation_kernels", args.quick)
    return args


def compare(ways: dict, repeats: int) -> dict:
    """Median seconds of each ``{name: call}``, timed in alternation after one untimed call each."""
    seconds = {name: [] for name in ways}
    with torch.inference_mode():
        for call in ways.values():
            call()
        for _ in range(repeats):
            for name, call in ways.items():
                start = time.perf_counter()
                call()
                seconds[name].append(time.perf_counter() - start)
    return {name: sorted(s)[len(s) // 2] for name, s in seconds.items()}


def output_layer_input(model, conv, futures: int) -> tuple[torch.Tensor, list[int]]:
    """What a decoder's output layer reads (channels-last) and the size it writes, per backbone:
    DCGAN doubles the finest skip's size, VGG and conv keep the frame size."""
    size = list(model.config.image_size)
    if model.config.backbone in ("vgg", "conv"):
        finer = size
    else:
        with torch.inference_mode():
            finer = list(model.encoder(torch.rand(1, model.config.channels, *size))[1][0].shape[-2:])
        size = [2 * n for n in finer]
    x = torch.rand(futures, conv.in_channels, *finer).contiguous(memory_format=torch.channels_last)
    return x, size


def output_layer_rows(model, futures: int, repeats: int) -> list[dict]:
    """Each decoder's output layer of ``model``, its head and its mask net's last convolution:
    oneDNN vs the rewritten layer."""
    rows = []
    folded = fold_batchnorm(model).to(memory_format=torch.channels_last)
    for name in ("pixel_decoder", "flow_decoder"):
        conv = getattr(folded, name).out
        x, size = output_layer_input(model, conv, futures)
        rows.append(layer_row(name, conv, FoldedTransposedConv(conv), x, size, repeats, output_size=size))
    head = folded.pixel_decoder.head[0]  # from the features (1x1) to 4x4: a linear layer
    x = torch.rand(futures, head.in_channels, 1, 1).contiguous(memory_format=torch.channels_last)
    rows.append(layer_row("pixel_decoder.head", head, FoldedTransposedConv(head), x, list(head.kernel_size), repeats))
    conv = folded.mask_net.net[-2]  # the mask net's last convolution, to one channel
    x = torch.rand(futures, conv.in_channels, *model.config.image_size).contiguous(memory_format=torch.channels_last)
    rows.append(layer_row("mask_net", conv, folded_convolution(conv), x, list(model.config.image_size), repeats))
    return rows


def layer_row(name: str, conv, rewritten, x, size: list[int], repeats: int, **call) -> dict:
    """``conv`` (as oneDNN runs it) against ``rewritten`` on ``x`` (``call``: their keyword arguments)."""
    with torch.inference_mode():
        difference = float((conv(x, **call) - rewritten(x, **call)).abs().max())
    seconds = compare({"oneDNN": lambda: conv(x, **call), "fold": lambda: rewritten(x, **call)}, repeats)
    return {"part": name, "layer": f"{conv.in_channels}->{conv.out_channels}, {conv.kernel_size[0]}x"
            f"{conv.kernel_size[1]}/{conv.stride[0]}, {size[0]}x{size[1]}", "onednn_seconds": seconds["oneDNN"],
            "fold_seconds": seconds["fold"], "speedup": seconds["oneDNN"] / seconds["fold"], "max_difference": difference}


def ssim_row(sequences: int, samples: int, frames: int, repeats: int) -> dict:
    """SSIM of ``samples`` futures per sequence: per (sample, target) pair vs the shared target."""
    futures = torch.rand(sequences, samples, frames, 1, 64, 64)
    target = torch.rand(sequences, frames, 1, 64, 64)

    def pairs():
        expanded = target[:, None].expand_as(futures)
        return ssim(futures.flatten(0, 2), expanded.flatten(0, 2)).view(sequences, samples, frames)
    with torch.inference_mode():
        difference = float((pairs() - ssim_of_samples(futures, target)).abs().max())
    seconds = compare({"pairs": pairs, "shared": lambda: ssim_of_samples(futures, target)}, repeats)
    return {"sequences": sequences, "samples": samples, "frames": frames, "pairs_seconds": seconds["pairs"],
            "shared_seconds": seconds["shared"], "speedup": seconds["pairs"] / seconds["shared"],
            "max_difference": difference}


def main(argv=None) -> dict:
    args = parse_args(argv)
    info = start_run(args.threads, torch.device("cpu"))
    keep_freed_memory()  # as `slamp evaluate` runs on a CPU
    seed_everything(args.seed)
    result = {"benchmark": "evaluation_kernels", "quick": args.quick, "args": vars(args), "machine": info,
              "output_layers": {}}
    print(f"Rewritten kernels of slamp.evaluate on {info['device_name']} ({info['torch_threads']} threads), median of "
          f"{args.repeats} alternating rounds (ratio > 1: the new way is faster)")
    ssim_result = ssim_row(args.sequences, args.samples, args.frames, args.repeats)
    result["ssim"] = ssim_result
    print(f"\nSSIM of {args.sequences} x {args.samples} samples x {args.frames} frames (64x64): per pair "
          f"{ssim_result['pairs_seconds']:.3f} s, target shared {ssim_result['shared_seconds']:.3f} s, "
          f"ratio {ssim_result['speedup']:.2f}, max |diff| {ssim_result['max_difference']:.1e}")
    rows = []
    for preset in args.presets:
        model = model_class("SLAMP").from_preset(preset).eval()
        for row in output_layer_rows(model, args.futures, args.repeats):
            rows.append({"preset": preset, **row})
        result["output_layers"][preset] = [r for r in rows if r["preset"] == preset]
        write_json(args.out, result)  # after each preset: a long run keeps what it measured
    print(f"\nOutput layers (decoders; mask net, used folded from 16 channels) and the decoder head, "
          f"{args.futures} futures per call:")
    print(format_table([{**r, "onednn_ms": r["onednn_seconds"] * 1e3, "fold_ms": r["fold_seconds"] * 1e3} for r in rows],
                       [("preset", "preset", ""), ("part", "part", ""), ("layer", "layer", ""),
                        ("onednn_ms", "oneDNN ms", ".2f"), ("fold_ms", "fold ms", ".2f"), ("speedup", "ratio", ".2f"),
                        ("max_difference", "max |diff|", ".1e")]))
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
