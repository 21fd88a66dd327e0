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


__all__ = ['KTH_ACTIONS', 'KTH_TRAIN_PERSONS', 'KTH_TEST_PERSONS', 'KTH_SEQ_LEN', 'KTH_LAYOUT', 'kth_videos', 'KTH', 'decode_video', 'prepare_kth']
