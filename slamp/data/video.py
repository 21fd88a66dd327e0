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

from slamp.data.files import DataError, MissingDataError, atomic_path, inside, read_frame, to_video_tensor, walk_files


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
    Videos shorter than ``seq_len`` are an error (``on_short="error"``) or left out ("skip", named
    in ``skipped``). ``end_margin``: frames after a clip that must exist and not be excluded
    either (the public SLAMP code's KITTI clips: 1, see :class:`slamp.data.KITTI`).

    ``sampling`` says how the training stream draws from them: ``"clip"``, every clip equally
    often (a long video gives more clips), or ``"video"``, a video uniformly and then one of its
    clips uniformly (:meth:`draw`; SRVP's KTH and BAIR training)."""

    sampling = "clip"

    def __init__(self, videos: list[Video], seq_len: int, size: tuple[int, int], channels: int, *,
                 stride: int | None = 1, num_clips: int | None = None, seed: int = 0,
                 on_short: str = "error", layout: str = "", end_margin: int = 0):
        if seq_len < 1 or (stride is not None and stride < 1) or channels not in (1, 3):
            raise ValueError(f"need seq_len >= 1, stride >= 1 or None, channels 1 or 3; found {seq_len}, {stride}, {channels}")
        if on_short not in ("error", "skip"):
            raise ValueError(f"on_short must be 'error' or 'skip', found {on_short!r}")
        self.seq_len, self.size, self.channels, self.layout = seq_len, tuple(size), channels, layout
        self.end_margin = end_margin
        if not videos:
            raise MissingDataError(f"no videos found; expected {layout}")
        short = [v for v in videos if len(v.frames) < seq_len]
        self.skipped = [v.name for v in short] if on_short == "skip" else []
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
        """First frames of the clips of one video that contain no excluded frame (nor do the
        ``end_margin`` frames after them)."""
        excluded = np.zeros(len(video.frames) + 1, dtype=np.int64)
        excluded[[e + 1 for e in video.excluded if 0 <= e < len(video.frames)]] = 1
        seen = np.cumsum(excluded)  # seen[s] = excluded frames before s
        span = self.seq_len + self.end_margin
        starts = np.arange(max(0, len(video.frames) - span + 1))
        usable = starts[seen[starts + span] == seen[starts]].tolist()
        return usable[:1] if stride is None else [s for s in usable if s % stride == 0]

    def __len__(self) -> int:
        return len(self.clips)

    def draw(self, rng: np.random.Generator) -> torch.Tensor:
        """A clip ``(T, C, H, W)`` of a video drawn uniformly, from a start drawn uniformly among
        that video's clips."""
        if not hasattr(self, "_by_video"):
            by_video: dict[int, list[int]] = {}
            for index, (video, _) in enumerate(self.clips):
                by_video.setdefault(video, []).append(index)
            self._by_video = list(by_video.values())
        clips = self._by_video[int(rng.integers(len(self._by_video)))]
        return self[clips[int(rng.integers(len(clips)))]]

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
    interrupted run resumes. Returns the number of frames written.

    Every name read from an archive or a folder walk stays inside ``output`` when written, and
    folder walks follow only symlinks that stay inside their source (``files.inside``,
    ``files.walk_files``): a DataError naming the path otherwise. No matching frame at all is a
    MissingDataError saying what was expected."""
    matcher, written, matched = re.compile(pattern), 0, 0
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)

    def write(relative: str, opener) -> None:
        nonlocal written, matched
        matched += 1
        target = inside(output, relative).with_suffix(".png")
        if target.is_file():
            return
        try:
            with opener() as file, Image.open(file) as image:
                image = image.convert("L" if channels == 1 else "RGB").resize(size[::-1], Image.Resampling.BICUBIC)
        except (OSError, Image.DecompressionBombError) as err:
            raise DataError(f"cannot read {relative} ({err}); re-download the archive it came from") from err
        with atomic_path(target) as temporary:
            image.save(temporary, format="PNG")
        written += 1

    for source in map(Path, sources):
        if not source.exists():
            raise MissingDataError(f"{source} does not exist")
        if source.is_dir():
            for relative, path in walk_files(source):
                if matcher.search(relative):
                    write(relative, lambda path=path: open(path, "rb"))
            continue
        try:
            archive = zipfile.ZipFile(source)
        except zipfile.BadZipFile as err:
            raise DataError(f"{source} is neither a folder nor a zip archive") from err
        with archive:
            for info in archive.infolist():
                if matcher.search(info.filename) and not info.is_dir():
                    if info.file_size > MAX_FRAME_BYTES:
                        raise DataError(f"{source}: member {info.filename} is {info.file_size:,} bytes, not a frame "
                                        f"(at most {MAX_FRAME_BYTES:,}); the archive is not the one expected, or corrupt")
                    write(info.filename, lambda name=info.filename: io.BytesIO(archive.read(name)))
    if not matched:
        raise MissingDataError(f"no frames in {', '.join(map(str, sources))} match the layout expected "
                               f"(relative paths matching {pattern}); nothing was written")
    return written


MAX_FRAME_BYTES = 64 << 20  # a frame's file: 64 MB at most (a KITTI PNG is about 1 MB)


__all__ = ['Video', 'VideoClips', 'split_stride', 'copy_resized_frames']
