"""The saved progress of a long evaluation (``slamp evaluate``): parts that name the exact inputs
they belong to.

The full MNIST protocol takes hours on a CPU, so the scores are saved in parts under
``<out>/.progress/`` and a rerun continues after the last saved one. A saved part is only worth
something for the inputs it was computed from, so every part records them and is used only when
they are the same now:

- the settings of the evaluation (dataset, protocol, samples, seed, ...) and the **content** of
  the model (a SHA-256 of its class and every tensor, not the checkpoint's path: a checkpoint
  replaced at the same path is another model);
- the **content** of the test sequences it scored (a SHA-256 of the clips, as the model sees them:
  a test set remade, cut or damaged since is another test set).

A part whose inputs differ is ignored with a message saying which differ, and computed again;
each part also carries a checksum of its own content (flipped bytes, a truncated file). The
progress is removed only after the results are whole on disk (the caller's job:
:func:`remove_progress` after ``Evaluation.save``). Plain Python (the engine; no notebook teaches it).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from slamp.console import say
from slamp.data.files import atomic_path, save_tensors


PROGRESS = ".progress"


def _say(message: str) -> None:
    say(message, program="slamp evaluate")


def tensor_sha256(*tensors: torch.Tensor) -> str:
    """SHA-256 of tensors' dtypes, shapes and bytes, in order."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's content: its class and every parameter and buffer (names, dtypes,
    shapes, bytes). Two files with the same weights agree; the same path with other weights does not."""
    from slamp.checkpoint import content_sha256

    return content_sha256({"class": type(model).__name__, "state": model.state_dict()})


def sequences_sha256(sequences) -> str:
    """SHA-256 of the clips of a dataset (or ``Subset``) ``sequences``, item by item, as the model
    sees them (``(T, C, H, W)`` float32)."""
    digest = hashlib.sha256()
    for index in range(len(sequences)):
        digest.update(tensor_sha256(torch.as_tensor(sequences[index])).encode())
    return digest.hexdigest()


def settings_sha256(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def _differences(found: dict, wanted: dict) -> str:
    def short(value):
        text = str(value)
        return text[:12] + "..." if len(text) > 24 else text

    keys = sorted(set(found) | set(wanted), key=str)
    return ", ".join(f"{key} ({short(found.get(key))} then, {short(wanted.get(key))} now)"
                     for key in keys if found.get(key) != wanted.get(key))


class SavedProgress:
    """The parts saved in ``<out>/.progress`` for an evaluation with ``settings`` (which include
    ``model_sha256``). Progress saved for other settings is removed, and said so, when it is opened."""

    def __init__(self, out, settings: dict, say=_say):
        self.folder, self.settings, self.say = Path(out) / PROGRESS, dict(settings), say
        self.key = settings_sha256(self.settings)
        recorded = self._recorded()
        if recorded is not None and recorded != self.settings:
            what = _differences(recorded, self.settings) if recorded else "its settings.json is unreadable"
            self.say(f"{self.folder} holds an evaluation of other inputs ({what}); its parts are not used: "
                     f"starting again")
            shutil.rmtree(self.folder)
        with atomic_path(self.folder / "settings.json") as temporary:
            temporary.write_text(json.dumps(self.settings, indent=2) + "\n")

    def _recorded(self) -> dict | None:
        try:
            recorded = json.loads((self.folder / "settings.json").read_text())
        except FileNotFoundError:
            return None if not self.folder.exists() else {}
        except (OSError, ValueError):
            return {}
        return recorded if isinstance(recorded, dict) else {}

    def path(self, number: int) -> Path:
        return self.folder / f"part_{number:05d}.pt"

    def load(self, number: int, sequences_hash: str) -> dict | None:
        """Part ``number`` when it was saved whole for these settings and these test sequences
        (``sequences_hash``: :func:`sequences_sha256` of the part's clips); None otherwise, said so."""
        from slamp.checkpoint import content_sha256

        path = self.path(number)
        if not path.is_file():
            return None
        try:
            saved = torch.load(path, weights_only=True)
            good = isinstance(saved, dict) and saved.pop("checksum", None) == content_sha256(saved)
        except Exception:  # truncated, empty or not a torch file
            good = False
        if not good:
            self.say(f"{path} is damaged (truncated or flipped bytes); computing that part again")
            return None
        inputs = saved.pop("inputs", {})
        wanted = {"settings_sha256": self.key, "sequences_sha256": sequences_hash}
        if inputs != wanted:
            which = [name.replace("_sha256", "") for name in wanted if inputs.get(name) != wanted[name]]
            self.say(f"{path} was computed from other inputs ({' and '.join(which)} differ: "
                     f"{'another model or other settings' if 'settings' in which else 'other test sequences'}); "
                     f"computing that part again")
            return None
        return saved

    def save(self, number: int, content: dict, sequences_hash: str) -> Path:
        """Write part ``number`` (``content``: tensors and plain values) with the inputs it belongs
        to and a checksum, atomically."""
        from slamp.checkpoint import content_sha256

        content = {**content, "inputs": {"settings_sha256": self.key, "sequences_sha256": sequences_hash}}
        with atomic_path(self.path(number)) as temporary:
            save_tensors({**content, "checksum": content_sha256(content)}, temporary)
        return self.path(number)


def remove_progress(out) -> None:
    """Remove ``<out>/.progress``: call only once the results it led to are whole on disk."""
    shutil.rmtree(Path(out) / PROGRESS, ignore_errors=True)


__all__ = ["PROGRESS", "tensor_sha256", "model_sha256", "sequences_sha256", "settings_sha256", "SavedProgress",
           "remove_progress"]
