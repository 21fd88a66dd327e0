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


__all__ = ['KITTI_SIZE', 'KITTI_CAMERAS', 'KITTI_SEQ_LEN', 'KITTI_LAYOUT', 'KITTI_DRIVES', 'read_static_ranges', 'kitti_videos', 'KITTI', 'prepare_kitti']
