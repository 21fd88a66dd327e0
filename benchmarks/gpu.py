"""The GPU path in one prepared run: training updates/s, sampling the futures of best-of-N, evaluation.

A GPU is lent to this project for minutes at a time, so what is measured on one is a single
command that writes a single JSON (after each part, so that a run cut short keeps what it did):

1. `training`: one update (`benchmarks/training.py`) of the `mnist` SLAMP at the paper's batch (32,
   5 + 10 frames), batched over time and step by step, fp32 and bf16 autocast, contiguous and
   channels-last weights; then the best of those with cuDNN's autotuner on
   (`torch.backends.cudnn.benchmark`). Updates/s, peak memory, and each configuration's step time
   over the per-step fp32 contiguous one (the public code's way);
2. `sampling`: the futures best-of-N draws (`--sequences` × `--num-samples`, 5 → 20 frames), one
   sample at a time (the public code's loop, on the model as trained) or all at once (what
   `slamp.evaluate` samples from: folded BatchNorm, shared encoding), each run eagerly and replayed
   from a CUDA graph (:class:`GraphedSampler`: every kernel of a whole `generate` call launched by
   one replay), all at once also in channels-last and under bf16 autocast. Futures/s, sequences/s
   and peak memory; a graph's futures are checked against the eager ones;
3. `evaluation`: best-of-N with scoring, `slamp.evaluate` against one sample at a time
   (`benchmarks/evaluation.py`: same noise, same choice);
4. `compile`: the batched bf16 update under `torch.compile`, in a child process with a time limit
   (`--compile-timeout`), last because compiling can take minutes.

    python benchmarks/gpu.py                                   # on a GPU (planned for about 5 minutes on an H200; not yet run on one)
    python benchmarks/gpu.py --quick --device cpu              # the same code on a CPU, tiny sizes (no CUDA graphs)
    python benchmarks/gpu.py --parts sampling evaluation
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import evaluation  # noqa: E402
import training  # noqa: E402
from _common import (  # noqa: E402
    PeakMemory,
    default_out,
    error_text,
    format_table,
    model_class,
    resolve_device,
    seed_everything,
    start_run,
    synchronize,
    time_calls,
    write_json,
)

from slamp.kernels import fast_sampler  # noqa: E402
from slamp.models import sample_futures  # noqa: E402


PARTS = ("training", "sampling", "evaluation", "compile")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (a minute on a CPU)")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--preset", default=None, help="model preset (default mnist; --quick: tiny)")
    parser.add_argument("--model", default="SLAMP", choices=training.MODEL_NAMES)
    parser.add_argument("--sequences", type=int, default=None, help="test sequences (default 16; --quick 2)")
    parser.add_argument("--num-samples", type=int, default=None, help="N of best-of-N (default 100; --quick 4)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--compile-timeout", type=int, default=240, help="seconds the compiled update may take in all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/gpu[_quick].json)")
    args = parser.parse_args(argv)
    args.preset = args.preset or ("tiny" if args.quick else "mnist")
    args.sequences = args.sequences or (2 if args.quick else 16)
    args.num_samples = args.num_samples or (4 if args.quick else 100)
    args.out = args.out or default_out("gpu", args.quick)
    return args, resolve_device(args.device)


# ---- 1. training -----------------------------------------------------------------------------
def training_argv(args, device, out: Path, **extra) -> list[str]:
    argv = ["--presets", args.preset, "--models", args.model, "--device", str(device), "--out", str(out),
            "--seed", str(args.seed)]
    if args.quick:
        argv += ["--batch-size", "2", "--repeats", "2", "--warmup", "1"]
    for key, values in extra.items():
        argv += [f"--{key.replace('_', '-')}", *values]
    return argv


def over_per_step(rows) -> list[dict]:
    """Each configuration's step time over the per-step fp32 contiguous one (the public code's way)."""
    base = next((r for r in rows if r.get("error") is None and r["path"] == "per_step" and r["amp"] == "off"
                 and r["layout"] == "contiguous" and not r["compile"] and not r.get("cudnn_benchmark")), None)
    if base is None:
        return []
    return [{"path": r["path"], "amp": r["amp"], "layout": r["layout"], "compile": r["compile"],
             "cudnn_benchmark": bool(r.get("cudnn_benchmark")), "median_s": r["median_s"],
             "updates_per_s": 1 / r["median_s"], "peak_mib": r["peak_mib"], "time_ratio": r["median_s"] / base["median_s"]}
            for r in rows if r.get("error") is None]


def run_training(args, device, scratch: Path) -> dict:
    grid = training.main(training_argv(args, device, scratch / "training_grid.json", paths=["batched", "per_step"],
                                       amp=["off", "bf16"], memory_format=["contiguous", "channels_last"]))
    rows = grid["rows"]
    fastest = min((r for r in rows if r.get("error") is None), key=lambda r: r["median_s"], default=None)
    if fastest is not None and device.type == "cuda":  # the autotuner picks each convolution's algorithm by timing
        torch.backends.cudnn.benchmark = True
        tuned = training.main(training_argv(args, device, scratch / "training_tuned.json", paths=[fastest["path"]],
                                            amp=[fastest["amp"]], memory_format=[fastest["layout"]]))
        torch.backends.cudnn.benchmark = False
        rows += [{**r, "cudnn_benchmark": True} for r in tuned["rows"]]
    return {"rows": rows, "over_per_step": over_per_step(rows)}


# ---- 2. sampling -------------------------------------------------------------------------------
class GraphedSampler:
    """``sample_futures(sampler, past, n_future, num_samples, noise)`` recorded once as a CUDA graph
    for these shapes and replayed: one launch for the whole rollout's kernels instead of one each
    from Python (at small batches a step's kernels are too short to hide the launch cost). A call
    copies its inputs into the graph's own tensors; the returned tensors are the graph's and are
    overwritten by the next call."""

    def __init__(self, sampler, past, n_future: int, num_samples: int, noise: dict, warmup: int = 2):
        self.past = past.clone()
        self.noise = {name: eps.clone() for name, eps in noise.items()}
        side = torch.cuda.Stream()  # warm up off the default stream, as torch.cuda.graph asks
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(warmup):  # cuDNN/cuBLAS choose and allocate their workspaces here, not while recording
                sample_futures(sampler, self.past, n_future, num_samples, self.noise)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.out = sample_futures(sampler, self.past, n_future, num_samples, self.noise)

    def __call__(self, past, noise):
        self.past.copy_(past)
        for name, eps in noise.items():
            self.noise[name].copy_(eps)
        self.graph.replay()
        return self.out


def sampling_ways(model, past, n_future: int, num_samples: int, noise: dict, device) -> dict:
    """name -> a set-up that returns a call generating all ``num_samples`` futures of every sequence
    of ``past``. The set-up (folding BatchNorm, recording a graph) runs once, untimed."""
    rows_per_call = len(past)

    def one_at_a_time(generate):  # sample s of sequence b takes noise row b*S + s, as in evaluation.py
        def run():
            for s in range(num_samples):
                generate({k: v[s::num_samples] for k, v in noise.items()})
        return run

    def looped_eager():
        def generate(step_noise):
            with torch.no_grad():
                return model.generate(past, n_future, 1, noise=step_noise).x_hat
        return one_at_a_time(generate)

    def looped_graph():
        graphed = GraphedSampler(fast_sampler(model, device), past, n_future, 1,
                                 {k: v[:rows_per_call] for k, v in noise.items()})
        return one_at_a_time(lambda step_noise: graphed(past, step_noise).x_hat)

    def all_at_once(layout="contiguous", amp=False):
        sampler = fast_sampler(model, device)
        if layout == "channels_last":
            sampler = sampler.to(memory_format=torch.channels_last)

        def run():
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                return sampler.generate(past, n_future, num_samples, noise=noise).x_hat
        return run

    def all_at_once_graph():
        graphed = GraphedSampler(fast_sampler(model, device), past, n_future, num_samples, noise)
        return lambda: graphed(past, noise).x_hat

    ways = {"one at a time (model as trained)": looped_eager,
            "all at once": all_at_once,
            "all at once, channels-last": lambda: all_at_once("channels_last"),
            "all at once, bf16 autocast": lambda: all_at_once(amp=True),
            "all at once, bf16, channels-last": lambda: all_at_once("channels_last", amp=True)}
    if device.type == "cuda":
        ways["one at a time, CUDA graph"] = looped_graph
        ways["all at once, CUDA graph"] = all_at_once_graph
    return ways


def run_sampling(args, device) -> dict:
    seed_everything(args.seed)
    model = model_class(args.model).from_preset(args.preset).to(device).eval()
    evaluation.perturb_batchnorm(model)
    n_past, n_future = 5, 20
    past = torch.rand(args.sequences, n_past, model.config.channels, *model.config.image_size, device=device)
    noise = model.draw_noise(args.sequences * args.num_samples, n_past - 1 + n_future, device)
    with torch.inference_mode():  # the reference futures, for checking every other way against
        reference = fast_sampler(model, device).generate(past, n_future, args.num_samples, noise=noise).x_hat.float()
    repeats = 2 if args.quick else 3
    rows = []
    for name, make in sampling_ways(model, past, n_future, args.num_samples, noise, device).items():
        row = {"way": name, "futures": args.sequences * args.num_samples}
        try:
            start = time.perf_counter()
            run = make()
            time_calls(run, 1, device)
            row["set_up_and_first_call_s"] = time.perf_counter() - start
            meter = PeakMemory(device).start()
            seconds = sorted(time_calls(run, repeats, device))
            row.update(meter.stop())
            row["seconds"] = seconds[len(seconds) // 2]
            row["futures_per_s"] = row["futures"] / row["seconds"]
            row["sequences_per_s"] = args.sequences / row["seconds"]
            if "one at a time" not in name:
                frames = run().float()
                row["max_abs_difference"] = float((frames.reshape(reference.shape) - reference).abs().max())
            row["error"] = None
        except Exception as error:  # noqa: BLE001 -- a way this device cannot run: record it, measure the rest
            row["error"] = error_text(error)
        rows.append(row)
        print(f"  {name}: " + (f"{row['futures_per_s']:.0f} futures/s, {row['sequences_per_s']:.2f} seq/s, "
                               f"peak {row['peak_mib']:.0f} MiB" if row["error"] is None else f"FAILED {row['error']}"),
              flush=True)
        synchronize(device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    base = next((r for r in rows if r["way"].startswith("one at a time (") and r["error"] is None), None)
    for r in rows:
        if base is not None and r["error"] is None:
            r["speedup"] = base["seconds"] / r["seconds"]
    return {"preset": args.preset, "model": args.model, "sequences": args.sequences, "num_samples": args.num_samples,
            "n_past": n_past, "n_future": n_future, "repeats": repeats, "rows": rows}


# ---- 3. evaluation and 4. compile ----------------------------------------------------------------
def run_evaluation(args, device, scratch: Path) -> dict:
    argv = ["--preset", args.preset, "--model", args.model, "--device", str(device), "--sequences", str(args.sequences),
            "--num-samples", str(args.num_samples), "--rounds", "2", "--out", str(scratch / "evaluation.json")]
    return evaluation.main(argv)


def run_compile(args, device, scratch: Path) -> dict:
    """The batched bf16 update under torch.compile, in a child process killed after ``--compile-timeout``."""
    out = scratch / "training_compiled.json"
    layout = "channels_last" if device.type == "cuda" else "contiguous"
    argv = [sys.executable, str(HERE / "training.py"),
            *training_argv(args, device, out, paths=["batched"], amp=["bf16" if device.type == "cuda" else "off"],
                           memory_format=[layout], compile=["on"])]
    try:
        subprocess.run(argv, timeout=args.compile_timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"error": f"not finished within {args.compile_timeout} s (compilation included)"}
    except subprocess.CalledProcessError as error:
        return {"error": f"exit status {error.returncode}"}
    return json.loads(out.read_text())


def main(argv=None) -> dict:
    args, device = parse_args(argv)
    info = start_run(None, device)
    scratch = args.out.parent / f"{args.out.stem}_parts"
    scratch.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "gpu", "quick": args.quick, "args": vars(args), "machine": info,
              "cudnn": {"allow_tf32": torch.backends.cudnn.allow_tf32,
                        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}}
    runners = {"training": lambda: run_training(args, device, scratch), "sampling": lambda: run_sampling(args, device),
               "evaluation": lambda: run_evaluation(args, device, scratch),
               "compile": lambda: run_compile(args, device, scratch)}
    for part in args.parts:
        print(f"\n== {part} ==", flush=True)
        start = time.perf_counter()
        try:
            result[part] = runners[part]()
        except Exception as error:  # noqa: BLE001 -- keep the other parts
            result[part] = {"error": error_text(error, 2000)}
            print(f"{part} FAILED: {result[part]['error']}", flush=True)
        result[part + "_seconds"] = time.perf_counter() - start
        write_json(args.out, result)
    summarize(result)
    return result


def summarize(result: dict) -> None:
    training_part = result.get("training") or {}
    if training_part.get("over_per_step"):
        print("\ntraining: one update, step time over the per-step fp32 contiguous update")
        print(format_table(training_part["over_per_step"],
                           [("path", "path", ""), ("amp", "amp", ""), ("layout", "layout", ""),
                            ("cudnn_benchmark", "cudnn autotune", ""), ("median_s", "s/update", ".4f"),
                            ("updates_per_s", "updates/s", ".1f"), ("peak_mib", "peak MiB", ".0f"),
                            ("time_ratio", "ratio", ".2f")]))
    sampling_part = result.get("sampling") or {}
    if sampling_part.get("rows"):
        print(f"\nsampling: {sampling_part['sequences']} sequences x {sampling_part['num_samples']} futures")
        print(format_table(sampling_part["rows"],
                           [("way", "way", ""), ("seconds", "s", ".3f"), ("futures_per_s", "futures/s", ".0f"),
                            ("sequences_per_s", "seq/s", ".2f"), ("speedup", "speed-up", ".1f"),
                            ("peak_mib", "peak MiB", ".0f"), ("max_abs_difference", "max |diff|", ".1e"),
                            ("error", "error", "")]))
    compiled = result.get("compile") or {}
    for row in compiled.get("rows", []):
        print(f"\ncompiled update: {row.get('median_s', float('nan')):.4f} s, first call {row.get('first_call_s', 0):.0f} s"
              + (f", FAILED {row['error']}" if row.get("error") else ""))


if __name__ == "__main__":
    main()
