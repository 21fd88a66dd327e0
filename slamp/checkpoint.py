"""Checkpoints that resume exactly: what the next update depends on (model, optimiser, gradient
scaler, update count, config, best score, every random generator), written atomically and read
with ``torch.load(weights_only=True)``; and the models they hold.

Plain Python; 05 says what a checkpoint holds and checks that a resumed run continues exactly.
"""
from __future__ import annotations

import hashlib
import math
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from slamp.config import TrainConfig
from slamp.data.files import atomic_path, save_tensors
from slamp.model_registry import model_class
from slamp.models import ModelConfig, VideoPredictor


CHECKPOINT_FORMAT = "slamp.train/1"


CHECKPOINT_KEYS = ("format", "step", "config", "model_class", "model_config", "model", "optimizer", "scaler",
                   "rng", "best_psnr", "data")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or is not a slamp training checkpoint."""


class PublicReleaseFile(CheckpointError):
    """The file is one of the public SLAMP release's checkpoints or the public SVG code's; ``release``
    holds it, read safely (a :class:`slamp.release.PublicRelease`)."""

    def __init__(self, path, release):
        which = (f"the public SLAMP release's {release.dataset} checkpoint (whole pickled modules, epoch "
                 f"{release.epoch})" if release.family == "slamp" else
                 f"the public SVG code's SVG-LP {release.dataset} model (whole pickled modules)")
        super().__init__(f"{path} is {which}, not a slamp training checkpoint: `slamp convert {path} DEST` "
                         f"writes one; load_model, `--checkpoint` and init_from read it as it is")
        self.release = release


class IncompatibleWeightsError(ValueError):
    """Weights that do not fit a model; the message says which keys and why."""


def load_weights(model: torch.nn.Module, weights: dict) -> torch.nn.Module:
    """``model.load_state_dict(weights)``, with a clear error for weights that do not fit, among them
    those of an older layout (biases in the convolutions before a BatchNorm)."""
    expected = set(model.state_dict())
    extra, missing = sorted(set(weights) - expected), sorted(expected - set(weights))
    if extra and not missing and all(key.endswith(".bias") for key in extra):
        raise IncompatibleWeightsError(
            f"these weights come from an older slamp whose convolutions before BatchNorm and whose "
            f"squeeze-excitation layers had biases ({len(extra)} extra tensors, e.g. {extra[0]}); the "
            f"public code has none, and neither has this version. Retrain the model (`slamp train`) or "
            f"load it with the slamp version that wrote it.")
    if extra or missing:
        raise IncompatibleWeightsError(f"the weights do not fit {type(model).__name__}: missing {missing[:5]}"
                                       f"{' ...' if len(missing) > 5 else ''}, unexpected {extra[:5]}"
                                       f"{' ...' if len(extra) > 5 else ''}")
    model.load_state_dict(weights)
    return model


def saved_as_now(class_name: str, config: dict) -> tuple[str, dict]:
    """The model class name and config a checkpoint records (``model_class``, ``model_config``) as
    this slamp names them: a config without ``skips`` predates the skip rules, when every model used
    SLAMP's running mean and the class named ``SVG`` was ``AppearanceOnly``."""
    if "skips" in config:
        return class_name, config
    return ("AppearanceOnly" if class_name in ("SVG", "svg") else class_name), {**config, "skips": "mean"}


def saved_model(class_name: str, config: dict) -> VideoPredictor:
    """A new model of the class and config a checkpoint records (see :func:`saved_as_now`)."""
    class_name, config = saved_as_now(class_name, config)
    return model_class(class_name)(ModelConfig(**config))


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped before updating the model."""


def rng_state() -> dict:
    """The state of every random generator, as tensors and plain values (``weights_only``-safe)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)],
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(state["python"])


def content_sha256(state: dict) -> str:
    """SHA-256 of a checkpoint's content: every tensor's dtype, shape and bytes and every plain
    value, in a fixed order (the ``checksum`` entry itself left out). Flipped bytes in a tensor
    change it, wherever they are; the file's zip layout does not."""
    digest = hashlib.sha256()

    def visit(key: str, value) -> None:
        digest.update(key.encode())
        if torch.is_tensor(value):
            value = value.detach().cpu().contiguous()
            digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for name in sorted(value, key=str):
                visit(f"{key}/{name}", value[name])
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(f"{key}/{index}", item)
        else:
            digest.update(repr(value).encode())

    for name in sorted(state, key=str):
        if name != "checksum":
            visit(name, state[name])
    return digest.hexdigest()


