"""The public SLAMP and SVG releases' trained models, opened safely and converted into slamp models.

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

The public SVG code (edenton/svg, PyTorch 0.3) saved its two trained SVG-LP models
(``pretrained_models/svglp_smmnist2.pth``, ``svglp_bair.pth``) the same way: ``encoder``,
``decoder``, ``frame_predictor``, ``posterior``, ``prior`` and ``opt``, parameters pickled as
PyTorch 0.3 pickled them (``Parameter(data)``, LSTM states as ``Variable``), BatchNorm without
``num_batches_tracked``, and biases in the convolutions before each BatchNorm. The same reader opens
them (:attr:`PublicRelease.family` says which code wrote a file).

:func:`convert_release` then copies the weights into slamp's model of the same architecture
(``SLAMP.from_preset(<dataset>)``, or ``SVG`` with the file's own options), one public module into one
slamp submodule (:data:`CORRESPONDENCE`, :data:`SVG_CORRESPONDENCE`), tensor by tensor in the order
each module registers them, every shape checked. A conv bias that feeds a BatchNorm is folded into
that BatchNorm's running mean (:func:`folded_state`: exact, since BatchNorm subtracts a mean that
holds the bias; slamp's convolutions before BatchNorm have none). ``tests/test_release.py`` and
``tests/test_svg_release.py`` prove on recorded outputs of the public codes that the results compute
the same functions.

Plain glue: no notebook teaches this module.
"""
from __future__ import annotations

import _compat_pickle
import argparse
import collections
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
# PyTorch 0.3 (the public SVG files) pickled a Parameter or a Variable as a call of its class on the
# tensor, and older torch a tensor as its class called with nothing, then ``set_`` to its storage.
_LEGACY_TENSORS = {"FloatTensor": torch.float32, "DoubleTensor": torch.float64, "LongTensor": torch.long}


def _from_tensor(data=None, *_):  # Parameter(data) and Variable(data) of PyTorch 0.3: just the tensor
    if not isinstance(data, torch.Tensor):
        raise UnsafeFileError(f"a pickled Parameter or Variable wraps a {type(data).__name__}, not a tensor")
    return data.detach()


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

    def own_tensors(self, prefix: str = "") -> dict:
        """``{prefix + key: tensor}`` of this record's own parameters, then its own buffers."""
        return {prefix + name: value.detach().requires_grad_(False) for group in ("_parameters", "_buffers")
                for name, value in (self.__dict__.get(group) or {}).items() if value is not None}

    def state_dict(self, prefix: str = "") -> dict:
        """``{key: tensor}`` as ``nn.Module.state_dict`` orders it: own parameters, own buffers,
        then each child's, recursively."""
        state = self.own_tensors(prefix)
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
    "torch.nn.parameter.Parameter": _from_tensor, "torch.autograd.variable.Variable": _from_tensor,
    **{f"torch{place}.{name}": (lambda dtype=dtype: torch.empty(0, dtype=dtype))
       for name, dtype in _LEGACY_TENSORS.items() for place in ("", ".cuda")},
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
                          f"and SVG checkpoints (the public code's modules, torch's layers and tensors, plain containers); "
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
    """A public SLAMP or SVG checkpoint, read inertly: ``modules`` ``{name: ModuleRecord}``, ``opt``
    (a dict of the training options), ``epoch``, the ``dataset`` its modules belong to and the
    ``family`` of code that wrote it (``"slamp"`` or ``"svg"``)."""

    modules: dict
    opt: dict = field(default_factory=dict)
    epoch: int | None = None
    dataset: str = ""
    family: str = "slamp"

    def state_dict(self, name: str) -> dict:
        """The tensors of module ``name`` in registration order, conv biases folded (:func:`folded_state`)."""
        return folded_state(self.modules[name])

    def num_parameters(self) -> int:
        return sum(_parameter_count(record) for record in self.modules.values())


def _parameter_count(record: ModuleRecord) -> int:
    own = sum(v.numel() for v in (record.__dict__.get("_parameters") or {}).values() if v is not None)
    return own + sum(_parameter_count(child) for child in record.children.values() if child is not None)


MODULES = ("pixel_encoder", "motion_encoder", "posterior_app", "prior_app", "static_frame_predictor",
           "posterior_motion", "prior_motion", "dynamic_frame_predictor", "pixel_decoder", "flow_decoder",
           "mask_decoder")
