"""Fixed weights for comparing slamp with the public SLAMP code, made from names and shapes alone.

The public code was run once in a scratch folder on these weights (see
``tests/data/public_slamp/README.md``); the tests rebuild the same weights from the recorded names
and shapes, so they need neither the public code nor a weight file.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import sys
import types
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn


def fixed_tensor(name: str, shape, siblings=()) -> torch.Tensor:
    """A float64 tensor for the state-dict entry ``name`` (``"module.key"``) of ``shape``, drawn from
    a generator seeded by the name's CRC-32, scaled so that a network built from such tensors keeps
    activations of order one. ``siblings``: the other keys of the same layer (a BatchNorm is told
    apart by its ``running_var``)."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    t = torch.randn(tuple(shape), generator=g, dtype=torch.float64)
    key = name.rsplit(".", 1)[-1]
    layer = name.rsplit(".", 1)[0] if "." in name else ""
    batchnorm = f"{layer}.running_var" in siblings
    if key == "running_var":
        return t.abs() + 0.5
    if key == "running_mean":
        return 0.1 * t
    if batchnorm and key == "weight":
        return 1.0 + 0.1 * t
    if t.ndim <= 1:  # biases
        return 0.1 * t
    fan_in = t[0].numel() if not key.startswith("weight_") else t.shape[1]  # LSTM: (4H, in)
    return t / math.sqrt(fan_in)


def fixed_state(shapes: dict) -> dict:
    """``{name: tensor}`` for ``{name: shape}`` (``num_batches_tracked`` entries become 0)."""
    names = set(shapes)
    return {name: (torch.zeros((), dtype=torch.long) if name.endswith("num_batches_tracked")
                   else fixed_tensor(name, shape, names)) for name, shape in shapes.items()}


# ---- files in the public release's format, written from the recorded descriptions ----------------
RECORDS = Path(__file__).parent / "data" / "public_slamp"
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def recorded_datasets() -> list[str]:
    """The datasets whose public-code recording is in tests/data/public_slamp/."""
    order = ("mnist", "kth", "bair", "kitti", "cityscapes")
    return [d for d in order if (RECORDS / f"{d}.json").is_file() and (RECORDS / f"{d}.npz").is_file()]


def recorded(dataset: str, folder: Path = RECORDS) -> dict:
    """The recorded description (``<dataset>.json``) with its ``outputs`` (``<dataset>.npz``)."""
    record = json.loads((folder / f"{dataset}.json").read_text())
    with np.load(folder / f"{dataset}.npz") as outputs:
        record["outputs"] = {key: outputs[key] for key in outputs.files}
    return record


def _class(path: str, fakes: dict):
    """The class named ``path``: torch's own, or a stand-in in a made-up module of that name."""
    module, name = path.rsplit(".", 1)
    if module.startswith("torch."):
        return getattr(importlib.import_module(module), name)
    if module not in fakes:
        fakes[module] = types.ModuleType(module)
    if not hasattr(fakes[module], name):
        setattr(fakes[module], name, type(name, (nn.Module,), {"__module__": module}))
    return getattr(fakes[module], name)


class TorchOneFourBackend:
    """What PyTorch 1.4 kept in every module's ``_backend``, pickled as it pickled it."""

    def __reduce__(self):
        from torch.nn.backends.thnn import _get_thnn_function_backend

        return _get_thnn_function_backend, ()


def _build(record: dict, fakes: dict, weights: dict | None = None, prefix: str = "") -> nn.Module:
    """A stand-in module: the recorded tree of classes, the recorded tensors (``weights`` by
    ``prefix + key``, else zeros), no ``forward``."""
    objects = {}
    for path, class_path, _ in record["tree"]:
        cls = _class(class_path, fakes)
        obj = cls.__new__(cls)
        nn.Module.__init__(obj)
        obj._backend = TorchOneFourBackend()  # as every module of the release files holds it
        objects[path] = obj
        if path:
            parent, _, name = path.rpartition(".")
            objects[parent].add_module(name, obj)
    for key, shape in record["state"]:
        path, _, name = key.rpartition(".")
        value = weights[prefix + key] if weights else torch.zeros(shape)  # float64: compared in float64
        if name in BUFFERS:
            objects[path].register_buffer(name, value.long() if name == "num_batches_tracked" else value)
        else:
            objects[path].register_parameter(name, nn.Parameter(value))
    return objects[""]


@contextlib.contextmanager
def stand_in(records: dict, weights: dict | None = None):
    """``{name: stand-in module}`` for ``{name: recorded description}``, with the public code's
    module paths importable while the context lasts (to pickle them), and gone afterwards."""
    fakes = {}
    modules = {name: _build(record, fakes, weights, f"{name}.") for name, record in records.items()}
    added = {name: module for name, module in fakes.items() if name not in sys.modules}
    sys.modules.update(added)
    if "models" not in sys.modules:
        added["models"] = sys.modules["models"] = types.ModuleType("models")
    try:
        yield modules
    finally:
        for name in added:
            sys.modules.pop(name, None)


