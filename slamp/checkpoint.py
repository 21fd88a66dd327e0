"""Checkpoints that resume exactly: what the next update depends on (model, optimiser, gradient
scaler, update count, config, best score, every random generator), written atomically and read
with ``torch.load(weights_only=True)``; and the models they hold.

Plain Python; 05 says what a checkpoint holds and checks that a resumed run continues exactly.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from slamp.config import ConfigError, TrainConfig
from slamp.data.files import atomic_path
from slamp.models import ModelConfig, VideoPredictor, load_weights, model_class


CHECKPOINT_FORMAT = "slamp.train/1"


CHECKPOINT_KEYS = ("format", "step", "config", "model_class", "model_config", "model", "optimizer", "scaler",
                   "rng", "best_psnr", "data")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or is not a slamp training checkpoint."""


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


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as temporary:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, temporary)
    return Path(path)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, not a torch file, or objects weights_only refuses
        raise CheckpointError(f"cannot read the checkpoint {path}: truncated, corrupt or not written by "
                              f"slamp.train ({type(error).__name__}: {str(error).splitlines()[0]})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = f"a dict with keys {sorted(map(str, state))[:8]}" if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a slamp training checkpoint: expected a dict with "
                              f"format={CHECKPOINT_FORMAT!r}, found {found}")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete slamp checkpoint: missing {missing}")
    return state


def build_model(config: TrainConfig) -> VideoPredictor:
    """The model ``config`` describes (class, preset sizes, β)."""
    overrides = {} if config.beta is None else {"beta": config.beta}
    return model_class(config.model).from_preset(config.model_preset, **overrides)


def load_model(path, map_location="cpu") -> tuple[VideoPredictor, TrainConfig]:
    """The trained model of a checkpoint (in eval mode) and its training config."""
    state = load_checkpoint(path, map_location)
    model = model_class(state["model_class"])(ModelConfig(**state["model_config"]))
    load_weights(model, state["model"])
    return model.to(map_location).eval(), TrainConfig(**state["config"])


# Continuing a run in a new one: `--set init_from=pretrained:slamp` (or a checkpoint's path) copies
# the trained weights into the new run's model, then trains with a fresh optimiser. Unlike
# `--resume` (an exact continuation, but the checkpoint holds Adam's moments: three times the
# weights), it needs only the shipped float16 weights: how the shipped models are trained over
# several CPU sessions.
def initialise_from(model: VideoPredictor, source: str) -> VideoPredictor:
    """Copy into ``model`` the weights of ``source``: a training checkpoint's path, or
    ``pretrained:<name>`` for a model shipped in ``slamp.pretrained``. Class and sizes must match:
    this continues a training run in a new one (fresh optimiser and schedule), e.g. spread over
    several sessions on a CPU."""
    if source.startswith("pretrained:"):
        from slamp.pretrained import load

        trained = load(source.removeprefix("pretrained:"))
    else:
        trained, _ = load_model(source)
    if type(trained) is not type(model) or trained.config != model.config:
        raise ConfigError(f"init_from={source!r} holds a {type(trained).__name__} {trained.config}, "
                          f"but this run trains a {type(model).__name__} {model.config}")
    model.load_state_dict(trained.state_dict())
    return model


__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_KEYS", "CheckpointError", "NonFiniteLossError", "rng_state",
           "set_rng_state", "save_checkpoint", "load_checkpoint", "build_model", "load_model", "initialise_from"]
