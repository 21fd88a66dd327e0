"""The models slamp knows by a short name: ``MODELS[name]`` is a model class, entered by the
:func:`register_model` decorator where the class is defined (03, 04; ``docs/contributing.md``
adds one). ``model_class`` finds a class by its short name or by the class name a checkpoint
stores. Training (``--set model=NAME``), checkpoints, ``slamp.pretrained``, ``slamp.latents`` and
the benchmarks read it; the package's models are registered when ``slamp.models`` is imported.

Plain Python, tested in ``tests/test_registry.py``.
"""
from __future__ import annotations


MODELS: dict[str, type] = {}  # name -> model class


def register_model(name: str):
    """Class decorator: enter a ``slamp.models.VideoPredictor`` subclass in :data:`MODELS` as ``name``."""

    def register(cls):
        # A class of the same name replaces its entry: a notebook cell run again defines it anew.
        if name in MODELS and MODELS[name].__name__ != cls.__name__:
            raise ValueError(f"a model named {name!r} is already registered ({MODELS[name].__name__})")
        MODELS[name], cls.registry_name = cls, name  # the short name, which a checkpoint records
        return cls

    return register


def model_class(name: str) -> type:
    """The model class registered as ``name``, or whose class name is ``name`` (checkpoints store it)."""
    by_class = {cls.__name__: cls for cls in MODELS.values()}
    if name not in MODELS and name not in by_class:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS.get(name) or by_class[name]

