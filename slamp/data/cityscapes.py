"""Cityscapes (Cordts et al., 2016) video snippets at 128x256 RGB."""

import re
from pathlib import Path

from slamp.data.files import MissingDataError, dataset_root, natural_key
from slamp.data.video import Video, VideoClips, copy_resized_frames, split_stride


CITYSCAPES_SIZE = (128, 256)
SNIPPET_LENGTH = 30
CITYSCAPES_SEQ_LEN = {"train": 20, "test": 30}  # 10 + 10 for training, 10 -> 20 for testing
TEST_SNIPPETS_PER_CITY = 20
CITYSCAPES_LAYOUT = ("<root>/leftImg8bit_sequence/{train,val,test}/<city>/<city>_<6-digit sequence>_"
                     "<6-digit frame>_leftImg8bit.png")
_FRAME_NAME = re.compile(r"(?P<city>.+)_(?P<sequence>\d{6})_(?P<frame>\d{6})_leftImg8bit\.(png|jpg)")


def _runs(numbered: list[tuple[int, Path]]) -> list[list[Path]]:
    """Split sorted (frame number, file) pairs into runs of consecutive frame numbers."""
    runs: list[list[Path]] = []
    for k, (number, path) in enumerate(numbered):
        if k and number == numbered[k - 1][0] + 1:
            runs[-1].append(path)
        else:
            runs.append([path])
    return runs


def cityscapes_snippets(root, split: str, snippet_length: int = SNIPPET_LENGTH,
                        snippets_per_city: int | None = None) -> list[Video]:
    """The snippets of ``split``: per city, per sequence number, runs of consecutive frames cut
    into pieces of ``snippet_length`` (the last piece of a run is short if frames are missing)."""
    root = Path(root)
    base = root / "leftImg8bit_sequence" if (root / "leftImg8bit_sequence").is_dir() else root
    folder = base / split
    if not folder.is_dir():
        raise MissingDataError(f"{folder} does not exist; expected {CITYSCAPES_LAYOUT}")
    videos = []
    for city in sorted((c for c in folder.iterdir() if c.is_dir()), key=natural_key):
        sequences: dict[str, list[tuple[int, Path]]] = {}
        for path in city.iterdir():
            match = _FRAME_NAME.fullmatch(path.name)
            if match:
                sequences.setdefault(match["sequence"], []).append((int(match["frame"]), path))
        snippets = []
        for sequence in sorted(sequences):
            for run in _runs(sorted(sequences[sequence])):
                snippets += [run[i:i + snippet_length] for i in range(0, len(run), snippet_length)]
        for snippet in snippets[:snippets_per_city]:
            videos.append(Video(f"{city}/{snippet[0].name} ({len(snippet)} frames)", tuple(snippet)))
    if not videos:
        raise MissingDataError(f"no *_leftImg8bit.png frames under {folder}; expected {CITYSCAPES_LAYOUT}")
    return videos


class Cityscapes(VideoClips):
    """Cityscapes clips ``(T, 3, 128, 256)``: "train" every clip of ``seq_len`` (default 20) of every
    snippet; "test" (or "val") one clip of ``seq_len`` (default 30) from the start of the first
    ``snippets_per_city`` (default 20) snippets of each city."""

    def __init__(self, root=None, split: str = "train", seq_len: int | None = None, size=CITYSCAPES_SIZE,
                 stride: int | None | str = "auto", snippets_per_city: int | None = None, on_short: str = "error"):
        root = dataset_root("cityscapes", root)
        train = split == "train"
        per_city = snippets_per_city if snippets_per_city is not None or train else TEST_SNIPPETS_PER_CITY
        seq_len = seq_len or CITYSCAPES_SEQ_LEN["train" if train else "test"]
        if seq_len > SNIPPET_LENGTH:
            raise ValueError(f"Cityscapes snippets have {SNIPPET_LENGTH} frames; seq_len {seq_len} is too long")
        super().__init__(cityscapes_snippets(root, split, SNIPPET_LENGTH, per_city), seq_len, size, 3,
                         stride=split_stride(stride, train), on_short=on_short, layout=CITYSCAPES_LAYOUT)


def prepare_cityscapes(sources, output, size=CITYSCAPES_SIZE) -> int:
    """Copy Cityscapes sequence frames (from ``leftImg8bit_sequence_trainvaltest.zip`` or its
    unzipped folder) to ``output`` in the same layout, resized to ``size``; returns frames written."""
    return copy_resized_frames(sources, output, size, r"(^|/)leftImg8bit_sequence/(train|val|test)/[^/]+/[^/]+_leftImg8bit\.png$")


__all__ = ['CITYSCAPES_SIZE', 'SNIPPET_LENGTH', 'CITYSCAPES_SEQ_LEN', 'TEST_SNIPPETS_PER_CITY', 'CITYSCAPES_LAYOUT', 'cityscapes_snippets', 'Cityscapes', 'prepare_cityscapes']
