"""Best-of-N evaluation throughput: `slamp.evaluate.evaluate` against the public code's protocol.

The public code draws the 100 samples of the protocol one after another, each call encoding the
conditioning frames again, with BatchNorm as trained. `slamp.evaluate.evaluate` generates all the
samples of a batch of sequences in one call (up to `max_batch` futures), encodes the true frames
the samples of a sequence share once, samples from a copy with BatchNorm folded into the
convolutions, under `torch.inference_mode`. Both score every sample with PSNR and SSIM and keep
the best of N; this measures test sequences per second of each, alternating the two `--rounds`
times (ratios, not absolute times, are what a busy machine can measure), and checks that for the
same noise both choose the same samples with the same scores. Before each timed run, each way runs
`--warmup` untimed times with its allocator set: the 5,000-sequence protocol makes thousands of
calls, all but the first on a heap that has grown to its size, and that is the state to measure.

- `one sample at a time`: a loop of `model.generate(x_past, n_future, num_samples=1)` on the model
  itself under `torch.no_grad` (the sequences of the batch still go together, as in the public code);
- `slamp.evaluate`: `evaluate(model, ...)`, with the C allocator keeping freed memory for reuse as
  `slamp evaluate` sets it on a CPU (`--allocator`; the loop runs with glibc's own policy, as the
  public code does).

The test clips are random pixels (the cost of sampling and scoring does not depend on them); the
model's BatchNorm statistics are perturbed so that folding them is not a no-op.

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
    ALLOCATORS,
    MODEL_NAMES,
    default_out,
    format_table,
    model_class,
    resolve_device,
    seed_everything,
    start_run,
    synchronize,
    use_allocator,
    write_json,
)

from slamp.evaluate import best_of_n, evaluate, fast_sampler, score_frames  # noqa: E402
from slamp.models import PRESETS  # noqa: E402


def one_sample_at_a_time(model, videos, num_samples, n_past, n_future, noise=None):
    """The public code's protocol: ``num_samples`` calls of ``generate(..., num_samples=1)``, each
    scored (PSNR, SSIM); returns the per-frame PSNR of each sequence's best sample and its index.
    ``noise``: the batched run's ``{stream: (B * S, steps, ...)}``, sample s taking rows s, S + s, ..."""
    past, target = videos[:, :n_past], videos[:, n_past:n_past + n_future]
    scores = []
    with torch.no_grad():
        for s in range(num_samples):
            step_noise = None if noise is None else {k: v[s::num_samples] for k, v in noise.items()}
            frames = model.generate(past, n_future, 1, noise=step_noise).x_hat.float()
            scores.append(score_frames(frames, target, "psnr"))
            score_frames(frames, target, "ssim")
    index, curve = best_of_n(torch.cat(scores, 1), True)
    return curve, index


def batched(model, videos, num_samples, n_past, n_future, noise=None):
    """``slamp.evaluate``'s sampler (shared encoding, folded BatchNorm, inference mode), with ``noise``."""
    past, target = videos[:, :n_past], videos[:, n_past:n_past + n_future]
    with torch.inference_mode():
        frames = fast_sampler(model, videos.device).generate(past, n_future, num_samples, noise=noise).x_hat.float()
        scores = score_frames(frames, target, "psnr")
        score_frames(frames, target, "ssim")
    index, curve = best_of_n(scores, True)
    return curve, index


def seconds(run) -> float:
    synchronize(DEVICE[0])
    start = time.perf_counter()
    run()
    synchronize(DEVICE[0])
    return time.perf_counter() - start


DEVICE = [torch.device("cpu")]


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
                        help="futures per generate call of slamp.evaluate (default: its device default, MAX_BATCH)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="auto | cpu | cuda")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allocator", default="keep", choices=ALLOCATORS,
                        help="the C allocator's policy for slamp.evaluate's turns (keep: as `slamp evaluate` sets it "
                             "on a CPU); the loop's turns always run with glibc's settled policy")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed runs of each way (the median ratio)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed runs of each way before each timed one, after setting its allocator: the "
                             "5,000-sequence protocol runs thousands of calls on a heap that has reached its size")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/evaluation[_quick].json)")
    args = parser.parse_args(argv)
    args.sequences = args.sequences or (4 if args.quick else 16)
    args.num_samples = args.num_samples or (10 if args.quick else 100)
    args.out = args.out or default_out("evaluation", args.quick)
    return args, resolve_device(args.device)


