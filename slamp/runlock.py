"""One run per folder: an exclusive lock on a training run's output folder.

Two ``slamp train`` with the same ``--out`` would interleave their logs and overwrite each other's
checkpoints. The first takes ``<out>/.lock`` (an OS lock, ``fcntl.flock``, held for as long as the
process lives) and writes its PID, host and start time into it; a second is refused with a message
naming the holder. The OS releases the lock when a process dies, however it dies, so a lock left
by a killed run is recognised (the file names a process that no longer holds it): the new run
says whose lock it takes over, and continues. Plain Python (the engine; no notebook teaches it).
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
    """Another process is training into the same folder; the message names it."""


class RunFolderError(RuntimeError):
    """The run folder cannot be written (permissions, a full disk); the message names the folder."""


def folder_error(folder, error: OSError, writing: str = "", kind: str = "run folder", option: str = "--out"
                 ) -> RunFolderError:
    """A :class:`RunFolderError` for ``error`` met while writing in ``folder`` (a ``kind``: the run
    folder, the evaluation folder, the data folder), with the free space on its disk."""
    import shutil

    folder = Path(folder)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    try:
        free = f"{shutil.disk_usage(probe).free / 1e6:,.0f} MB free on its disk"
    except OSError:
        free = "free space unknown"
    what = f" ({writing})" if writing else ""
    return RunFolderError(f"cannot write in the {kind} {folder}{what}: {error.strerror or error}; {free}. "
                          f"Nothing half-written was left; free some space or choose another {option}")


@contextmanager
def writing_in(folder, writing: str = "", kind: str = "run folder"):
    """``with writing_in(folder, "summary.json"): ...``: an ``OSError`` in the block (a full disk,
    no permission) becomes the :class:`RunFolderError` of :func:`folder_error`."""
    try:
        yield
    except OSError as error:
        raise folder_error(folder, error, writing, kind=kind) from None


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


class RunLock:
    """``with RunLock(folder): ...`` holds the folder's lock for the block (or call ``acquire()``
    and ``release()``). ``previous`` is what the file said before, when a dead run left it."""

    def __init__(self, folder, say=print):
        self.path, self.say, self.previous, self._file = Path(folder) / LOCK_NAME, say, None, None

    def acquire(self) -> "RunLock":
        import fcntl

        try:  # before anything is built: an unwritable folder fails here, with its name
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")
        except OSError as error:
            raise folder_error(self.path.parent, error, "taking its lock") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _describe(_read(handle))
            handle.close()
            raise RunLockedError(f"{self.path.parent} is in use by another training run ({holder}); wait for it to "
                                 f"finish, stop it, or choose another output folder (--out)") from None
        self.previous = _read(handle)
        if self.previous:  # the file outlived its process: that run was killed
            self.say(f"taking over the lock of a run that did not finish ({_describe(self.previous)}): "
                     f"its process no longer holds {self.path}")
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n"
        try:  # unbuffered: on a full disk the write fails here, not again when the file is closed
            os.ftruncate(handle.fileno(), 0)
            os.write(handle.fileno(), holder.encode())
        except OSError as error:  # a full disk: not even the lock's few bytes fit
            handle.close()
            raise folder_error(self.path.parent, error, "taking its lock") from None
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


def _read(handle) -> dict:
    handle.seek(0)
    text = handle.read().strip()
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {"unreadable": text[:80]}


def _describe(holder: dict) -> str:
    if not holder:
        return "no details recorded"
    if "unreadable" in holder:
        return f"lock file reads {holder['unreadable']!r}"
    return f"PID {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"


__all__ = ["LOCK_NAME", "RunLockedError", "RunFolderError", "folder_error", "writing_in", "check_writable", "RunLock"]
