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


_VERIFIED: dict = {}  # (path, size, mtime, inode) -> SHA-256 already computed in this process


def check_frames(path, frames: np.ndarray, shape: tuple | None = None, sha256=(), remake: str = "") -> None:
    """Check frames read from the file ``path`` before anything uses them: uint8 ``(N, T, H, W)``,
    of ``shape`` where given (``None`` entries: any size), and equal to every SHA-256 in ``sha256``
    (:func:`uint8_sha256`; ``None`` entries skipped: recorded when the file was made, or known
    for a published set). A :class:`DataError` names the file, what differs and ``remake`` (how to
    make it again). A file's hash is computed once per process (keyed by its size, time and inode)."""
    path = Path(path)
    where = f"{path}: " if path else ""
    expected = "uint8 (N, T, H, W)" + (f" of shape {tuple(shape)}" if shape is not None else "")
    if (frames.dtype != np.uint8 or frames.ndim != 4 or frames.size == 0
            or (shape is not None and any(w is not None and w != f for w, f in zip(shape, frames.shape)))):
        raise DataError(f"{where}expected frames {expected}, found {frames.dtype} {frames.shape}: the file was cut, "
                        f"damaged or made for other settings; {remake}")
    wanted = [h for h in sha256 if h]
    if not wanted:
        return
    try:
        info = path.stat()
        key = (str(path.resolve()), info.st_size, info.st_mtime_ns, info.st_ino)
    except OSError:
        key = None
    found = _VERIFIED.get(key) or uint8_sha256(frames)
    if any(found != h for h in wanted):
        raise DataError(f"{where}its frames' SHA-256 is {found[:16]}..., expected {wanted[0][:16]}... (recorded when "
                        f"it was made, or the published set's): the file was changed or damaged; {remake}")
    if key is not None:
        _VERIFIED[key] = found


def inside(root, relative) -> Path:
    """``root / relative`` for a path read from data (an archive member's name, a name found in a
    folder walk), refused with a :class:`DataError` when it would lead outside ``root``: an absolute
    name, a ``..`` part, or a folder on the way that is a symlink out of ``root``. What
    ``tarfile``'s ``data`` filter does for tar members, for every other path slamp writes from data."""
    root, name = Path(root), str(relative).replace("\\", "/")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or (parts and ":" in parts[0]) or ".." in parts or not parts:
        raise DataError(f"refusing {name!r}: a name read from data must be a relative path that stays inside "
                        f"{root} (an absolute name or '..' writes elsewhere: a hostile or broken archive)")
    target = root.joinpath(*parts)
    base = root.resolve()
    if not target.parent.resolve().is_relative_to(base) or (target.is_symlink() and not target.resolve().is_relative_to(base)):
        raise DataError(f"refusing to write {target}: a symlink on the way leads outside {root}; remove it")
    return target


def walk_files(source):
    """``(relative name, path)`` of every regular file below the folder ``source``, in sorted
    order, following a symlink (to a file or a folder) only when it stays inside ``source``; one
    that leads outside is a :class:`DataError` saying which (never skipped in silence)."""
    source = Path(source)
    base = source.resolve()

    def visit(folder: Path):
        for path in sorted(folder.iterdir()):
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(base):
                    raise DataError(f"{path} is a symlink to {target}, outside {source}: slamp reads only what is "
                                    f"inside the folder it is given. Pass a folder that holds the target itself "
                                    f"(e.g. its parent as another --source), or copy it in place of the link")
                if target.is_dir() and any(p.is_relative_to(target) for p in stack):
                    continue  # a link back up the tree: its files are visited once, on their own path
            if path.is_dir():
                stack.append(path.resolve())
                yield from visit(path)
                stack.pop()
            elif path.is_file():
                yield path.relative_to(source).as_posix(), path

    stack = [base]
    yield from visit(source)


MAX_MEMBER_BYTES = 1 << 30  # an archive member or record slamp reads: 1 GiB at most (frames, videos)


def copy_member(archive: zipfile.ZipFile, name: str, target, limit: int = MAX_MEMBER_BYTES) -> Path:
    """Copy the zip member ``name`` to the file ``target`` in chunks (never whole in memory),
    refused with a :class:`DataError` past ``limit`` bytes (what the archive says, or what it gives)."""
    import shutil

    size = archive.getinfo(name).file_size
    if size > limit:
        raise DataError(f"{archive.filename}: member {name} is {size:,} bytes, more than the {limit:,} slamp reads "
                        f"from one member; not the archive slamp expects, or corrupt")
    with archive.open(name) as member, open(target, "wb") as file:
        shutil.copyfileobj(member, file, 1 << 20)
        if file.tell() > limit:
            raise DataError(f"{archive.filename}: member {name} gives more than {limit:,} bytes; corrupt")
    return Path(target)


def remove_unfinished(folder) -> list[Path]:
    """Remove what interrupted writes left below ``folder`` (:func:`atomic_path`'s ``.<name>.<random>.part``
    files, the ``<name>.part`` folders KTH's and BAIR's conversions fill under ``processed_*/`` before
    renaming them) and return them. Call it only while holding the folder's lock (``slamp.runlock``):
    no other process is writing there. Nothing else is touched."""
    import shutil

    removed, folder = [], Path(folder)
    for parent, folders, files in os.walk(folder):
        parts = Path(parent).relative_to(folder).parts
        converted = bool(parts) and parts[0].startswith("processed_")  # KTH's and BAIR's converted frames
        for name in [f for f in folders if converted and f.endswith(".part")]:
            shutil.rmtree(Path(parent, name), ignore_errors=True)
            folders.remove(name)
            removed.append(Path(parent, name))
        for name in (f for f in files if f.startswith(".") and f.endswith(".part")):
            Path(parent, name).unlink(missing_ok=True)
            removed.append(Path(parent, name))
    return removed


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


__all__ = ['IMAGE_SUFFIXES', 'DataError', 'MissingDataError', 'ToolMissingError', 'atomic_path', 'save_tensors', 'NPZ_READ_ERRORS', 'uint8_sha256', 'check_frames', 'inside', 'walk_files', 'MAX_MEMBER_BYTES', 'copy_member', 'remove_unfinished', 'natural_key', 'list_images', 'read_frame', 'to_video_tensor', 'DATA_ENVIRONMENT', 'CLONE_DATA', 'user_cache', 'data_roots', 'data_home', 'find_data', 'searched', 'dataset_root']