def perturb_batchnorm(model) -> None:
    """Running statistics away from (0, 1), as a trained model has them."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=generator) * 0.2 - 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)


def main(argv=None) -> dict:
    args, device = parse_args(argv)
    DEVICE[0] = device
    info = start_run(args.threads, device)
    seed_everything(args.seed)
    sequences, num_samples, n_past, n_future = args.sequences, args.num_samples, args.n_past, args.n_future
    model = model_class(args.model).from_preset(args.preset).to(device).eval()
    perturb_batchnorm(model)
    videos = torch.rand(sequences, n_past + n_future, model.config.channels, *model.config.image_size, device=device)
    # The same noise for both: the same samples must be chosen, with the same scores.
    noise = model.draw_noise(sequences * num_samples, n_past - 1 + n_future, device)
    looped_curve, looped_index = one_sample_at_a_time(model, videos, num_samples, n_past, n_future, noise)
    batched_curve, batched_index = batched(model, videos, num_samples, n_past, n_future, noise)
    same_choice = bool(torch.equal(looped_index, batched_index))
    score_difference = float((looped_curve - batched_curve).abs().max())
    ways = {"one sample at a time": ("settled", lambda: one_sample_at_a_time(model, videos, num_samples, n_past,
                                                                             n_future)),
            "slamp.evaluate": (args.allocator, lambda: evaluate(model, [videos], n_past, n_future, num_samples,
                                                               metrics=("psnr", "ssim"), max_batch=args.max_batch,
                                                               keep_best=False, progress=False))}
    times = {way: [] for way in ways}
    for _ in range(args.rounds):  # alternating, so both see the same machine
        for way, (allocator, run) in ways.items():
            use_allocator(allocator)
            for _ in range(args.warmup):  # the state a long evaluation runs in: a heap grown to its size
                run()
            times[way].append(seconds(run))
    ratios = sorted(a / b for a, b in zip(times["one sample at a time"], times["slamp.evaluate"]))
    speedup = ratios[len(ratios) // 2]
    rows = [{"way": way, "seconds": sorted(t)[len(t) // 2], "seq_per_s": sequences / sorted(t)[len(t) // 2]}
            for way, t in times.items()]
    result = {"device": str(device), "torch": torch.__version__, "preset": args.preset, "sequences": sequences,
              "num_samples": num_samples, "n_past": n_past, "n_future": n_future, "rounds": args.rounds,
              "one_sample_at_a_time_seq_per_s": rows[0]["seq_per_s"], "batched_seq_per_s": rows[1]["seq_per_s"],
              "seconds": times, "speedup": speedup, "speedups": ratios, "same_choice": same_choice,
              "max_score_difference_db": score_difference,
              "benchmark": "evaluation", "quick": args.quick, "model": args.model, "max_batch": args.max_batch,
              "allocator": args.allocator, "warmup": args.warmup, "args": vars(args), "machine": info}
    print(f"{args.model} preset {args.preset} on {info['device_name']} ({device}, {info['torch_threads']} threads): "
          f"best of {num_samples}, {sequences} sequences, {n_past} + {n_future} frames, PSNR and SSIM, "
          f"median of {args.rounds} alternating rounds, each way after {args.warmup} untimed run(s)")
    print(format_table(rows, [("way", "", ""), ("seconds", "seconds", ".2f"), ("seq_per_s", "sequences/s", ".3f")]))
    print(f"speed-up {speedup:.2f}x (rounds: {', '.join(f'{r:.2f}' for r in ratios)}); same noise: same samples "
          f"chosen {same_choice}, scores differ by at most {score_difference:.1e} dB")
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
