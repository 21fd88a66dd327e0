"""The public SLAMP release's trained models, opened safely and converted into slamp models.

The public code (kaanakan/slamp, PyTorch 1.4) saves ``torch.save(dict)`` of **whole pickled
modules** — ``pixel_encoder``, ``motion_encoder``, ``posterior_app``, ``prior_app``,
``static_frame_predictor``, ... (KITTI and Cityscapes add ``img_encoder``) — with ``opt`` (an
``argparse.Namespace`` or a dict) and ``epoch``. Unpickling such a file normally imports the public
code and runs whatever the pickle names. Here nothing is imported or run: :func:`read_release`
reads it with an **allow-list**. The public code's classes and torch's layer classes become inert
:class:`ModuleRecord` objects that only hold what was pickled (parameters, buffers, children,
attributes); tensors are rebuilt by torch's own loader and mapped to the CPU (``cuda:0``-tagged
storages included), in the legacy (PyTorch < 1.6) or the zip serialization; any other global is
refused with an :class:`UnsafeFileError` that names it.

:func:`convert_release` then copies the weights into slamp's model of the same architecture
(``SLAMP.from_preset(<dataset>)``), one public module into one slamp submodule
(:data:`CORRESPONDENCE`), tensor by tensor in the order each module registers them, every shape
checked. ``tests/test_release.py`` proves on recorded outputs of the public code that the result
computes the same function.

Plain glue: no notebook teaches this module.
"""
from __future__ import annotations

import _compat_pickle
import argparse
import collections
import math
import pickle
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


# The public code's modules, as the pickles name them; their classes are rebuilt as inert records.
PUBLIC_CLASSES = {
    "models.dcgan_64": {"encoder", "decoder", "dcgan_conv", "dcgan_upconv"},
    "models.vgg_64": {"encoder", "decoder", "vgg_layer"},
    "models.lstm": {"lstm", "gaussian_lstm"},
    "models.mask_predictor": {"mask_predictor", "vgg_layer", "SELayer"},
    "models.conv_lstms": {"conv_lstm", "gaussian_conv_lstm", "ConvLSTMCell"},
    "models.kitti_models": {"encoder", "spatial_encoder", "decoder", "conv", "SELayer"},
    "models.cityscapes_models": {"encoder", "spatial_encoder", "decoder", "conv", "SELayer"},
}
# torch's layers that the public modules hold, also rebuilt as inert records (never torch's classes).
TORCH_LAYERS = {
    "torch.nn.modules.conv": {"Conv2d", "ConvTranspose2d"},
    "torch.nn.modules.batchnorm": {"BatchNorm2d"},
    "torch.nn.modules.linear": {"Linear"},
    "torch.nn.modules.rnn": {"LSTMCell"},
    "torch.nn.modules.container": {"Sequential", "ModuleList"},
    "torch.nn.modules.activation": {"LeakyReLU", "ReLU", "Sigmoid", "Tanh"},
    "torch.nn.modules.pooling": {"MaxPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"},
    "torch.nn.modules.upsampling": {"UpsamplingNearest2d", "Upsample"},
}
# Globals that name a class without making one (``opt.optimizer = optim.Adam``): kept as their name.
NAMED_ONLY = {"torch.optim.adam.Adam", "torch.optim.rmsprop.RMSprop", "torch.optim.sgd.SGD"}


class UnsafeFileError(pickle.UnpicklingError):
    """A file names a global outside the allow-list; nothing it names was imported or run."""


class ReleaseError(ValueError):
    """A file is not one of the public SLAMP release's checkpoints, or does not fit slamp's model."""


class ModuleRecord:
    """An inert stand-in for one pickled module of class :attr:`class_path`: the pickled attributes
    (``_parameters``, ``_buffers``, ``_modules``, ``training``, sizes, ...) and nothing else. It
    has no ``forward``; nothing of the public code runs."""

    class_path = "?"
    dump_patches = False  # torch's legacy loader would write a .patch file for a class that asks

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]
        if not isinstance(state, dict):
            raise UnsafeFileError(f"a pickled {self.class_path} carries state of type {type(state).__name__}, "
                                  f"expected a dict of attributes")
        self.__dict__.update(state)

    def __repr__(self):
        return f"<record of {self.class_path}>"

    @property
    def children(self) -> dict:
        return dict(self.__dict__.get("_modules") or {})

    def state_dict(self, prefix: str = "") -> dict:
        """``{key: tensor}`` as ``nn.Module.state_dict`` orders it: own parameters, own buffers,
        then each child's, recursively."""
        state = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.__dict__.get(group) or {}).items():
                if value is not None:
                    state[prefix + name] = value.detach().requires_grad_(False)
        for name, child in self.children.items():
            if child is not None:
                state.update(child.state_dict(f"{prefix}{name}."))
        return state


