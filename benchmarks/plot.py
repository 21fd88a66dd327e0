"""Plots of the benchmark results: one PNG next to each JSON file of `benchmarks/results/`.

- `training*.json` → sequences per second (and the memory of a step) of each model and preset,
  batched vs per-step (and any AMP/compile variants), as grouped bars;
- `evaluation*.json` → sequences per second, batched vs one sample at a time;
- `scaling*.json` → step time and memory against batch, clip length and pixels on log-log axes,
  with the fitted order of growth (slope) in the legend;
- `profile_*.json` → the operators with the most self time, as horizontal bars.

    python benchmarks/plot.py                       # every JSON in benchmarks/results/ (quick runs too)
    python benchmarks/plot.py --quick               # only the *_quick.json files
    python benchmarks/plot.py benchmarks/results/training.json --out-dir /tmp/plots
"""
import argparse
import json
import sys
from pathlib import Path

import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS  # noqa: E402


def _subtitle(result) -> str:
    m = result.get("machine") or {}
    name = m.get("device_name") or result.get("device", "?")
    threads = f", {m['torch_threads']} threads" if m.get("torch_threads") else ""
    load = m.get("load_average_1_5_15")
    busy = f", load {load[0]:.1f}" if load else ""
    return f"{name}{threads}{busy}, torch {m.get('torch', result.get('torch', '?'))}" + \
        (" (quick run)" if result.get("quick") else "")


def _variant(row) -> str:
    parts = [row["path"].replace("_", "-")]
    if row.get("amp", "off") != "off":
        parts.append(row["amp"])
    if row.get("compile"):
        parts.append("compiled")
    return " ".join(parts)