@contextlib.contextmanager
def saved_as_cuda():
    """``torch.save`` tags every CPU storage ``cuda:0``, as on the GPU the release was trained on."""
    import torch.serialization as serialization

    entry = (-1, lambda storage: "cuda:0" if storage.device.type == "cpu" else None, lambda storage, location: None)
    serialization._package_registry.insert(0, entry)
    try:
        yield
    finally:
        serialization._package_registry.remove(entry)


def public_format_file(dataset: str, path, opt_as_dict: bool = False) -> Path:
    """Write ``path`` as the public code's ``train.py`` saves a model: ``torch.save`` of a dict of
    the whole modules (stand-ins with the recorded classes and tensors: :func:`fixed_state`), ``opt``
    and ``epoch``, in the legacy serialization of PyTorch 1.4, storages tagged ``cuda:0``."""
    record = recorded(dataset)
    shapes = {f"{name}.{key}": shape for name, module in record["modules"].items() for key, shape in module["state"]}
    weights = fixed_state(shapes)
    with stand_in(record["modules"], weights) as modules:
        for module in modules.values():
            module.eval()  # as saved: the LSTMs in eval mode (train mode does not change what is read)
        plain = {k: v for k, v in record.get("opt", {}).items() if isinstance(v, (int, float, str, bool, type(None)))}
        opt = argparse.Namespace(**plain, optimizer=torch.optim.Adam)
        content = {**modules, "opt": vars(opt) if opt_as_dict else opt, "epoch": 290}
        with saved_as_cuda(), warnings.catch_warnings():  # torch cannot find the stand-ins' source: no matter
            warnings.simplefilter("ignore", UserWarning)
            torch.save(content, path, _use_new_zipfile_serialization=False)
    return Path(path)


# ---- files in the public SVG code's format (PyTorch 0.3), from tests/data/public_svg/ ------------
SVG_RECORDS = Path(__file__).parent / "data" / "public_svg"


def svg_settings() -> list[str]:
    """The settings whose public SVG recording is in tests/data/public_svg/."""
    return sorted(p.stem for p in SVG_RECORDS.glob("*.json") if p.with_suffix(".npz").is_file())


def svg_weights(setting: str) -> dict:
    """The fixed float64 weights the public SVG code ran on, ``{"<module>.<key>": tensor}``."""
    record = recorded(setting, SVG_RECORDS)
    return fixed_state({f"{name}.{key}": shape for name, module in record["modules"].items()
                        for key, shape in module["state"]})


def _legacy_pickle_module():
    """A pickle module whose Pickler writes tensors as PyTorch 0.3 did: a Parameter as
    ``Parameter(data)`` with state ``(requires_grad, volatile, hooks)``, a tensor as
    ``torch._utils._rebuild_tensor(storage, offset, size, stride)`` (no requires_grad, no hooks)."""
    import collections
    import pickle

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, nn.Parameter):
                return nn.Parameter, (obj.detach(),), (True, False, collections.OrderedDict())
            if isinstance(obj, LegacyVariable):
                return torch.autograd.variable.Variable, (obj.data,), (False, False, collections.OrderedDict())
            if isinstance(obj, torch.Tensor):
                return torch._utils._rebuild_tensor, (obj.storage(), obj.storage_offset(), tuple(obj.size()),
                                                      obj.stride())
            return NotImplemented

    module = types.ModuleType("legacy_pickle")
    module.Pickler, module.dump = Pickler, pickle.dump  # dump: the header's plain values
    return module


class LegacyVariable:
    """An LSTM state as PyTorch 0.3 kept it (``Variable(torch.zeros(...).cuda())``), to be pickled so."""

    def __init__(self, data):
        self.data = data


def svg_format_file(setting: str, path) -> Path:
    """Write ``path`` as the public SVG code's ``train_svg_lp.py`` saved its models (and as its
    released ``svglp_*.pth`` are): ``torch.save`` of ``encoder``, ``decoder``, ``frame_predictor``,
    ``posterior``, ``prior`` (stand-ins with the recorded classes and fixed weights, conv biases
    included) and ``opt``, as PyTorch 0.3 pickled them: no ``num_batches_tracked``, parameters as
    ``Parameter(data)``, the LSTMs' ``hidden`` as Variables, storages tagged ``cuda:0``."""
    record = recorded(setting, SVG_RECORDS)
    with stand_in(record["modules"], svg_weights(setting)) as modules:
        for name, module in modules.items():
            for layer in module.modules():
                layer._buffers.pop("num_batches_tracked", None)  # PyTorch 0.3 had none
            if name in ("frame_predictor", "posterior", "prior"):
                size = dict(record["modules"][name]["tree"][0][2])
                layers, hidden = size["n_layers"], size["hidden_size"]
                module.hidden = [(LegacyVariable(torch.zeros(100, hidden)), LegacyVariable(torch.zeros(100, hidden)))
                                 for _ in range(layers)]
        plain = {k: v for k, v in record["opt"].items() if isinstance(v, (int, float, str, bool, type(None)))}
        content = {**modules, "opt": argparse.Namespace(**plain, optimizer=torch.optim.Adam)}
        with saved_as_cuda(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TypedStorage is deprecated; the stand-ins have no source
            torch.save(content, path, pickle_module=_legacy_pickle_module(), pickle_protocol=2,
                       _use_new_zipfile_serialization=False)
    return Path(path)