_RECORDS: dict[str, type] = {}


def _record_class(path: str) -> type:
    if path not in _RECORDS:
        _RECORDS[path] = type(path.rsplit(".", 1)[1], (ModuleRecord,), {"class_path": path, "__module__": __name__})
    return _RECORDS[path]


class NamedGlobal:
    """A global that the file only names (the optimiser class in ``opt``); calling it is refused."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, *args, **kwargs):
        raise UnsafeFileError(f"the file asks to call {self.path}; slamp only reads its name")

    def __repr__(self):
        return self.path


def _reconstructor(cls, base, state):  # copyreg._reconstructor, for the classes made here only
    if base is not object or not (isinstance(cls, type) and issubclass(cls, (ModuleRecord, argparse.Namespace))):
        raise UnsafeFileError(f"the file asks to build {cls!r} on {base!r}; only the public code's modules and "
                              f"argparse.Namespace are rebuilt")
    return object.__new__(cls)


def _encode(text, encoding="utf-8"):  # _codecs.encode: how protocol 2 pickles bytes
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeFileError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not how a pickle holds bytes")
    return text.encode("latin1")


def _numpy_scalar(dtype, data=None):  # numpy's scalar reconstructor: a number from its bytes
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes):
        raise UnsafeFileError(f"a numpy scalar of dtype {dtype!r} is not a plain number")
    return np.frombuffer(data, dtype=dtype)[0]


_TORCH_REBUILD = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"}
SAFE_GLOBALS = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set, "builtins.frozenset": frozenset,
    "copyreg._reconstructor": _reconstructor,
    "_codecs.encode": _encode,
    "argparse.Namespace": argparse.Namespace,
    "torch.device": torch.device,
    "torch.Size": torch.Size,
    # PyTorch < 1.5 kept a backend object in every module's ``_backend`` and pickled it as this call
    "torch.nn.backends.thnn._get_thnn_function_backend": lambda: None,
    "numpy.dtype": np.dtype,
    "numpy.core.multiarray.scalar": _numpy_scalar, "numpy._core.multiarray.scalar": _numpy_scalar,
    **{f"torch._utils.{name}": getattr(torch._utils, name) for name in _TORCH_REBUILD if hasattr(torch._utils, name)},
}


def allowed(module: str, name: str):
    """What the global ``module.name`` unpickles to, or an :class:`UnsafeFileError` naming it."""
    path = f"{module}.{name}"
    if path in SAFE_GLOBALS:
        return SAFE_GLOBALS[path]
    if name in PUBLIC_CLASSES.get(module, ()) or name in TORCH_LAYERS.get(module, ()):
        return _record_class(path)
    if path in NAMED_ONLY:
        return NamedGlobal(path)
    raise UnsafeFileError(f"refusing the global {path}: it is not on slamp's allow-list for public SLAMP "
                          f"checkpoints (the public code's modules, torch's layers and tensors, plain containers); "
                          f"nothing it names was imported or run")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        # Python 2's names, as protocol 2 writes them (``__builtin__.set``), read as pickle itself would
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        return allowed(module, name)


# What torch.load(pickle_module=...) needs: an Unpickler class and a load function.
_restricted_pickle = types.ModuleType("slamp.release.restricted_pickle")
_restricted_pickle.Unpickler = _Unpickler
_restricted_pickle.load = lambda file, **kwargs: _Unpickler(file, **kwargs).load()


def load_restricted(path):
    """``torch.load`` of ``path`` through the allow-list (legacy or zip serialization; tensors on
    the CPU). Raises :class:`UnsafeFileError` for a global outside the list."""
    with warnings.catch_warnings():  # the legacy loader compares each module class's source with its own
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", pickle_module=_restricted_pickle, weights_only=False)


@dataclass
class PublicRelease:
    """A public SLAMP checkpoint, read inertly: ``modules`` ``{name: ModuleRecord}``, ``opt`` (a
    dict of the training options), ``epoch`` and the ``dataset`` its modules belong to."""

    modules: dict
    opt: dict = field(default_factory=dict)
    epoch: int | None = None
    dataset: str = ""

    def state_dict(self, name: str) -> dict:
        return self.modules[name].state_dict()

    def num_parameters(self) -> int:
        return sum(_parameter_count(record) for record in self.modules.values())


def _parameter_count(record: ModuleRecord) -> int:
    own = sum(v.numel() for v in (record.__dict__.get("_parameters") or {}).values() if v is not None)
    return own + sum(_parameter_count(child) for child in record.children.values() if child is not None)


MODULES = ("pixel_encoder", "motion_encoder", "posterior_app", "prior_app", "static_frame_predictor",
           "posterior_motion", "prior_motion", "dynamic_frame_predictor", "pixel_decoder", "flow_decoder",
           "mask_decoder")
CONV_MODULES = MODULES + ("img_encoder",)


def _plain(value):
    """Options as plain values (numpy numbers to Python's, the optimiser class to its name)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, NamedGlobal):
        return value.path
    if isinstance(value, torch.device):
        return str(value)
    return value


def _dataset_of(modules: dict, opt: dict) -> str:
    """The dataset a release file's modules were built for, from their classes (and ``opt``)."""
    encoder = modules["pixel_encoder"].class_path
    if encoder.startswith("models.dcgan_64."):
        return "mnist"
    if encoder.startswith("models.kitti_models."):
        return "kitti"
    if encoder.startswith("models.cityscapes_models."):
        return "cityscapes"
    if encoder.startswith("models.vgg_64."):
        named = str(opt.get("dataset", ""))
        if named in ("kth", "bair"):
            return named
        first = next(iter(modules["pixel_encoder"].state_dict().values()))  # (64, channels, 3, 3)
        return "bair" if first.shape[1] == 3 else "kth"
    raise ReleaseError(f"the pixel_encoder is a {encoder}, not one of the public code's encoders")


def describe(obj) -> str:
    """A short account of what a file held, for error messages."""
    if isinstance(obj, dict):
        keys = sorted(map(str, obj))
        return f"a dict with keys {keys[:12]}{' ...' if len(keys) > 12 else ''}"
    return f"a {type(obj).__name__}"


def read_release(path) -> PublicRelease:
    """Read a public SLAMP release file (``slamp_<dataset>.pth``) without running anything it names.

    A :class:`ReleaseError` says what the file held when it is not such a checkpoint; an
    :class:`UnsafeFileError` names a global outside the allow-list."""
    path = Path(path)
    if not path.is_file():
        raise ReleaseError(f"no file at {path}")
    try:
        content = load_restricted(path)
    except UnsafeFileError:
        raise
    except Exception as error:
        detail = (str(error).strip().splitlines() or [""])[0]
        raise ReleaseError(f"cannot read {path} as a torch file ({type(error).__name__}: {detail})") from error
    if not isinstance(content, dict):
        raise ReleaseError(f"{path} is not a public SLAMP checkpoint: it holds {describe(content)}")
    missing = [name for name in MODULES if not isinstance(content.get(name), ModuleRecord)]
    if missing:
        raise ReleaseError(f"{path} is not a public SLAMP checkpoint: it holds {describe(content)}, without the "
                           f"public code's modules {missing}")
    opt = content.get("opt", {})
    opt = vars(opt) if isinstance(opt, argparse.Namespace) else dict(opt) if isinstance(opt, dict) else {}
    opt = {str(key): _plain(value) for key, value in opt.items()}
    modules = {name: record for name, record in content.items() if isinstance(record, ModuleRecord)}
    epoch = content.get("epoch")
    return PublicRelease(modules, opt, int(epoch) if epoch is not None else None, _dataset_of(modules, opt))


def is_release(path) -> bool:
    """Whether ``path`` reads as a public SLAMP release checkpoint (never runs anything it names)."""
    try:
        read_release(path)
    except (ReleaseError, UnsafeFileError):
        return False
    return True


# One public module → one slamp submodule of SLAMP. The tensors of each pair are matched in the
# order their modules register them; every shape is checked. KITTI and Cityscapes add the image
# encoder that both streams share (``IMAGE_ENCODER``); their Gaussian ConvLSTMs keep the public
# code's unused ``embed`` layer, frozen, so that these weights map one to one too.
IMAGE_ENCODER = ("img_encoder", "image_encoder")
CORRESPONDENCE = {
    "pixel_encoder": "encoder",
    "motion_encoder": "motion.encoder.encoder",
    "posterior_app": "appearance.posterior",
    "prior_app": "appearance.prior",
    "static_frame_predictor": "appearance.predictor",
    "posterior_motion": "motion.latent.posterior",
    "prior_motion": "motion.latent.prior",
    "dynamic_frame_predictor": "motion.latent.predictor",
    "pixel_decoder": "pixel_decoder",
    "flow_decoder": "flow_decoder",
    "mask_decoder": "mask_net",
}
def mapped_weights(release: PublicRelease, model: torch.nn.Module) -> dict:
    """``model``'s state dict filled from ``release``, tensor by tensor (a :class:`ReleaseError`
    naming the first tensor whose shape or count does not fit)."""
    weights = {}
    pairs = dict(CORRESPONDENCE)
    if IMAGE_ENCODER[0] in release.modules:
        pairs[IMAGE_ENCODER[0]] = IMAGE_ENCODER[1]
    for public, ours in pairs.items():
        source = release.state_dict(public)
        target = model.get_submodule(ours).state_dict()
        if len(source) != len(target):
            raise ReleaseError(f"the public {public} holds {len(source)} tensors, slamp's {ours} {len(target)}: "
                               f"not the same architecture")
        for (key, value), (name, slot) in zip(source.items(), target.items()):
            if value.shape != slot.shape:
                raise ReleaseError(f"the public {public}.{key} has shape {tuple(value.shape)}, slamp's "
                                   f"{ours}.{name} {tuple(slot.shape)}: not the same architecture")
            weights[f"{ours}.{name}"] = value.to(slot.dtype)
    missing = sorted(set(model.state_dict()) - set(weights))
    if missing:
        raise ReleaseError(f"no public weights for slamp's {missing[:5]}")
    return weights


def convert_release(release: PublicRelease, dtype: torch.dtype = torch.float32):
    """The slamp SLAMP of ``release``'s dataset (the paper's preset), holding its weights, in eval
    mode, computing in ``dtype`` (the weights are cast once, from what the file holds)."""
    from slamp.models import SLAMP

    model = SLAMP.from_preset(release.dataset).to(dtype)
    model.load_state_dict(mapped_weights(release, model))
    return model.eval()


def release_config(release: PublicRelease):
    """The training config of ``release``: the paper's recipe for its dataset (``TrainConfig.preset``)."""
    from slamp.config import TrainConfig

    return TrainConfig.preset(release.dataset)


def updates_of(release: PublicRelease) -> int:
    """Updates the release's model had: its saved epoch times the public code's epoch size (1,000)."""
    return int(release.epoch or 0) * int(release.opt.get("epoch_size", 1000))


def checkpoint_state(release: PublicRelease, model=None) -> dict:
    """What :func:`slamp.checkpoint.save_checkpoint` writes for ``release``: its converted model, the
    paper's recipe as config, and a fresh Adam (the release holds no optimiser state), with
    ``source`` saying where it came from."""
    from dataclasses import asdict

    from slamp.checkpoint import rng_state
    from slamp.run import adam

    model = model if model is not None else convert_release(release)
    config = release_config(release)
    return {"step": updates_of(release), "config": config.to_dict(), "model_class": type(model).__name__,
            "model_config": asdict(model.config), "model": model.state_dict(),
            "optimizer": adam(model.parameters(), config.lr, config.betas, config.adam_eps).state_dict(),
            "scaler": {}, "rng": rng_state(), "best_psnr": -math.inf,
            "data": {"epoch": release.epoch}, "source": {"public_release": release.dataset,
                                                          "options": {k: v for k, v in release.opt.items()
                                                                      if isinstance(v, (int, float, str, bool))}}}


def convert_file(source, destination) -> Path:
    """``slamp convert``: read the public release file ``source`` safely and write it as an ordinary
    slamp training checkpoint at ``destination`` (readable with ``torch.load(weights_only=True)``)."""
    from slamp.checkpoint import save_checkpoint

    release = read_release(source)
    return save_checkpoint(destination, checkpoint_state(release))


__all__ = ["UnsafeFileError", "ReleaseError", "ModuleRecord", "PublicRelease",
           "load_restricted", "read_release", "is_release", "CORRESPONDENCE", "mapped_weights", "convert_release",
           "release_config", "updates_of", "checkpoint_state", "convert_file"]
