"""KTH human actions (Schuldt et al., 2004) at 64x64 grey, as SRVP prepares it (and SLAMP follows):
split by person (1-20 train, 21-25 test), SRVP's 5% validation fold of the training videos, its
training sampling (a video, then a start) and its test set of 1,000 clips of 40 frames."""

import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from slamp.data.files import (
    NPZ_READ_ERRORS,
    DataError,
    MissingDataError,
    ToolMissingError,
    atomic_path,
    check_frames,
    copy_member,
    dataset_root,
    list_images,
    natural_key,
    read_frame,
    to_video_tensor,
    uint8_sha256,
    walk_files,
)
from slamp.data.mnist import fold_indices
from slamp.data.video import Video, VideoClips


KTH_ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
KTH_TRAIN_PERSONS = tuple(range(1, 21))
KTH_TEST_PERSONS = tuple(range(21, 26))
KTH_SEQ_LEN = {"train": 20, "val": 30, "test": 40}  # 10 + 10 for training, 10 -> 20 / 30 for validation / testing
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
    """KTH clips ``(T, 1, 64, 64)`` of persons 1-20 as SRVP splits them: ``split="train"``, SRVP's
    95% fold of their videos (every clip of ``seq_len`` 20; the training stream draws a video
    uniformly, then a start, as SRVP does); ``"val"``, the other 5% (every clip of ``seq_len`` 30).
    ``"test"``: SRVP's 1,000 test clips of 40 frames (:func:`srvp_test_clips`; in the data folder
    the same clips are read from ``svg_test_set_40.npz``, see :class:`KTHTestSet`). ``persons``
    overrides the split's persons (no fold is then taken)."""

    sampling = "video"

    def __init__(self, root=None, split: str = "train", seq_len: int | None = None, persons=None,
                 actions=KTH_ACTIONS, size: int = 64, stride: int | None = 1, num_clips: int | None = None,
                 seed: int = 42, on_short: str = "skip"):
        root = dataset_root("kth", root)
        if split not in KTH_SEQ_LEN:
            raise ValueError(f"split must be 'train', 'val' or 'test', found {split!r}")
        seq_len = seq_len or KTH_SEQ_LEN[split]
        if split == "test" and persons is None:
            videos, clips, _, _ = srvp_test_clips(root, seq_len=seq_len, seed=seed, actions=actions, image_size=size)
            super().__init__(videos, seq_len, (size, size), 1, stride=None, layout=KTH_LAYOUT)
            self.clips = clips  # with replacement, in SRVP's order
            return
        videos = kth_videos(root, persons if persons is not None else KTH_TRAIN_PERSONS, actions, size)
        if persons is None:
            videos = [videos[i] for i in fold_indices(len(videos), split)]
        super().__init__(videos, seq_len, (size, size), 1, stride=stride, num_clips=num_clips, seed=seed,
                         on_short=on_short, layout=KTH_LAYOUT)


def srvp_test_clips(root, size: int = 1000, seq_len: int = 40, seed: int = 42, actions=KTH_ACTIONS,
                    image_size: int = 64):
    """SRVP's KTH test set (its ``make_test_set.py``), drawn the same way: with numpy's legacy
    ``RandomState(seed)``, for each clip an action ``randint(6)``, a person ``randint(21, 26)``, a
    scenario ``randint(1, 5)``, then a start ``randint(n - seq_len + 1)`` in that video of ``n``
    frames; with replacement (a clip may repeat). Returns the videos, the clips ``(video, start)``,
    and each clip's person and action. A drawn video that is missing or too short stops with an
    error naming it (SRVP's script stops there too, and writes nothing)."""
    if tuple(actions) != KTH_ACTIONS:
        raise ValueError("SRVP's test set draws from all six actions; pass actions=KTH_ACTIONS")
    root = Path(root)
    base = root / f"processed_{image_size}" if (root / f"processed_{image_size}").is_dir() else root
    rng = np.random.RandomState(seed)
    videos, index, clips, persons, names = [], {}, [], [], []
    for _ in range(size):
        action = KTH_ACTIONS[rng.randint(len(KTH_ACTIONS))]
        person, scenario = rng.randint(21, 26), rng.randint(1, 5)
        folder = base / action / f"person{person:02d}_{action}_d{scenario}"
        if folder not in index:
            if not folder.is_dir():
                raise MissingDataError(f"SRVP's KTH test set draws {folder.name}, which is not under {base / action}; "
                                       f"the test set needs every video of persons 21-25 (expected {KTH_LAYOUT})")
            index[folder] = len(videos)
            videos.append(Video(str(folder), tuple(list_images(folder))))
        video = videos[index[folder]]
        if len(video.frames) < seq_len:
            raise DataError(f"{folder} has {len(video.frames)} frames, fewer than the {seq_len} of a test clip")
        clips.append((index[folder], int(rng.randint(len(video.frames) - seq_len + 1))))
        persons.append(int(person))
        names.append(action)
    return videos, clips, np.array(persons, dtype=np.int64), np.array(names)


TEST_SET_FILE = "svg_test_set_{seq_len}.npz"  # SRVP's name (after SVG's), in the KTH data folder


