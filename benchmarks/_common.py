"""Pieces shared by the benchmark scripts: machine info, seeding, devices, timing, peak memory,
one training step, log-log slopes, tables and JSON. Not a public module: the scripts import it
from their own folder."""
import ctypes
import gc
import json
import os
import platform
import random
import resource
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np
import torch

from slamp.model_registry import MODELS
from slamp.runtime import adam


RESULTS = Path(__file__).resolve().parent / "results"
MODEL_NAMES = tuple(cls.__name__ for cls in MODELS.values())  # SVG, AppearanceOnly, SLAMPBaseline, SLAMP
# AppearanceOnly has SVG's modules and cost (only the skips it averages differ): timed by default as SVG
TIMED_MODELS = tuple(name for name in MODEL_NAMES if name != "AppearanceOnly")
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_out(name: str, quick: bool, suffix: str = ".json") -> Path:
    """``benchmarks/results/<name>.json``, or ``<name>_quick.json`` for a ``--quick`` run (ignored by git)."""
    return RESULTS / f"{name}{'_quick' if quick else ''}{suffix}"


def seed_everything(seed: int = 0) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # and every CUDA device


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name} was requested but CUDA is not available; use --device auto or cpu")
    return device


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def warn_if_busy() -> float | None:
    """Print a warning when the 1-minute load average exceeds the usable CPUs; returns the load."""
    if not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if load > cpus:
        print(f"warning: load average {load:.1f} on {cpus} CPUs: other work is running, every time here is "
              f"slower than on a quiet machine (with several busy processes, --threads 1 avoids the worst "
              f"of the contention)", file=sys.stderr)
    return load


def start_run(threads: int | None, device: torch.device) -> dict:
    """What every script does first: set torch's threads (if asked), warn on a busy machine, and
    return the machine's description for the JSON."""
    if threads:
        torch.set_num_threads(threads)
    warn_if_busy()
    return machine_info(device)


