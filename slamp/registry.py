"""The datasets slamp knows, each described once: ``DATASETS[name]`` is a :class:`DatasetSpec`.

A spec says what a dataset's frames look like, which clips training reads and which protocol
testing follows, which model preset is sized for it, the paper's training recipe, and how to load
its clips. Training (``slamp.config``, ``slamp.data.stream``), evaluation (``slamp evaluate``) and
the command line read the spec; nothing else keeps a table of datasets. Adding a dataset is a
loader and one :func:`register_dataset` call (``docs/contributing.md`` shows both). The models have
theirs in ``slamp.model_registry``.

Plain Python, taught by no notebook: 05 shows the recipes, 02 and ``data/README.md`` the data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: everything training, evaluation and the command line need to know.

    ``clips(split, n_frames, root=None, seed=0, digits=None, count=None)`` returns a dataset of
    clips ``(n_frames, C, H, W)`` float32 in [0, 1] for ``split`` in ``train`` (the training
    stream's source: clips, or a generator with ``set_epoch`` and ``sample``), ``val`` (held out
    for choosing the best model; ``count`` asks for that many when they are generated) or
    ``test``. ``root`` is the prepared dataset's folder (None: searched in the data folders)."""

    name: str
    channels: int
    frame_size: tuple[int, int]  # (H, W)
    train_clip: tuple[int, int]  # (n_past, n_future) of a training clip
    test_protocol: tuple[int, int]  # (n_past, n_future) at test time
    model_preset: str  # the slamp.models.PRESETS entry sized for it
    clips: Callable = field(repr=False)
    recipe: dict = field(default_factory=dict)  # TrainConfig fields of the paper's training recipe
    source: str = ""  # where the numbers come from

    @property
    def frames(self) -> tuple[int, tuple[int, int]]:
        """``(channels, (H, W))``, as ``ModelConfig`` says it of the frames a model makes."""
        return self.channels, tuple(self.frame_size)


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, model=None) -> DatasetSpec:
    """Make ``spec`` known by its name. ``model``: a ``ModelConfig`` to enter in
    ``slamp.models.PRESETS`` as ``spec.model_preset`` (for a dataset whose frames no preset makes)."""
    from slamp.models import PRESETS

    known = DATASETS.get(spec.name)
    # The same loader (by name) replaces its entry: a notebook cell run again defines it anew.
    if known is not None and getattr(known.clips, "__name__", None) != getattr(spec.clips, "__name__", None):
        raise ValueError(f"a dataset named {spec.name!r} is already registered")
    if model is not None:
        if spec.model_preset in PRESETS and PRESETS[spec.model_preset] != model:
            raise ValueError(f"model preset {spec.model_preset!r} exists and differs from the one given")
        PRESETS[spec.model_preset] = model
    if spec.model_preset not in PRESETS:
        raise ValueError(f"dataset {spec.name!r} names model preset {spec.model_preset!r}, which does not exist; "
                         f"pass model=ModelConfig(...)")
    DATASETS[spec.name] = spec
    return spec


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; a ``ValueError`` naming the known ones otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[name]


# ---- the paper's datasets ------------------------------------------------------------------------

def _moving_mnist_clips(split: str, n_frames: int, root=None, seed: int = 0, digits=None, count=None):
    """Stochastic Moving MNIST (02): a seeded endless stream for training, fresh trajectories of
    SRVP's 5% validation fold of the training digits for validation (seed 2021), SRVP's test set."""
    from slamp.data import MovingMNISTTestSet, StochasticMovingMNIST, load_digits
    from slamp.data.mnist import mnist_fold

    if split == "train":
        return StochasticMovingMNIST(mnist_fold(load_digits("train", digits), "train"), n_frames=n_frames, seed=seed)
    if split == "val":
        return MovingMNISTTestSet.generate(mnist_fold(load_digits("train", digits), "val"), num_sequences=count or 256,
                                           n_frames=n_frames, seed=VALIDATION_SEED, protocol="per-sequence")
    if split == "test":
        # SRVP's 5,000-sequence test set (the paper's), made once and kept in the data folder's mnist/;
        # more than 25 frames makes another set by the same recipe, not a longer version of it.
        return MovingMNISTTestSet.cached(n_frames=max(25, n_frames))
    raise ValueError(f"split must be train, val or test, found {split!r}")


VALIDATION_SEED = 2021  # Moving MNIST validation trajectories: unlike the test set's (seed 42)


def real_dataset_clips(name: str, loader: Callable, validation: str = "val") -> Callable:
    """``clips`` for a dataset read from disk by ``loader(root, split, seq_len=...)``; validation
    reads the loader's ``validation`` split (KTH, BAIR: SRVP's 5% fold of the training videos;
    KITTI: the training drives, and Cityscapes: the test split, what the public code validated on)."""

    def clips(split: str, n_frames: int, root=None, seed: int = 0, digits=None, count=None):
        from slamp.data.files import dataset_root

        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, found {split!r}")
        folder = dataset_root(name, None if root is None else Path(root))
        return loader(folder, validation if split == "val" else split, seq_len=n_frames)

    clips.__doc__ = f"Clips of {name} from its prepared folder (see data/README.md)."
    return clips


def _real(name: str, class_name: str, validation: str = "val") -> Callable:
    """The loader class ``slamp.data.<class_name>``, imported when first used."""

    def loader(root, split, seq_len):
        import slamp.data

        return getattr(slamp.data, class_name)(root, split, seq_len=seq_len)

    return real_dataset_clips(name, loader, validation)


def _kth(root, split, seq_len):
    """KTH's clips; its test split is SRVP's test set, read from (or written to) svg_test_set_40.npz."""
    from slamp.data.kth import KTH, KTHTestSet

    return KTHTestSet.cached(root, seq_len) if split == "test" else KTH(root, split, seq_len=seq_len)


_PAPER = "the paper (Sec. 4, App. C.3) and the public code's README"
# KITTI and Cityscapes: trained until 2.4 M video samples have been seen, at lr 1e-4 (App. C.3):
# 300,000 updates of 8 clips, 343,000 of 7.
for _spec in (
    DatasetSpec("mnist", 1, (64, 64), (5, 10), (5, 20), "mnist", _moving_mnist_clips,
                {"batch_size": 32, "lr": 3e-4}, _PAPER),
    DatasetSpec("kth", 1, (64, 64), (10, 10), (10, 30), "kth", real_dataset_clips("kth", _kth),
                {"batch_size": 20, "lr": 1e-4, "scheduled_sampling_k": 25.0}, _PAPER),
    DatasetSpec("bair", 3, (64, 64), (2, 10), (2, 28), "bair", _real("bair", "BAIR"),
                {"batch_size": 20, "lr": 1e-4, "scheduled_sampling_k": 25.0}, _PAPER),
    DatasetSpec("kitti", 3, (92, 310), (10, 10), (10, 20), "kitti", _real("kitti", "KITTI"),
                {"batch_size": 8, "lr": 1e-4, "epochs": 300}, _PAPER),
    DatasetSpec("cityscapes", 3, (128, 256), (10, 10), (10, 20), "cityscapes", _real("cityscapes", "Cityscapes", "test"),
                {"batch_size": 7, "lr": 1e-4, "epochs": 343}, _PAPER),
):
    DATASETS[_spec.name] = _spec  # their presets are slamp.models.PRESETS' own (tests/test_registry.py)
del _spec


__all__ = ["DatasetSpec", "DATASETS", "register_dataset", "dataset_spec", "real_dataset_clips", "VALIDATION_SEED"]