class KTHTestSet(Dataset):
    """SRVP's KTH test set in memory: ``sequences`` uint8 ``(N, T, 64, 64)``, with each clip's
    ``persons`` and ``actions``; item ``i`` is ``(T, 1, 64, 64)`` float32 in [0, 1]. The file
    format is SRVP's ``svg_test_set_40.npz`` (keys ``sequences``, ``persons``, ``actions``): a file
    made by SRVP's script is read as is, and :meth:`cached` writes one when there is none."""

    def __init__(self, sequences: np.ndarray, persons: np.ndarray, actions: np.ndarray, source: str = ""):
        self.sequences, self.persons, self.actions, self.source = sequences, persons, actions, source

    @classmethod
    def build(cls, root=None, seq_len: int = 40, size: int = 1000, seed: int = 42) -> "KTHTestSet":
        """Draw SRVP's clips (:func:`srvp_test_clips`) and read their frames."""
        from tqdm.auto import tqdm

        root = dataset_root("kth", root)
        videos, clips, persons, actions = srvp_test_clips(root, size, seq_len, seed)
        frames = np.stack([np.stack([read_frame(f, (64, 64), 1)[..., 0] for f in videos[k].frames[start:start + seq_len]])
                           for k, start in tqdm(clips, desc="KTH test set", unit="clip", leave=False)])
        return cls(frames, persons, actions, f"drawn from {root}")

    @classmethod
    def load(cls, path) -> "KTHTestSet":
        """Read a set in SRVP's format; a ``DataError`` naming the file when it is damaged."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                sequences, persons, actions = data["sequences"], data["persons"], data["actions"]
        except NPZ_READ_ERRORS as err:
            raise DataError(f"cannot read the KTH test set {path} ({err}); expected SRVP's svg_test_set .npz with "
                            f"sequences, persons, actions: delete it to draw it again from the frames") from err
        remake = "delete it to draw it again from the frames (KTHTestSet.cached, or `slamp prepare kth`)"
        check_frames(path, sequences, (None, None, 64, 64), remake=remake)  # SRVP's file records no hash
        if persons.shape != (len(sequences),) or actions.shape != (len(sequences),):
            raise DataError(f"{path}: {len(sequences)} sequences but {persons.shape} persons and {actions.shape} "
                            f"actions; {remake}")
        return cls(sequences, persons, actions, str(path))

    @classmethod
    def cached(cls, root=None, seq_len: int = 40) -> "KTHTestSet":
        """The set in ``<root>/svg_test_set_<seq_len>.npz`` (SRVP's, or one written here), else drawn
        from the frames and written there (when the folder can be written)."""
        root = dataset_root("kth", root)
        path = root / TEST_SET_FILE.format(seq_len=seq_len)
        if path.is_file():
            test_set = cls.load(path)
            check_frames(path, test_set.sequences, (None, seq_len, 64, 64),
                         remake="delete it to draw it again from the frames (`slamp prepare kth`)")  # its clip length
            return test_set
        test_set = cls.build(root, seq_len)
        try:
            test_set.save(path)
        except OSError:  # a read-only data folder: use it without keeping it
            pass
        return test_set

    def save(self, path) -> Path:
        """Write the set as SRVP does (``np.savez_compressed``), atomically."""
        with atomic_path(path) as temporary, open(temporary, "wb") as file:
            np.savez_compressed(file, sequences=self.sequences, persons=self.persons, actions=self.actions)
        return Path(path)

    def sha256(self) -> str:
        """SHA-256 of ``sequences`` (uint8 ``(N, T, H, W)``, C order)."""
        return uint8_sha256(self.sequences)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_video_tensor(self.sequences[index])


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
    files = [path for _, path in walk_files(source)]  # symlinks out of source: a DataError, not skipped
    for path in (p for p in files if p.suffix == ".avi"):
        yield path.name, path
    for archive_path in (p for p in files if p.suffix == ".zip"):
        try:
            archive = zipfile.ZipFile(archive_path)
        except zipfile.BadZipFile as err:
            raise DataError(f"{archive_path} is not a zip archive (truncated or corrupt): download it again") from err
        with archive:
            for name in sorted(n for n in archive.namelist() if n.endswith(".avi")):
                target = scratch / Path(name).name  # the base name only: nothing outside the scratch folder
                copy_member(archive, name, target, MAX_VIDEO_BYTES)  # streamed, never whole in memory
                yield target.name, target
                target.unlink()


MAX_VIDEO_BYTES = 256 << 20  # a KTH .avi is at most a few MB


def prepare_kth(source, output, size: int = 64, decode=decode_video) -> int:
    """Convert KTH's videos (the six official zips, or the extracted ``.avi`` files, anywhere
    below ``source``) to ``output/processed_<size>/<action>/<video>/image-001.png, ...``.
    Videos already converted are skipped; returns the number converted now."""
    source, output = Path(source), Path(output)
    if not source.is_dir():
        what = "is not a folder" if source.exists() else "does not exist"
        raise MissingDataError(f"{source} {what}; expected a folder with KTH's boxing.zip, ... or its .avi files")
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


__all__ = ['KTH_ACTIONS', 'KTH_TRAIN_PERSONS', 'KTH_TEST_PERSONS', 'KTH_SEQ_LEN', 'KTH_LAYOUT', 'kth_videos', 'KTH', 'srvp_test_clips', 'TEST_SET_FILE', 'KTHTestSet', 'decode_video', 'prepare_kth']
