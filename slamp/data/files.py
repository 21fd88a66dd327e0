"""Files on disk: the error every loader raises, atomic writes, and reading frames with PIL."""

import hashlib
import os
import re
import tempfile
import zipfile
import zlib
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


def save_tensors(obj, path) -> None:
    """``torch.save(obj, path)``, with a full disk reported as what it is: torch's zip writer says
    ``unexpected pos ...`` (a ``RuntimeError``) where a plain write says ``OSError(ENOSPC)``."""
    import errno

    try:
        torch.save(obj, path)
    except RuntimeError as error:
        if "unexpected pos" not in str(error) and "write" not in str(error):
            raise  # not a write that failed
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from error


# What reading a damaged .npz (a zip) can raise: a truncated or foreign file, a missing key, and
# flipped bytes inside a compressed member (zlib's own error, not an OSError).
NPZ_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def uint8_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's bytes as uint8 in C order (how test sets and digit sets are pinned)."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).hexdigest()


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


__all__ = ['IMAGE_SUFFIXES', 'DataError', 'MissingDataError', 'ToolMissingError', 'atomic_path', 'save_tensors', 'NPZ_READ_ERRORS', 'uint8_sha256', 'natural_key', 'list_images', 'read_frame', 'to_video_tensor', 'DATA_ENVIRONMENT', 'CLONE_DATA', 'user_cache', 'data_roots', 'data_home', 'find_data', 'searched', 'dataset_root']
