"""Trained models that ship inside the package, so notebooks and users get a trained model offline.

    from slamp.pretrained import load
    model = load("slamp")                       # SLAMP, `tiny` sizes, trained on Stochastic Moving MNIST
    futures = model.generate(video[:, :5], n_future=20, num_samples=10)

Each ``<name>.pt`` holds the weights in float16 (half the size; cast back to float32 on loading)
with the model's class, its sizes, the training config and how long it trained. They are made
from training checkpoints by :func:`export_checkpoint` (see the README's "Trained models").
Plain glue: no notebook teaches this module.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from slamp.checkpoint import IncompatibleWeightsError, load_weights, saved_model
from slamp.data.files import atomic_path, save_tensors
from slamp.download import file_sha256
from slamp.models import VideoPredictor


FOLDER = Path(__file__).resolve().parent
FORMAT = "slamp.pretrained/1"


class PretrainedError(RuntimeError):
    """A shipped model is unknown, missing or unreadable; the message says which and why."""


def available() -> list[str]:
    """Names of the models shipped in ``slamp/pretrained/``: its ``*.pt`` files that ``SHA256SUMS``
    records (another ``.pt`` there, e.g. a run's ``last.pt`` written into the folder, is not one)."""
    try:
        sums = recorded_sums()
    except PretrainedError:  # a damaged SHA256SUMS: loading says so; listing still lists
        sums = {}
    return sorted(p.stem for p in FOLDER.glob("*.pt") if not sums or p.name in sums)


SUMS = "SHA256SUMS"  # beside the models: "<sha256>  <file>" per shipped model, written by export_checkpoint


def recorded_sums(folder=None) -> dict[str, str]:
    """``{file name: SHA-256}`` of the shipped models, as recorded when they were exported."""
    sums = Path(folder or FOLDER) / SUMS
    if not sums.is_file():
        return {}
    recorded = {}
    for number, line in enumerate(sums.read_text(errors="replace").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not re.fullmatch(r"[0-9a-f]{64}", fields[0]):
            raise PretrainedError(f"{sums} is damaged (line {number} is not '<sha256>  <file>': {line[:80]!r}): "
                                  f"restore it with `git checkout -- slamp/pretrained/{SUMS}` (or reinstall slamp)")
        recorded[fields[1]] = fields[0]
    return recorded


def _read(name: str) -> dict:
    """A shipped model's file by ``name``, or a file in the same format by its path (``*.pt``)."""
    shipped = not (name.endswith(".pt") or "/" in name)
    path = FOLDER / f"{name}.pt" if shipped else Path(name)
    if not path.is_file():
        raise PretrainedError(f"no shipped model named {name!r} (expected {path}); available: {available() or 'none'}"
                              if shipped else f"no file at {path}")
    restore = (f"restore it with `git checkout -- slamp/pretrained/{path.name}` (or reinstall slamp)" if shipped
               else "restore it from where it came from")
    if path.stat().st_size == 0:
        raise PretrainedError(f"{path} is empty (0 bytes): {restore}")
    expected = recorded_sums(path.parent).get(path.name)
    if expected is not None and file_sha256(path) != expected:
        raise PretrainedError(f"{path} is damaged: its SHA-256 is not the one recorded in {SUMS} when it was "
                              f"exported (flipped bytes, a truncated copy, or a Git LFS pointer); {restore}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a Git LFS pointer, a truncated file, not a torch file
        raise PretrainedError(f"cannot read {path} ({type(error).__name__}); if it is a Git LFS pointer or was "
                              f"cut short, {restore}") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise PretrainedError(f"{path} is not a slamp.pretrained file (format {FORMAT!r})")
    return state


def info(name: str) -> dict:
    """What is known about a shipped model (or a file of this format, by path): class, sizes,
    training config, updates, metrics."""
    state = _read(name)
    return {key: value for key, value in state.items() if key != "model"}


def load(name: str, device="cpu") -> VideoPredictor:
    """The shipped model ``name`` (see :func:`available`; or a file of this format, by path ``*.pt``),
    float32, in eval mode, on ``device``."""
    state = _read(name)
    model = saved_model(state["model_class"], state["model_config"])
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}
    try:
        load_weights(model, weights)
    except IncompatibleWeightsError as error:
        raise PretrainedError(f"{FOLDER / (name + '.pt')}: {error}") from error
    return model.to(device).eval()


PAPER_CHOICES = ("auto", "download", "off")


def paper_or_shipped(name: str = "slamp", device="cpu", paper: str = "auto") -> tuple[VideoPredictor, str]:
    """The model a notebook or the demo shows, and a label for its figures: the paper's own MNIST
    SLAMP (the public release's ``slamp_mnist.pth``, read safely by :mod:`slamp.release`) when
    ``paper`` is ``"auto"`` and the file is in the data folder, or ``"download"`` (fetched first,
    about 100 MB, with :func:`slamp.download.download_public`); else the shipped model ``name``
    (``"off"``, or no file). The release holds SLAMP only: other names are always the shipped ones."""
    if paper not in PAPER_CHOICES:
        raise ValueError(f"paper must be one of {PAPER_CHOICES}, found {paper!r}")
    if name == "slamp" and paper != "off":
        from slamp.download import download_public, find_public_weights
        from slamp.release import convert_release, read_release, updates_of

        path = download_public("mnist") if paper == "download" else find_public_weights("mnist")
        if path is not None:
            release = read_release(path)
            return (convert_release(release).to(device),
                    f"the paper's SLAMP (public release, {updates_of(release):,} updates)")
    about = info(name)
    updates = about["metrics"].get("updates_in_all", about["updates"])
    title = {"slamp": "SLAMP", "slamp_baseline": "SLAMP-Baseline", "svg": "SVG-LP",
             "appearance_only": "AppearanceOnly"}.get(name, name)
    return load(name, device), f"shipped {title} ({about['train_config'].get('model_preset', '?')} preset, {updates:,} updates)"


def export_checkpoint(checkpoint, name: str, metrics: dict | None = None, folder=FOLDER) -> Path:
    """Write the model of a training checkpoint (``slamp.train``) as ``<folder>/<name>.pt`` in
    float16, with its config and ``metrics``. Returns the path."""
    from slamp.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    shipped = {
        "format": FORMAT, "model_class": state["model_class"], "model_config": state["model_config"],
        "model": {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()},
        "train_config": state["config"], "updates": int(state["step"]), "metrics": metrics or {},
    }
    return write_shipped(shipped, name, folder)


def write_shipped(shipped: dict, name: str, folder=FOLDER, replaces: str | None = None) -> Path:
    """Write ``shipped`` (this format's dict) as ``<folder>/<name>.pt`` and record its SHA-256 in
    ``SHA256SUMS``; ``replaces``: the name of a file it takes the place of (removed, with its sum)."""
    path = Path(folder) / f"{name}.pt"
    with atomic_path(path) as temporary:
        save_tensors(shipped, temporary)
    sums = {**recorded_sums(folder), path.name: file_sha256(path)}
    if replaces is not None and replaces != name:
        sums.pop(f"{replaces}.pt", None)
        (Path(folder) / f"{replaces}.pt").unlink(missing_ok=True)
    with atomic_path(Path(folder) / SUMS) as temporary:
        temporary.write_text("".join(f"{digest}  {file}\n" for file, digest in sorted(sums.items())))
    return path


__all__ = ["PretrainedError", "available", "info", "load", "PAPER_CHOICES", "paper_or_shipped", "export_checkpoint",
           "write_shipped"]