def plot_training(result):
    rows = [r for r in result["rows"] if r.get("error") is None]
    presets = list(dict.fromkeys(r["preset"] for r in result["rows"]))
    fig, axes = plt.subplots(2, len(presets), figsize=(5.5 * len(presets), 7.5), squeeze=False)
    for col, preset in enumerate(presets):
        here = [r for r in rows if r["preset"] == preset]
        models = list(dict.fromkeys(r["model"] for r in result["rows"] if r["preset"] == preset))
        variants = list(dict.fromkeys(_variant(r) for r in here))
        width = 0.8 / max(len(variants), 1)
        for k, variant in enumerate(variants):
            for row_index, (key, label) in enumerate([("sequences_per_s", "sequences / s"),
                                                      ("delta_mib", "memory of a step (MiB)")]):
                ax = axes[row_index, col]
                values = [next((r[key] for r in here if r["model"] == m and _variant(r) == variant), np.nan) for m in models]
                positions = np.arange(len(models)) + (k - (len(variants) - 1) / 2) * width
                bars = ax.bar(positions, values, width, label=variant)
                ax.bar_label(bars, fmt="%.3g", fontsize=7)
                ax.set_xticks(np.arange(len(models)), models)
                ax.set_ylabel(label)
        batch = next((r["batch_size"] for r in result["rows"] if r["preset"] == preset), "?")
        length = next((r["n_past"] + r["n_future"] for r in result["rows"] if r["preset"] == preset), "?")
        axes[0, col].set_title(f"preset {preset}: batch {batch}, {length} frames")
        axes[0, col].legend(fontsize=8)
    fig.suptitle(f"training step throughput\n{_subtitle(result)}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_evaluation(result):
    fig, ax = plt.subplots(figsize=(5.5, 4))
    labels = ["one sample\nat a time", "batched"]
    values = [result["one_sample_at_a_time_seq_per_s"], result["batched_seq_per_s"]]
    bars = ax.bar(labels, values, color=["tab:gray", "tab:blue"])
    ax.bar_label(bars, fmt="%.3g")
    ax.margins(y=0.15)
    ax.set_ylabel("test sequences / s")
    ax.set_title(f"best of {result['num_samples']}, {result.get('model', 'SLAMP')} {result['preset']}: "
                 f"speed-up {result['speedup']:.2f}x (median of {result.get('rounds', 1)} rounds)\n{_subtitle(result)}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_scaling(result):
    axes_present = list(dict.fromkeys(r["axis"] for r in result["rows"]))
    fig, axes = plt.subplots(2, len(axes_present), figsize=(4.8 * len(axes_present), 7.5), squeeze=False)
    names = {"batch": "batch size", "length": "frames per clip", "resolution": "pixels per frame (H*W)"}
    for col, axis in enumerate(axes_present):
        rows = [r for r in result["rows"] if r["axis"] == axis and r.get("error") is None]
        fit = result.get("fits", {}).get(axis)
        xs = np.array([r["x"] for r in rows], dtype=float)
        for row_index, (key, label, slope_key, intercept_key) in enumerate(
                [("median_s", "seconds per step", "time_slope", "time_intercept"),
                 ("delta_mib", "memory of a step (MiB)", "memory_slope", "memory_intercept")]):
            ax = axes[row_index, col]
            ys = np.array([r[key] for r in rows], dtype=float)
            ax.loglog(xs, ys, "o", label="measured")
            if fit and fit.get(slope_key) is not None and len(xs):
                grid = np.geomspace(xs.min(), xs.max(), 50)
                ax.loglog(grid, np.exp(fit[intercept_key]) * grid ** fit[slope_key], "-",
                          label=f"fit: ~ x^{fit[slope_key]:.2f}")
            if axis == "resolution":
                for r, x, y in zip(rows, xs, ys):
                    ax.annotate(r.get("size", ""), (x, y), fontsize=7, textcoords="offset points", xytext=(3, -9))
            else:  # the measured sizes as plain numbers, not 2x10^0, 3x10^0, ... crowding each other
                ax.set_xticks(xs, [f"{x:g}" for x in xs])
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel(names.get(axis, axis))
            ax.set_ylabel(label)
            ax.legend(fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
        axes[0, col].set_title(axis)
    args = result.get("args", {})
    settings = ", ".join(f"{value} {name}" for name, value in (("layout", args.get("layout")),
                                                              ("allocator", args.get("allocator"))) if value)
    fig.suptitle(f"one {result.get('model', '')} training step ({result.get('path', '')} path"
                 f"{', ' + settings if settings else ''})\n{_subtitle(result)}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_profile(result):
    top = result["top_ops"][:15][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(top) + 1.5))
    ax.barh([r["op"] for r in top], [r["self_ms"] for r in top])
    ax.set_xlabel("self time per step (ms)")
    ax.set_title(f"{result['model']} {result['preset']} {result['path']}, batch {result['batch_size']}\n"
                 f"{_subtitle(result)}", fontsize=9)
    fig.tight_layout()
    return fig


PLOTTERS = {"training": plot_training, "evaluation": plot_evaluation, "scaling": plot_scaling,
            "profile_step": plot_profile}


def kind_of(path: Path, result: dict) -> str | None:
    kind = result.get("benchmark")
    if kind is not None:  # a result that names its benchmark: plotted if there is a plot for it
        return kind if kind in PLOTTERS else None
    stem = path.stem  # older results name none: their file names tell
    return next((k for k in ("training", "evaluation", "scaling") if stem.startswith(k)), None)


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("files", nargs="*", type=Path, help="JSON results (default: every *.json in --results)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of JSON results (default benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="only the *_quick.json files")
    parser.add_argument("--out-dir", type=Path, default=None, help="where the PNGs go (default: next to each JSON)")
    args = parser.parse_args(argv)
    files = args.files or sorted(args.results.glob("*.json"))
    if args.quick:
        files = [f for f in files if f.stem.endswith("_quick")]
    written = []
    for path in files:
        result = json.loads(path.read_text())
        kind = kind_of(path, result)
        if kind is None:
            print(f"skipped {path}: not a result of training.py, evaluation.py, scaling.py or profile_step.py")
            continue
        fig = PLOTTERS[kind](result)
        out = (args.out_dir or path.parent) / f"{path.stem}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
        plt.close(fig)
        written.append(out)
        print(f"wrote {out}")
    if not files:
        print(f"no JSON results in {args.results}; run the benchmarks first")
    return written


if __name__ == "__main__":
    main()
