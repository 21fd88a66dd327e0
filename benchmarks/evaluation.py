"""Best-of-N evaluation throughput: all samples in one batch vs one sample at a time.

The public code draws the 100 samples of the protocol one after another; `slamp.evaluate`
generates up to `max_batch` futures per call. Both score the same number of samples with the same
model (`slamp.evaluate.evaluate`, PSNR and SSIM of every sample, the best of N kept); this
measures test sequences per second for each, and the ratio:

- `batched`: every sample of every sequence of the batch in one `model.generate(x_past,
  n_future, num_samples)` call (unless `--max-batch` caps the futures per call);
- `one sample at a time`: a loop of `generate(x_past, n_future, num_samples=1)` (the sequences of
  the batch still go together, as in the public code).

The JSON counts the `generate` calls each made. The test clips are random pixels (the cost of
sampling and scoring does not depend on them).

    python benchmarks/evaluation.py [--quick] [--preset tiny] [--model SLAMP] [--device cuda]
                                    [--out benchmarks/results/evaluation.json]
"""
import argparse
import sys
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parent))
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

from slamp.evaluate import evaluate  # noqa: E402
from slamp.models import PRESETS  # noqa: E402


class CountCalls:
    """Counts the calls of ``model.generate`` while active (the model is otherwise untouched)."""

    def __init__(self, model):
        self.model, self.calls, self.futures = model, 0, 0

    def __enter__(self):
        original = self.model.generate

        def generate(x_past, n_future, num_samples=1, *args, **kwargs):
            self.calls += 1
            self.futures += len(x_past) * num_samples
            return original(x_past, n_future, num_samples, *args, **kwargs)
        self.model.generate = generate
        return self

    def __exit__(self, *exc):
        del self.model.generate  # back to the class's method


def sequences_per_second(model, videos, num_samples, max_batch, n_past, n_future):
    synchronize(videos.device)
    start = time.perf_counter()
    evaluate(model, [videos], n_past, n_future, num_samples, metrics=("psnr", "ssim"), max_batch=max_batch,
             keep_best=False, progress=False)
    synchronize(videos.device)
    return len(videos) / (time.perf_counter() - start)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sequences and samples (seconds to a minute on a CPU)")
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="model preset (tiny, mnist, ...)")
    parser.add_argument("--model", default="SLAMP", choices=MODEL_NAMES)
    parser.add_argument("--sequences", type=int, default=None, help="test sequences (default 16; --quick: 4)")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="futures per sequence, N of best-of-N (default 100; --quick: 10)")
    parser.add_argument("--n-past", type=int, default=5)
    parser.add_argument("--n-future", type=int, default=20)
    parser.add_argument("--max-batch", type=int, default=None,
                        help="futures per generate call of the batched run (default: all of them, sequences x samples)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="auto | cpu | cuda")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/evaluation[_quick].json)")
    args = parser.parse_args(argv)
    args.sequences = args.sequences or (4 if args.quick else 16)
    args.num_samples = args.num_samples or (10 if args.quick else 100)
    args.max_batch = args.max_batch or args.sequences * args.num_samples
    args.out = args.out or default_out("evaluation", args.quick)
    return args, resolve_device(args.device)


def main(argv=None) -> dict:
    args, device = parse_args(argv)
    info = start_run(args.threads, device)
    seed_everything(args.seed)
    sequences, num_samples, n_past, n_future = args.sequences, args.num_samples, args.n_past, args.n_future
    model = model_class(args.model).from_preset(args.preset).to(device).eval()
    videos = torch.rand(sequences, n_past + n_future, model.config.channels, *model.config.image_size, device=device)
    sequences_per_second(model, videos[:1], 2, 2, n_past, n_future)  # warm-up
    with CountCalls(model) as looped:
        one_at_a_time = sequences_per_second(model, videos, num_samples, sequences, n_past, n_future)
    with CountCalls(model) as batched_calls:
        batched = sequences_per_second(model, videos, num_samples, args.max_batch, n_past, n_future)
    result = {"device": str(device), "torch": torch.__version__, "preset": args.preset, "sequences": sequences,
              "num_samples": num_samples, "n_past": n_past, "n_future": n_future,
              "one_sample_at_a_time_seq_per_s": one_at_a_time, "batched_seq_per_s": batched,
              "speedup": batched / one_at_a_time,
              "benchmark": "evaluation", "quick": args.quick, "model": args.model, "max_batch": args.max_batch,
              "generate_calls": {"one_sample_at_a_time": looped.calls, "batched": batched_calls.calls},
              "futures_generated": {"one_sample_at_a_time": looped.futures, "batched": batched_calls.futures},
              "args": vars(args), "machine": info}
    rows = [{"way": "one sample at a time", "calls": looped.calls, "per_call": looped.futures // max(looped.calls, 1),
             "seq_per_s": one_at_a_time, "samples_per_s": one_at_a_time * num_samples},
            {"way": "batched", "calls": batched_calls.calls, "per_call": batched_calls.futures // max(batched_calls.calls, 1),
             "seq_per_s": batched, "samples_per_s": batched * num_samples}]
    print(f"{args.model} preset {args.preset} on {info['device_name']} ({device}, {info['torch_threads']} threads): "
          f"best of {num_samples}, {sequences} sequences, {n_past} + {n_future} frames, PSNR and SSIM")
    print(format_table(rows, [("way", "", ""), ("calls", "generate calls", "d"), ("per_call", "futures per call", "d"),
                              ("seq_per_s", "sequences/s", ".3f"), ("samples_per_s", "futures/s", ".1f")]))
    print(f"speed-up {batched / one_at_a_time:.1f}x")
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