def machine_info(device: torch.device) -> dict:
    """What the numbers depend on: versions, the device, CPU cores and threads, and the load
    average when the run started (a busy machine makes every number slower)."""
    info = {
        "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "device": str(device), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=props.name, device_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    else:
        info["device_name"] = info["cpu"]
    return info


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- peak memory --------------------------------------------------------------------------
def _rss_mib() -> float:
    """The resident set size now (Linux /proc/self/statm), MiB; NaN elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def _maxrss_mib() -> float:
    """The process's peak RSS from resource.getrusage: kB on Linux, bytes on macOS."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / 2**20 if sys.platform == "darwin" else value / 2**10


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0: ``5 > /proc/self/clear_refs``;
    ru_maxrss follows it). False where that is not possible: the peak is then the lifetime peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc keeps it otherwise, hiding the next peak)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of the code run between ``start()`` and ``stop()``, in MiB.

    CUDA: ``torch.cuda.max_memory_allocated`` (tensors only, not the caching allocator's reserve).
    CPU: the process's peak resident set size from ``resource.getrusage(...).ru_maxrss`` after
    resetting the kernel's peak mark (``/proc/self/clear_refs``) at ``start()``, following a
    ``gc.collect()`` and ``malloc_trim``. ``delta_mib`` is the peak minus the memory in use at
    ``start()`` (what the measured code needed on top of what was already there: with
    ``zero_grad(set_to_none=True)``, activations, gradients and temporaries); ``peak_mib`` is the
    whole process (CPU) or all tensors (CUDA)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.measure = None
        self.base = 0.0

    def start(self) -> "PeakMemory":
        gc.collect()
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
            self.measure = "cuda: torch.cuda.max_memory_allocated (tensors)"
        else:
            _trim_heap()
            reset = _reset_peak_rss()
            self.base = _rss_mib() if reset else _maxrss_mib()
            self.measure = ("cpu: peak RSS (resource.getrusage ru_maxrss) after resetting the peak via "
                            "/proc/self/clear_refs; delta over the RSS at start" if reset else
                            "cpu: growth of resource.getrusage ru_maxrss (lifetime peak; 0 if an earlier "
                            "peak was higher)")
        return self

    def stop(self) -> dict:
        if self.device.type == "cuda":
            synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = _maxrss_mib()
        return {"peak_mib": peak, "delta_mib": max(peak - self.base, 0.0), "memory_measure": self.measure}


# ---- timing -------------------------------------------------------------------------------
def time_calls(fn, repeats: int, device: torch.device) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, the device synchronised around each."""
    seconds = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def summarize_seconds(seconds: list[float]) -> dict:
    a = np.asarray(seconds, dtype=float)
    return {"step_seconds": [float(s) for s in a], "median_s": float(np.median(a)), "min_s": float(a.min()),
            "mean_s": float(a.mean()), "std_s": float(a.std())}


# ---- one training step -------------------------------------------------------------------
class Objective(torch.nn.Module):
    """``model.loss`` on a video as a module (what ``torch.compile`` wraps): the total loss."""

    def __init__(self, model, n_past: int, per_step: bool):
        super().__init__()
        self.model, self.n_past, self.per_step = model, n_past, per_step

    def forward(self, x):
        return self.model.loss(x, self.n_past, per_step=self.per_step)[0]


class TrainStep:
    """forward + backward + Adam step of ``model`` on ``x`` ``(B, T, C, H, W)``, as training does it
    (``slamp.train.train_step``): autocast, ``zero_grad(set_to_none=True)``, a gradient
    scaler for fp16. ``compile=True`` wraps the loss in ``torch.compile`` (compiled at the first call)."""

    def __init__(self, model, x, n_past: int, per_step: bool = False, amp: str = "off", compile: bool = False,
                 lr: float = 1e-4):
        self.model, self.x = model.train(), x
        self.device = x.device
        self.dtype = AMP_DTYPES[amp]
        self.objective = Objective(model, n_past, per_step)
        if compile:
            self.objective = torch.compile(self.objective)
        self.optimizer = adam(model.parameters(), lr)  # the optimiser training uses
        self._prime_optimizer()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.last_loss = None

    def _prime_optimizer(self):
        """Allocate Adam's moments now, so that the memory of the measured steps never includes
        them: an Adam step on zero gradients leaves every parameter as it was (its update is
        0 / (0 + eps))."""
        for p in self.model.parameters():
            p.grad = torch.zeros_like(p)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def __call__(self):
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            total = self.objective(self.x)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.last_loss = total.detach()


def model_class(name: str):
    if name not in MODEL_NAMES:
        raise SystemExit(f"unknown model {name!r}; choose from {MODEL_NAMES}")
    return next(cls for cls in MODELS.values() if cls.__name__ == name)


def train_defaults(preset: str) -> dict:
    """The paper's training batch and clip length for a model preset (``slamp.config.TrainConfig.preset``)."""
    from slamp.config import TrainConfig
    c = TrainConfig.preset(preset)
    return {"batch_size": c.batch_size, "n_past": c.n_past, "n_future": c.n_future, "lr": c.lr}


def measure_step(step, device: torch.device, warmup: int, repeats: int) -> dict:
    """Time ``warmup`` untimed calls of ``step`` (the first is reported on its own as
    ``first_call_s``: it includes compilation and oneDNN/cuDNN set-up), then ``repeats`` timed
    calls. With ``warmup=0`` the first call is a timed one. Peak memory: over the timed calls on
    CUDA; on the CPU over one more, untimed call, because measuring trims the heap first (see
    :class:`PeakMemory`) and a trimmed heap would make a timed call fault its memory in anew."""
    warm = time_calls(step, warmup, device)
    if device.type == "cuda":
        meter = PeakMemory(device).start()
        seconds = time_calls(step, repeats, device)
        memory = meter.stop()
    else:
        seconds = time_calls(step, repeats, device)
        meter = PeakMemory(device).start()
        time_calls(step, 1, device)
        memory = meter.stop()
    return {"first_call_s": (warm or seconds)[0], **summarize_seconds(seconds), **memory}


ALLOCATORS = ("settled", "keep")


def use_allocator(name: str) -> bool:
    """Set the C allocator's policy for the steps that follow (a compared setting, Linux/glibc):
    ``keep`` is what ``slamp train`` does on a CPU (:func:`slamp.runtime.keep_freed_memory`);
    ``settled`` is glibc's own policy as a process running these models settles into it (the
    public code's), after handing back what ``keep`` held. False where it cannot be set."""
    from slamp.runtime import keep_freed_memory

    ok = keep_freed_memory(name == "keep")
    if name == "settled":
        _trim_heap()
    return ok


def count_flops(step) -> float:
    """Floating-point operations of one call of ``step`` (``torch.utils.flop_counter``: matrix
    multiplications and convolutions, forward and backward; elementwise work is not counted).
    The call is a real step: it changes the model like any other."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


# ---- fitting and printing ------------------------------------------------------------------
def loglog_slope(xs, ys) -> tuple[float, float]:
    """Order of growth: slope and intercept of ``log y = slope * log x + intercept`` (least squares,
    ``numpy.polyfit``). ``y = c * x**k`` gives ``k``. Points with non-positive values are dropped;
    NaN if fewer than two remain."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    keep = (xs > 0) & (ys > 0) & np.isfinite(xs) & np.isfinite(ys)
    if keep.sum() < 2 or len(np.unique(xs[keep])) < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log(xs[keep]), np.log(ys[keep]), 1)
    return float(slope), float(intercept)


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Rows as an aligned text table; ``columns`` are (key, header, format spec)."""
    def cell(row, key, spec):
        value = row.get(key)
        if value is None:
            return "-"
        try:
            return format(value, spec)
        except (TypeError, ValueError):
            return str(value)
    body = [[cell(row, key, spec) for key, _, spec in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in body]
    return "\n".join(lines)


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.device):
        return str(value)
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_json(path: Path, result: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(result), indent=2) + "\n")
    print(f"wrote {path}")
    return path


def error_text(error: BaseException, limit: int = 500) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= limit else text[:limit] + " ..."
