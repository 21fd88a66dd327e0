"""Best-of-N evaluation throughput: all samples in one batch vs one sample at a time.

The public code draws the 100 samples of the protocol one after another; `slamp.evaluate`
generates up to `max_batch` futures per call. Both score the same number of samples with the same
model; this measures test sequences per second for each, and the ratio.

    python benchmarks/evaluation.py [--quick] [--preset tiny] [--device cuda] [--out benchmarks/results/evaluation.json]
"""
import argparse
import json
import time
from pathlib import Path

import torch

from slamp.evaluate import evaluate
from slamp.models import SLAMP


def sequences_per_second(model, videos, num_samples, max_batch, n_past, n_future):
    start = time.perf_counter()
    evaluate(model, [videos], n_past, n_future, num_samples, metrics=("psnr", "ssim"), max_batch=max_batch,
             keep_best=False, progress=False)
    if videos.is_cuda:
        torch.cuda.synchronize()
    return len(videos) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sequences and samples (a minute on a CPU)")
    parser.add_argument("--preset", default="tiny", help="model preset (tiny, mnist, ...)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/evaluation.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    sequences, num_samples = (4, 10) if args.quick else (16, 100)
    n_past, n_future = 5, 20
    model = SLAMP.from_preset(args.preset).to(args.device).eval()
    videos = torch.rand(sequences, n_past + n_future, model.config.channels, *model.config.image_size, device=args.device)
    sequences_per_second(model, videos[:1], 2, 2, n_past, n_future)  # warm-up
    one_at_a_time = sequences_per_second(model, videos, num_samples, sequences, n_past, n_future)
    batched = sequences_per_second(model, videos, num_samples, 2048, n_past, n_future)
    result = {"device": args.device, "torch": torch.__version__, "preset": args.preset, "sequences": sequences,
              "num_samples": num_samples, "n_past": n_past, "n_future": n_future,
              "one_sample_at_a_time_seq_per_s": one_at_a_time, "batched_seq_per_s": batched,
              "speedup": batched / one_at_a_time}
    print(f"{args.preset} on {args.device}, best of {num_samples}, {sequences} sequences: one sample at a time "
          f"{one_at_a_time:.3f} seq/s, batched {batched:.3f} seq/s, speed-up {batched / one_at_a_time:.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
