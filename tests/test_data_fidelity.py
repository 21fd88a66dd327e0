"""KTH, BAIR and KITTI as the public code prepares them: SRVP's KTH test set reproduced bit for bit
on a synthetic tree, and the public SLAMP code's KITTI clips counted on a tree with the real
drive lengths. The expected values come from running SRVP's ``make_test_set.py`` and SLAMP's
``data/kitti.py`` themselves on the same trees (in a scratch folder, not part of this project)."""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from slamp.data.files import MissingDataError, read_frame
from slamp.data.kitti import KITTI, KITTI_DRIVES, STATIC_RANGES, read_static_ranges
from slamp.data.kth import KTH_ACTIONS, TEST_SET_FILE, KTHTestSet, srvp_test_clips
from slamp.registry import dataset_spec


DATA = Path(__file__).parent / "data"

# ---- KTH: SRVP's test set -------------------------------------------------------------------------------
# SRVP's make_test_set.py (commit 05661fa), run with its defaults (1,000 clips of 40 frames, seed 42)
# on the tree of `synthetic_kth` (written there as RGB PNGs with R = G = B, as ffmpeg writes them):
SRVP_SEQUENCES_SHA256 = "5cbc29655f06cf06ebcad12222d1c63f7f35eb681a8c8700d38e0a12965562d2"
SRVP_PERSONS_SHA256 = "ad013aac98b221d5818429876ffc9a9befb74de9f5b8d58d7306612f1d86d231"  # int64
SRVP_ACTIONS_SHA256 = "dd18662c194c55a26631327d19ebb686b78577da695a483406d03caf1577a283"  # <U12
SRVP_FIRST_DRAWS = [("jogging", 25, 3, 10), ("running", 25, 3, 9), ("handwaving", 23, 3, 7), ("running", 24, 4, 7),
                    ("handwaving", 25, 2, 1), ("walking", 22, 4, 0), ("boxing", 24, 2, 4), ("jogging", 21, 1, 10)]


def synthetic_kth(root: Path) -> Path:
    """The six actions of persons 21-25 in scenarios d1-d4, in SRVP's layout (image-001.png, ...):
    video (action a, person p, scenario d) has 41 + (7p + 3d + 5a) % 19 frames, and pixel (i, j)
    of frame t is (3t + 11p + 17d + 29a + i + 2j) % 256."""
    i, j = np.arange(64)[:, None], np.arange(64)[None, :]
    for a, action in enumerate(KTH_ACTIONS):
        for p in range(21, 26):
            for d in range(1, 5):
                folder = root / "processed_64" / action / f"person{p:02d}_{action}_d{d}"
                folder.mkdir(parents=True)
                for t in range(41 + (7 * p + 3 * d + 5 * a) % 19):
                    frame = ((3 * t + 11 * p + 17 * d + 29 * a + i + 2 * j) % 256).astype(np.uint8)
                    Image.fromarray(frame).save(folder / f"image-{t + 1:03d}.png")
    return root


@pytest.fixture(scope="module")
def kth_root(tmp_path_factory):
    return synthetic_kth(tmp_path_factory.mktemp("kth"))


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def test_the_kth_test_set_is_srvps_bit_for_bit(kth_root):
    videos, clips, persons, actions = srvp_test_clips(kth_root)
    drawn = [(Path(videos[k].name).name, start) for k, start in clips[:len(SRVP_FIRST_DRAWS)]]
    assert drawn == [(f"person{p:02d}_{a}_d{d}", start) for a, p, d, start in SRVP_FIRST_DRAWS]
    test_set = KTHTestSet.build(kth_root)
    assert test_set.sequences.shape == (1000, 40, 64, 64) and test_set.sha256() == SRVP_SEQUENCES_SHA256
    assert sha256(test_set.persons) == SRVP_PERSONS_SHA256 and test_set.actions.dtype == np.dtype("<U12")
    assert sha256(test_set.actions) == SRVP_ACTIONS_SHA256
    assert len(set(clips)) < len(clips)  # drawn with replacement, as SRVP does: some clips repeat