def non_finite_tensors(state: dict) -> list[str]:
    """Names of the model's and the optimiser's floating-point tensors that hold NaN or inf."""
    found = []
    for part in ("model", "optimizer"):
        stack = [(part, state.get(part, {}))]
        while stack:
            name, value = stack.pop()
            if torch.is_tensor(value):
                if value.is_floating_point() and not torch.isfinite(value).all():
                    found.append(name)
            elif isinstance(value, dict):
                stack += [(f"{name}.{key}", item) for key, item in value.items()]
            elif isinstance(value, (list, tuple)):
                stack += [(f"{name}[{index}]", item) for index, item in enumerate(value)]
    return sorted(found)


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` to ``path``, good when it says so: the model and the optimiser are checked
    finite first (a ``CheckpointError`` otherwise, and nothing is written); the file is written
    beside the target with the checksum of its content, read back and verified, and only then
    renamed over the previous checkpoint, which stays as it was until that moment."""
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(f"refusing to write {path}: {len(bad)} tensor(s) of the model or the optimiser are not "
                              f"finite ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); the previous checkpoint "
                              f"there, if any, is unchanged")
    content = {"format": CHECKPOINT_FORMAT, **state}
    content["checksum"] = content_sha256(content)
    with atomic_path(path) as temporary:
        save_tensors(content, temporary)  # a full disk: OSError(ENOSPC)
        load_checkpoint(temporary, complete=False)  # read back and verified before it replaces anything
    return Path(path)


def load_checkpoint(path, map_location="cpu", complete: bool = True) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``) and
    verify its checksum; a ``CheckpointError`` naming the file when it is missing, empty,
    truncated, damaged or not a slamp training checkpoint (``complete``: with every entry of
    ``CHECKPOINT_KEYS``, as a training run writes them)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"the checkpoint {path} is empty (0 bytes): a write that never finished; use an "
                              f"earlier checkpoint or start again")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, not a torch file, or objects weights_only refuses
        detail = (str(error).strip().splitlines() or [""])[0]
        if isinstance(error, pickle.UnpicklingError):  # objects that weights_only refuses: say whose
            from slamp.release import ReleaseError, UnsafeFileError, read_release

            try:
                release = read_release(path)  # through an allow-list: nothing the file names is run
            except (ReleaseError, UnsafeFileError) as refused:
                raise CheckpointError(f"cannot read the checkpoint {path}: not written by slamp.train, nor a public "
                                      f"SLAMP release file: {refused}") from None
            raise PublicReleaseFile(path, release) from None
        raise CheckpointError(f"cannot read the checkpoint {path}: truncated, corrupt or not written by "
                              f"slamp.train ({type(error).__name__}: {detail})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = f"a dict with keys {sorted(map(str, state))[:8]}" if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a slamp training checkpoint: expected a dict with "
                              f"format={CHECKPOINT_FORMAT!r}, found {found}")
    missing = [key for key in CHECKPOINT_KEYS if key not in state] if complete else []
    if missing:
        raise CheckpointError(f"{path} is an incomplete slamp checkpoint: missing {missing}")
    if "checksum" in state and state["checksum"] != content_sha256(state):  # older checkpoints have none
        raise CheckpointError(f"the checkpoint {path} is damaged: its content does not match the checksum written "
                              f"with it (flipped bytes on disk or in a copy); use an earlier checkpoint")
    return state


def build_model(config: TrainConfig) -> VideoPredictor:
    """The model ``config`` describes (class, preset sizes, β)."""
    overrides = {} if config.beta is None else {"beta": config.beta}
    return model_class(config.model).from_preset(config.model_preset, **overrides)


def load_model(path, map_location="cpu") -> tuple[VideoPredictor, TrainConfig]:
    """The trained model of a checkpoint (in eval mode) and its training config. A public SLAMP
    release file (``slamp_<dataset>.pth``) is read safely and converted (``slamp.release``); its
    config is the paper's recipe for its dataset."""
    try:
        state = load_checkpoint(path, map_location)
    except PublicReleaseFile as public:
        from slamp.release import convert_release, release_config

        return convert_release(public.release).to(map_location), release_config(public.release)
    try:
        model = saved_model(state["model_class"], state["model_config"])
    except ValueError as error:
        raise CheckpointError(f"{path} holds a model of class {state['model_class']!r}, which this slamp does not "
                              f"build: {error}") from None
    except (TypeError, AttributeError) as error:  # fields this slamp's ModelConfig does not have, or not a dict
        raise CheckpointError(f"{path}: its model_config is not one this slamp reads ({error}); it was written by "
                              f"another program or version") from None
    check_weights(path, model, state["model"])
    load_weights(model, state["model"])
    # the run's config names the model as this slamp does (an older run's "svg" is appearance_only)
    return model.to(map_location).eval(), read_config(path, {**state["config"], "model": model.registry_name})


def read_config(path, fields: dict) -> TrainConfig:
    """The training config a checkpoint records, or a :class:`CheckpointError` naming the file and
    the fields this slamp does not know (a foreign or newer file)."""
    from slamp.config import ConfigError

    unknown = sorted(set(fields) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise CheckpointError(f"{path}: its training config has fields this slamp does not know ({', '.join(unknown[:5])}"
                              f"{' ...' if len(unknown) > 5 else ''}); it was written by another program or version")
    try:
        return TrainConfig(**fields)
    except ConfigError as error:
        raise CheckpointError(f"{path}: its training config is not valid here: {error}") from None


def check_weights(path, model: torch.nn.Module, weights) -> None:
    """Every tensor of ``weights`` has the dtype and shape of the model's tensor of the same name
    (int64 weights would be cast in silence by ``load_state_dict``); a :class:`CheckpointError`
    naming the file and the first tensors that differ. Names the model does not have are left to
    :func:`slamp.models.load_weights` (renamed older weights, a clear error otherwise)."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: its model weights are a {type(weights).__name__}, not a dict of tensors")
    own = model.state_dict()
    wrong = [f"{name} ({value.dtype if torch.is_tensor(value) else type(value).__name__}"
             f"{tuple(value.shape) if torch.is_tensor(value) else ''}, expected {own[name].dtype}{tuple(own[name].shape)})"
             for name, value in weights.items() if name in own and not (
                 torch.is_tensor(value) and value.dtype == own[name].dtype and value.shape == own[name].shape)]
    if wrong:
        raise CheckpointError(f"{path}: {len(wrong)} weight(s) of the wrong type or shape, e.g. {'; '.join(wrong[:3])}: "
                              f"not weights this model was trained with")


# `slamp convert`: a public release file as an ordinary training checkpoint.
def release_checkpoint_state(release, model=None) -> dict:
    """What :func:`save_checkpoint` writes for a public release ``release`` (``slamp.release``): its converted model, the
    paper's recipe as config, and a fresh Adam (the release holds no optimiser state), with
    ``source`` saying where it came from."""
    from dataclasses import asdict

    from slamp.release import convert_release, release_config, updates_of
    from slamp.runtime import adam

    model = model if model is not None else convert_release(release)
    config = release_config(release)
    return {"step": updates_of(release), "config": config.to_dict(), "model_class": type(model).__name__,
            "model_config": asdict(model.config), "model": model.state_dict(),
            "optimizer": adam(model.parameters(), config.lr, config.betas, config.adam_eps).state_dict(),
            "scaler": {}, "rng": rng_state(), "best_psnr": -math.inf,
            "data": {"epoch": release.epoch}, "source": {"public_release": release.dataset, "family": release.family,
                                                          "options": {k: v for k, v in release.opt.items()
                                                                      if isinstance(v, (int, float, str, bool))}}}


def convert_release_file(source, destination) -> Path:
    """``slamp convert``: read the public release file ``source`` safely and write it as an ordinary
    slamp training checkpoint at ``destination`` (readable with ``torch.load(weights_only=True)``)."""
    from slamp.release import read_release

    return save_checkpoint(destination, release_checkpoint_state(read_release(source)))


__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_KEYS", "CheckpointError", "PublicReleaseFile", "NonFiniteLossError", "rng_state",
           "set_rng_state", "save_checkpoint", "load_checkpoint", "build_model", "load_model",
           "release_checkpoint_state", "convert_release_file", "read_config", "check_weights"]
