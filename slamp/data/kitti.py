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
    """Frames to leave out, from lines ``<date> <drive> <first> until <last>`` (inclusive; ``#``
    starts a comment line): ``{drive: [(first, last)]}``."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
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


STATIC_RANGES = Path(__file__).with_name("kitti_static_ranges.txt")  # the public SLAMP code's list


class KITTI(VideoClips):
    """KITTI clips ``(T, 3, 92, 310)`` as the public SLAMP code forms them. ``split``: "train" (every
    clip of ``seq_len`` 20 of the 32 training drives), "val" (the training drives again, one clip
    per drive and camera: what the public code validated on), "test" (one clip of ``seq_len`` 30
    per test drive and camera, at its first usable frame) or a list of drive names (every clip).

    As in the public code: frames where the car stands still (``static_ranges``, by default its
    list, shipped as ``kitti_static_ranges.txt``; None keeps every frame) are in no clip; a clip
    also needs the frame after it (``end_margin=1``: the public code's starts stop one short of
    every window that fits); drives shorter than a clip are left out (test drive 0048 has 22
    frames), as are drives whose still-free stretches are all too short (0052)."""

    def __init__(self, root=None, split="train", seq_len: int | None = None, size=KITTI_SIZE, cameras=KITTI_CAMERAS,
                 stride: int | None | str = "auto", static_ranges=STATIC_RANGES, on_short: str = "skip",
                 end_margin: int = 1):
        root = dataset_root("kitti", root)
        if isinstance(split, str) and split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val', 'test' or a list of drive names, found {split!r}")
        drives = KITTI_DRIVES["test" if split == "test" else "train"] if isinstance(split, str) else tuple(split)
        one_clip = split in ("val", "test")
        super().__init__(kitti_videos(root, drives, cameras, static_ranges),
                         seq_len or KITTI_SEQ_LEN["test" if split == "test" else "train"], size, 3,
                         stride=split_stride(stride, not one_clip), on_short=on_short, layout=KITTI_LAYOUT,
                         end_margin=end_margin)


def prepare_kitti(sources, output, size=KITTI_SIZE, cameras=KITTI_CAMERAS) -> int:
    """Copy the colour frames of KITTI raw drives (their zips, or unzipped folders) to ``output`` in
    the same layout, resized to ``size``; returns the number of frames written."""
    pattern = r"(^|/)\d{4}_\d\d_\d\d_drive_\d{4}_sync/(" + "|".join(cameras) + r")/data/\d+\.png$"
    return copy_resized_frames(sources, output, size, pattern)


__all__ = ['KITTI_SIZE', 'KITTI_CAMERAS', 'KITTI_SEQ_LEN', 'KITTI_LAYOUT', 'KITTI_DRIVES', 'read_static_ranges', 'kitti_videos', 'STATIC_RANGES', 'KITTI', 'prepare_kitti']