def test_the_kth_test_set_is_kept_in_srvps_file_and_such_a_file_is_read_as_is(kth_root, tmp_path):
    path = kth_root / TEST_SET_FILE.format(seq_len=40)
    path.unlink(missing_ok=True)
    test_set = dataset_spec("kth").clips("test", 40, kth_root)  # what `slamp evaluate` reads
    assert path.is_file() and test_set.sha256() == SRVP_SEQUENCES_SHA256
    with np.load(path) as saved:
        assert sorted(saved.files) == ["actions", "persons", "sequences"] and saved["sequences"].dtype == np.uint8
    assert test_set[0].shape == (40, 1, 64, 64) and torch.equal(test_set[0][:, 0] * 255, torch.from_numpy(
        test_set.sequences[0]).float())
    theirs = np.random.default_rng(0).integers(0, 256, (3, 40, 64, 64), dtype=np.uint8)  # "SRVP's own file"
    np.savez_compressed(tmp_path / "svg_test_set_40.npz", sequences=theirs, persons=np.array([21, 22, 23]),
                        actions=np.array(["boxing", "running", "walking"]))
    os.replace(tmp_path / "svg_test_set_40.npz", path)
    read = KTHTestSet.cached(kth_root)
    assert np.array_equal(read.sequences, theirs) and read.source == str(path)
    path.unlink()


def test_a_kth_test_video_that_srvp_draws_but_is_missing_is_named(kth_root):
    folder = kth_root / "processed_64" / "handclapping" / "person22_handclapping_d3"  # drawn at clip 170
    folder.rename(folder.with_name("moved"))
    try:
        with pytest.raises(MissingDataError, match="draws person22_handclapping_d3, which is not under"):
            KTHTestSet.build(kth_root)
    finally:
        folder.with_name("moved").rename(folder)


def test_srvps_rgb_frames_read_as_the_same_grey_values(tmp_path):
    grey = np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)
    Image.fromarray(grey).convert("RGB").save(tmp_path / "rgb.png")  # what ffmpeg writes for KTH (R = G = B)
    assert np.array_equal(read_frame(tmp_path / "rgb.png", (64, 64), 1)[..., 0], grey)  # = SRVP's channel 0


# ---- KITTI: the public code's clips -------------------------------------------------------------------
@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    """Every drive of both splits with its real length (the public code's data/lengths.txt), each
    frame of a video a hard link to its first, a small PNG: the clip counts depend on the lengths only."""
    root = tmp_path_factory.mktemp("kitti")
    for drive, length in json.loads((DATA / "kitti_public_code_clips.json").read_text())["drive_lengths"].items():
        for camera in ("image_02", "image_03"):
            folder = root / drive[:10] / drive / camera / "data"
            folder.mkdir(parents=True)
            Image.new("RGB", (4, 2)).save(folder / f"{0:010d}.png")
            for t in range(1, length):
                os.link(folder / f"{0:010d}.png", folder / f"{t:010d}.png")
    return root


def test_kitti_clips_are_the_public_codes(kitti_root):
    public = json.loads((DATA / "kitti_public_code_clips.json").read_text())
    assert len(KITTI(kitti_root, "train")) == public["train_count"] == 42_152
    test = KITTI(kitti_root, "test")
    clips = [[Path(test.videos[k].name).parts[-3], Path(test.videos[k].name).parts[-2], start]
             for k, start in test.clips]
    assert len(test) == public["test_count"] == 52 and clips == public["test_clips"]
    assert test[0].shape == (30, 3, 92, 310)
    skipped = {Path(name).parts[-3] for name in test.skipped}
    assert skipped == {"2011_09_26_drive_0048_sync"}  # 22 frames; 0052 has frames but no still-free 31
    assert len(KITTI(kitti_root, "val", seq_len=20)) == public["val_count_seq20"] == 62  # the training drives
    every_window = KITTI(kitti_root, "train", end_margin=0)
    assert len(every_window) == 42_242  # one more start per still-free stretch than the public code
    assert len(KITTI(kitti_root, "train", static_ranges=None)) > 45_000  # the still frames are most of the rest


def test_the_shipped_static_ranges_are_the_public_codes_list():
    ranges = read_static_ranges(STATIC_RANGES)
    assert sum(len(r) for r in ranges.values()) == 232
    assert ranges["2011_09_26_drive_0052_sync"] == [(25, 26), (30, 76)]
    assert all(first <= last for r in ranges.values() for first, last in r)
    assert set(KITTI_DRIVES["test"]) - set(ranges) and "Data from the public SLAMP code" in STATIC_RANGES.read_text()
