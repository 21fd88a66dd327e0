"""One command per folder: an exclusive lock on the folder a command writes (a training run's,
an evaluation's, a prepared dataset's).

Two ``slamp train`` with the same ``--out`` would interleave their logs and overwrite each other's
checkpoints; two ``slamp evaluate`` would absorb each other's saved parts; two ``slamp prepare``
would write the same frames. The first takes ``<out>/.lock`` (an OS lock, ``fcntl.flock``, held
for as long as the process lives) and writes its PID, host, command and start time into it; a
second is refused with a message naming the holder. The OS releases the lock when a process dies,
however it dies, so a lock left by a killed run is recognised (the file names a process that no
longer holds it): the new run says whose lock it takes over, and continues.

The lock file is opened without following a symlink (``O_NOFOLLOW``) and must be a regular file
of this user: in a shared folder anyone could plant ``.lock`` -> ``~/notes``, and truncating the
lock would empty the notes. Plain Python (the engine; no notebook teaches it).
"""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path


LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another process is writing into the same folder (training, evaluating, preparing); the
    message names it."""


class RunFolderError(RuntimeError):
    """The run folder cannot be written (permissions, a full disk); the message names the folder."""


def folder_error(folder, error: OSError, writing: str = "", kind: str = "run folder", option: str = "--out",
                 kept: str = "Nothing half-written was left") -> RunFolderError:
    """A :class:`RunFolderError` for ``error`` met while writing in ``folder`` (a ``kind``: the run
    folder, the evaluation folder, the data folder), with the free space on its disk; ``kept``
    says what stays (an evaluation: its saved progress)."""
    import shutil

    folder = Path(folder)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    try:
        free = f"{shutil.disk_usage(probe).free / 1e6:,.0f} MB free on its disk"
    except OSError:
        free = "free space unknown"
    what = f" ({writing})" if writing else ""
    return RunFolderError(f"cannot write in the {kind} {folder}{what}: {error.strerror or error}; {free}. "
                          f"{kept}; free some space or choose another {option}")


@contextmanager
def writing_in(folder, writing: str = "", kind: str = "run folder", kept: str = "Nothing half-written was left"):
    """``with writing_in(folder, "summary.json"): ...``: an ``OSError`` in the block (a full disk,
    no permission) becomes the :class:`RunFolderError` of :func:`folder_error`."""
    try:
        yield
    except OSError as error:
        raise folder_error(folder, error, writing, kind=kind, kept=kept) from None


def check_writable(folder, kind: str = "run folder", option: str = "--out") -> Path:
    """Check, before any work whose result would go to ``folder``, that it can be made and written:
    a :class:`RunFolderError` naming the folder and its free space when not. Leaves no trace: a
    small file is written and removed, and the folders made for it are removed again."""
    import tempfile

    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"slamp checks that this folder can be written\n" * 16)
            probe.flush()
            os.fsync(probe.fileno())  # a full disk may only say so when the data reaches it
    except OSError as error:
        raise folder_error(folder, error, kind=kind, option=option) from None
    finally:
        for made in missing:  # innermost first
            try:
                made.rmdir()
            except OSError:
                break
    return folder


WHAT = {"train": "training run", "evaluate": "evaluation", "prepare": "preparation of a dataset"}


class RunLock:
    """``with RunLock(folder): ...`` holds the folder's lock for the block (or call ``acquire()``
    and ``release()``). ``previous`` is what the file said before, when a dead run left it.
    ``command`` (train, evaluate, prepare) is recorded for the message a second command gets;
    ``kind`` names the folder in messages (run folder, evaluation folder, data folder)."""

    def __init__(self, folder, say=print, command: str = "train", kind: str = "run folder"):
        self.path, self.say, self.previous, self._file = Path(folder) / LOCK_NAME, say, None, None
        self.command, self.kind = command, kind

    def acquire(self) -> "RunLock":
        import fcntl

        try:  # before anything is built: an unwritable folder fails here, with its name
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open_regular_file(self.path)
        except UnsafePathError:
            raise  # a planted symlink: said as it is, nothing written through it
        except OSError as error:
            raise folder_error(self.path.parent, error, "taking its lock", kind=self.kind) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            found = _read_holder(handle)
            handle.close()
            what = WHAT.get(found.get("command", "train"), "slamp command")
            raise RunLockedError(f"{self.path.parent} is in use by another {what} ({_describe(found)}); wait for it "
                                 f"to finish, stop it, or choose another output folder (--out)") from None
        self.previous = _read(handle)
        if self.previous:  # the file outlived its process: that run was killed
            self.say(f"taking over the lock of a run that did not finish ({_describe(self.previous)}): "
                     f"its process no longer holds {self.path}")
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n"
        try:  # unbuffered: on a full disk the write fails here, not again when the file is closed
            os.ftruncate(handle.fileno(), 0)
            os.lseek(handle.fileno(), 0, os.SEEK_SET)
            os.write(handle.fileno(), holder.encode())
        except OSError as error:  # a full disk: not even the lock's few bytes fit
            handle.close()
            raise folder_error(self.path.parent, error, "taking its lock", kind=self.kind) from None
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()  # an empty file: nobody holds it, nobody died holding it
            self._file.close()
            self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class UnsafePathError(OSError):
    """A path slamp writes is a symlink or not a regular file (planted, or a mistake): refused."""


def open_regular_file(path):
    """``path`` opened for reading and writing (made when missing, never truncated) without
    following a symlink, and refused (:class:`UnsafePathError`) when it is a symlink, not a
    regular file, or a file with several names (a hard link planted to another file)."""
    import stat

    path = Path(path)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as error:
        if path.is_symlink():  # O_NOFOLLOW: ELOOP
            raise UnsafePathError(f"refusing to use {path}: it is a symlink (to {os.readlink(path)}), not a file "
                                  f"slamp made; remove it (`rm {path}`) and run again") from None
        if path.exists() and not path.is_file():  # a folder (EISDIR)
            raise UnsafePathError(f"refusing to use {path}: it is not a regular file; remove it and run again") from None
        raise error
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(descriptor)
        what = "a hard link to another file" if stat.S_ISREG(info.st_mode) else "not a regular file"
        raise UnsafePathError(f"refusing to use {path}: it is {what}, not a file slamp made; remove it "
                              f"(`rm {path}`) and run again")
    return os.fdopen(descriptor, "r+")


RUN_MARKER = ".slamp-run"  # written at the start of a run: what says a folder's run files are slamp's


def mark_run_folder(folder, command: str = "train") -> Path:
    """Write ``<folder>/.slamp-run`` (once): the folder holds a slamp run, so ``--overwrite`` may
    remove the files such a run writes there, and nothing else."""
    path = Path(folder) / RUN_MARKER
    if not path.is_file():
        from slamp.data.files import atomic_path

        with writing_in(folder, RUN_MARKER), atomic_path(path) as temporary:
            temporary.write_text(json.dumps({"written_by": f"slamp {command}",
                                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
    return path


def holds_a_slamp_run(folder) -> bool:
    """Whether ``folder`` holds a run slamp wrote: its marker, or (a run from before markers) a
    ``last.pt`` beside the ``config.json`` of a slamp training config."""
    folder = Path(folder)
    if (folder / RUN_MARKER).is_file():
        return True
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "model_preset" in config and (folder / "last.pt").is_file()


def _read(handle) -> dict:
    handle.seek(0)
    text = handle.read().strip()
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {"unreadable": text[:80]}


def _read_holder(handle, patience: float = 2.0) -> dict:
    """What the holder of the lock wrote into it. A holder writes its details just after it takes
    the lock, so a command started at the same moment can find the file empty or half-written:
    it reads again for up to ``patience`` seconds before saying that nothing was recorded."""
    deadline = time.monotonic() + patience
    found = _read(handle)
    while (not found or "unreadable" in found) and time.monotonic() < deadline:
        time.sleep(0.02)
        found = _read(handle)
    return found


def _describe(holder: dict) -> str:
    if not holder:
        return "no details recorded"
    if "unreadable" in holder:
        return f"lock file reads {holder['unreadable']!r}"
    return f"PID {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"


__all__ = ["LOCK_NAME", "RunLockedError", "RunFolderError", "UnsafePathError", "folder_error", "writing_in",
           "check_writable", "RunLock", "open_regular_file", "RUN_MARKER", "mark_run_folder", "holds_a_slamp_run"]