CONV_MODULES = MODULES + ("img_encoder",)
SVG_MODULES = ("encoder", "decoder", "frame_predictor", "posterior", "prior")
_CONVOLUTIONS = ("Conv2d", "ConvTranspose2d")


def folded_state(record: ModuleRecord, prefix: str = "") -> dict:
    """``record.state_dict()`` as slamp's layers hold it: the bias of a convolution whose next
    sibling is a BatchNorm is folded into that BatchNorm's running mean (BatchNorm subtracts a mean
    that includes it: in training mode it cancels, in evaluation mode ``running_mean - bias`` gives
    the same output), and a BatchNorm saved before PyTorch 0.4.1 gets ``num_batches_tracked`` = 0."""
    state = record.own_tensors(prefix)
    if record.class_path.endswith("BatchNorm2d") and f"{prefix}num_batches_tracked" not in state:
        state[f"{prefix}num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    children = [(name, child) for name, child in record.children.items() if child is not None]
    pending = None  # the bias of the convolution just read, for the BatchNorm that follows it
    for i, (name, child) in enumerate(children):
        inner = folded_state(child, f"{prefix}{name}.")
        if pending is not None:
            mean = f"{prefix}{name}.running_mean"
            inner[mean], pending = inner[mean] - pending.to(inner[mean].dtype), None
        following = children[i + 1][1] if i + 1 < len(children) else None
        if (child.class_path.rsplit(".", 1)[-1] in _CONVOLUTIONS and f"{prefix}{name}.bias" in inner
                and following is not None and following.class_path.endswith("BatchNorm2d")):
            pending = inner.pop(f"{prefix}{name}.bias")
        state.update(inner)
    return state


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


def _svg_dataset_of(modules: dict, opt: dict) -> str:
    """``mnist`` or ``bair``: the dataset a public SVG file was trained on, from ``opt`` or its encoder."""
    named = {"smmnist": "mnist", "bair": "bair"}.get(str(opt.get("dataset", "")))
    if named:
        return named
    encoder = modules["encoder"].class_path
    if encoder.startswith("models.dcgan_64."):
        return "mnist"
    if encoder.startswith("models.vgg_64."):
        return "bair"
    raise ReleaseError(f"the encoder is a {encoder}, not one of the public SVG code's 64x64 encoders")


def read_release(path) -> PublicRelease:
    """Read a public SLAMP release file (``slamp_<dataset>.pth``) or a public SVG one
    (``svglp_smmnist2.pth``, ``svglp_bair.pth``) without running anything it names.

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
        raise ReleaseError(f"{path} is not a public SLAMP or SVG checkpoint: it holds {describe(content)}")
    missing = {family: [name for name in names if not isinstance(content.get(name), ModuleRecord)]
               for family, names in (("slamp", MODULES), ("svg", SVG_MODULES))}
    family = next((family for family, absent in missing.items() if not absent), None)
    if family is None:
        raise ReleaseError(f"{path} is not a public SLAMP or SVG checkpoint: it holds {describe(content)}, without "
                           f"the public SLAMP code's modules {missing['slamp']} or the SVG code's {missing['svg']}")
    opt = content.get("opt", {})
    opt = vars(opt) if isinstance(opt, argparse.Namespace) else dict(opt) if isinstance(opt, dict) else {}
    opt = {str(key): _plain(value) for key, value in opt.items()}
    modules = {name: record for name, record in content.items() if isinstance(record, ModuleRecord)}
    epoch = content.get("epoch")
    dataset = _dataset_of(modules, opt) if family == "slamp" else _svg_dataset_of(modules, opt)
    return PublicRelease(modules, opt, int(epoch) if epoch is not None else None, dataset, family)


def is_release(path) -> bool:
    """Whether ``path`` reads as a public SLAMP or SVG checkpoint (never runs anything it names)."""
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
# The public SVG code's modules → slamp's SVG (one latent stream: the appearance one).
SVG_CORRESPONDENCE = {
    "encoder": "encoder",
    "decoder": "pixel_decoder",
    "frame_predictor": "appearance.predictor",
    "posterior": "appearance.posterior",
    "prior": "appearance.prior",
}


def _matched(release: PublicRelease, model: torch.nn.Module) -> list[tuple[str, str, torch.Tensor]]:
    """``(public key, slamp key, tensor)`` for every tensor of ``release`` that ``model`` holds (the
    folded conv biases have no slamp tensor), matched in registration order; a :class:`ReleaseError`
    names the first tensor whose shape or count does not fit."""
    matched = []
    pairs = dict(CORRESPONDENCE if release.family == "slamp" else SVG_CORRESPONDENCE)
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
            matched.append((f"{public}.{key}", f"{ours}.{name}", value))
    missing = sorted(set(model.state_dict()) - {ours for _, ours, _ in matched})
    if missing:
        raise ReleaseError(f"no public weights for slamp's {missing[:5]}")
    return matched


def weight_names(release: PublicRelease, model: torch.nn.Module) -> dict:
    """``{"<public module>.<key>": "<slamp key>"}`` for every tensor of ``release`` that ``model`` holds."""
    return {public: ours for public, ours, _ in _matched(release, model)}


def mapped_weights(release: PublicRelease, model: torch.nn.Module) -> dict:
    """``model``'s state dict filled from ``release`` (see :func:`weight_names`)."""
    slots = model.state_dict()
    return {ours: value.to(slots[ours].dtype) for _, ours, value in _matched(release, model)}


def svg_model_config(release: PublicRelease):
    """The :class:`slamp.models.ModelConfig` of a public SVG file, from its own options (``opt``):
    backbone, channels, sizes, β and the skip rule (``last_frame_skip``: ``previous``, else ``held``)."""
    from slamp.models import ModelConfig

    opt = release.opt
    backbone = "vgg" if release.modules["encoder"].class_path.startswith("models.vgg_64.") else "dcgan"
    if int(opt.get("image_width", 64)) != 64:
        raise ReleaseError(f"the public SVG model works at {opt.get('image_width')}x{opt.get('image_width')}; "
                           f"slamp's {backbone} backbone at 64x64")
    sizes = {"g_dim": "g_dim", "z_dim": "z_dim", "rnn_size": "rnn_size", "prior_layers": "prior_rnn_layers",
             "posterior_layers": "posterior_rnn_layers", "predictor_layers": "predictor_rnn_layers",
             "channels": "channels"}
    missing = sorted(theirs for theirs in sizes.values() if theirs not in opt)
    if missing:
        raise ReleaseError(f"the public SVG file's options lack {missing}: cannot size the model")
    return ModelConfig(backbone=backbone, beta=float(opt.get("beta", 1e-4)),
                       skips="previous" if opt.get("last_frame_skip") else "held",
                       **{ours: int(opt[theirs]) for ours, theirs in sizes.items()})


def convert_release(release: PublicRelease, dtype: torch.dtype = torch.float32):
    """The slamp model of ``release``, holding its weights, in eval mode, computing in ``dtype`` (the
    weights are cast once, from what the file holds): SLAMP with the paper's preset for its dataset,
    or SVG sized by the public SVG file's own options."""
    from slamp.models import SLAMP, SVG

    model = SLAMP.from_preset(release.dataset) if release.family == "slamp" else SVG(svg_model_config(release))
    model = model.to(dtype)
    model.load_state_dict(mapped_weights(release, model))
    return model.eval()


def release_config(release: PublicRelease):
    """The training config of ``release``: the paper's recipe for its dataset (``TrainConfig.preset``),
    or for an SVG file the public SVG code's (``svg_mnist``, ``svg_bair``) with its clip lengths."""
    from slamp.config import TrainConfig

    if release.family == "slamp":
        return TrainConfig.preset(release.dataset)
    clip = {k: int(release.opt[k]) for k in ("n_past", "n_future") if k in release.opt}
    return TrainConfig.preset(f"svg_{release.dataset}", **clip)


def updates_of(release: PublicRelease) -> int:
    """Updates the release's model had: its saved epoch times the public code's epoch size (1,000)."""
    return int(release.epoch or 0) * int(release.opt.get("epoch_size", 1000))


__all__ = ["UnsafeFileError", "ReleaseError", "ModuleRecord", "PublicRelease",
           "load_restricted", "read_release", "is_release", "folded_state", "CORRESPONDENCE", "SVG_CORRESPONDENCE",
           "weight_names", "mapped_weights", "svg_model_config", "convert_release",
           "release_config", "updates_of"]
