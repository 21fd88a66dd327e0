"""slamp.data.video, .kth, .bair, .kitti, .cityscapes: clips cut from the on-disk layouts of the
real datasets (notebook 02_data). Every fixture is a few tiny files in the real layout and format."""
import struct
import sys
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from slamp.data import kth as kth_module
from slamp.data.bair import (
    BAIR,
    bair_frames,
    crc32c,
    encode_example,
    parse_example,
    prepare_bair,
    read_tfrecords,
    write_tfrecords,
)
from slamp.data.cityscapes import Cityscapes, prepare_cityscapes
from slamp.data.files import DataError, MissingDataError, ToolMissingError, list_images, natural_key
from slamp.data.kitti import KITTI, KITTI_DRIVES, prepare_kitti
from slamp.data.kth import KTH, decode_video, prepare_kth
from slamp.data.video import Video, VideoClips


TRAIN_DRIVE, TEST_DRIVE = KITTI_DRIVES["train"][0], KITTI_DRIVES["test"][0]  # both 2011_09_26


def frames(n, height=8, width=8, channels=1, seed=0):
    """Distinct random frames (T, H, W, C) uint8."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, height, width, channels), dtype=np.uint8)


def write_video(folder, video, name="{:03d}.png", start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(video, start=start):
        Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(folder / name.format(t))
    return folder


def as_clip(video):
    return torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255


# ---------------------------------------------------------------- the shared clip dataset

def make_videos(tmp_path, lengths=(10, 7)):
    videos, arrays = [], []
    for k, n in enumerate(lengths):
        array = frames(n, seed=k)
        folder = write_video(tmp_path / f"v{k}", array, name="frame-{}.png")  # natural order: 2 before 10
        videos.append(Video(str(folder), tuple(sorted(folder.iterdir(), key=natural_key))))
        arrays.append(array)
    return videos, arrays


def test_clips_cover_every_start_and_return_frames_in_0_1(tmp_path):
    videos, arrays = make_videos(tmp_path)
    clips = VideoClips(videos, 4, (8, 8), 1)
    assert len(clips) == (10 - 4 + 1) + (7 - 4 + 1)
    clip = clips[2]
    assert clip.dtype == torch.float32 and clip.shape == (4, 1, 8, 8)
    assert torch.equal(clip, as_clip(arrays[0][2:6]))  # frame-10 sorts after frame-9
    assert torch.equal(clips[len(clips) - 1], as_clip(arrays[1][3:7]))
    assert len(VideoClips(videos, 4, (8, 8), 1, stride=3)) == 3 + 2  # starts 0, 3, 6 and 0, 3
    firsts = VideoClips(videos, 4, (8, 8), 1, stride=None)
    assert firsts.clips == [(0, 0), (1, 0)]
    resized = VideoClips(videos, 2, (16, 12), 3)[0]
    assert resized.shape == (2, 3, 16, 12)


def test_a_fixed_subset_of_clips_depends_only_on_the_seed(tmp_path):
    videos, _ = make_videos(tmp_path)
    a = VideoClips(videos, 3, (8, 8), 1, num_clips=5, seed=1).clips
    assert len(a) == 5 and a == VideoClips(videos, 3, (8, 8), 1, num_clips=5, seed=1).clips
    assert a != VideoClips(videos, 3, (8, 8), 1, num_clips=5, seed=2).clips
    assert len(VideoClips(videos, 3, (8, 8), 1, num_clips=100).clips) == 8 + 5


def test_excluded_frames_never_appear_in_a_clip(tmp_path):
    videos, _ = make_videos(tmp_path, lengths=(10,))
    video = Video(videos[0].name, videos[0].frames, frozenset({3, 4}))
    assert [s for _, s in VideoClips([video], 3, (8, 8), 1).clips] == [0, 5, 6, 7]
    assert VideoClips([video], 3, (8, 8), 1, stride=None).clips == [(0, 0)]
    blocked = Video(video.name, video.frames, frozenset(range(0, 10, 2)))
    with pytest.raises(DataError, match="no clip of 3 frames avoids"):
        VideoClips([blocked], 3, (8, 8), 1)


def test_short_videos_are_named_or_skipped(tmp_path):
    videos, _ = make_videos(tmp_path)
    with pytest.raises(DataError, match=r"v1 has 7 frames, fewer than the 8 requested.*on_short='skip'"):
        VideoClips(videos, 8, (8, 8), 1, layout="<layout>")
    assert len(VideoClips(videos, 8, (8, 8), 1, on_short="skip")) == 3
    with pytest.raises(DataError, match="all 2 videos are shorter"):
        VideoClips(videos, 11, (8, 8), 1, on_short="skip")
    with pytest.raises(MissingDataError, match="no videos found; expected <layout>"):
        VideoClips([], 4, (8, 8), 1, layout="<layout>")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "deleted", "flipped", "empty"])
def test_a_corrupt_or_vanished_frame_is_named_when_read(tmp_path, damage):
    videos, _ = make_videos(tmp_path, lengths=(6,))
    bad = videos[0].frames[2]
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:60])
    elif damage == "garbage":
        bad.write_bytes(b"this is not an image")
    elif damage == "flipped":  # one bit of the pixel data: PNG's per-chunk CRC finds it
        data = bytearray(bad.read_bytes())
        data[data.index(b"IDAT") + 12] ^= 0x10
        bad.write_bytes(bytes(data))
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        bad.unlink()
    clips = VideoClips(videos, 3, (8, 8), 1)
    clips[3]  # frames 3-5 are fine
    with pytest.raises(DataError, match=str(bad)):
        clips[0]


def test_a_dataloader_with_two_workers_batches_clips(tmp_path):
    videos, _ = make_videos(tmp_path)
    clips = VideoClips(videos, 4, (8, 8), 1)

    def shuffled():
        loader = DataLoader(clips, batch_size=4, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0))
        return torch.cat(list(loader))

    loaded = shuffled()
    assert loaded.shape == (len(clips), 4, 1, 8, 8)
    every = torch.stack([clips[i] for i in range(len(clips))])
    matches = (loaded.flatten(1)[:, None] == every.flatten(1)[None]).all(-1)
    assert (matches.sum(0) == 1).all() and (matches.sum(1) == 1).all()  # each clip exactly once
    assert not torch.equal(loaded, every) and torch.equal(loaded, shuffled())  # shuffled, reproducibly


# ---------------------------------------------------------------- KTH

def make_kth(root, persons=(1, 2, 21), actions=("walking", "boxing"), n=12):
    arrays = {}
    for action in actions:
        for person in persons:
            name = f"person{person:02d}_{action}_d1"
            arrays[name] = frames(n, 64, 64, seed=person)
            write_video(root / "processed_64" / action / name, arrays[name], name="image-{:03d}.png", start=1)
    return arrays


def test_kth_splits_by_person_and_srvp_fold_and_reads_grey_64x64(tmp_path):
    arrays = make_kth(tmp_path)
    train = KTH(tmp_path, "train", seq_len=10, actions=("walking", "boxing"))
    val = KTH(tmp_path, "val", seq_len=10, actions=("walking", "boxing"))
    # 4 videos of persons 1-2: SRVP's fold keeps int(0.95 * 4) = 3 for training, 1 for validation
    assert len(train.videos) == 3 and len(val.videos) == 1 and len(train) == 3 * 3
    assert {v.name for v in train.videos} | {v.name for v in val.videos} == \
        {str(tmp_path / "processed_64" / a / f"person0{p}_{a}_d1") for a in ("walking", "boxing") for p in (1, 2)}
    assert all("person21" not in v.name for v in train.videos + val.videos)
    first = train.videos[0].name.rsplit("/", 1)[-1]
    assert torch.equal(train[0], as_clip(arrays[first][:10])) and train[0].shape == (10, 1, 64, 64)
    with pytest.raises(MissingDataError, match="SRVP's KTH test set draws person2[1-5]_"):
        KTH(tmp_path, "test", seq_len=10)  # it needs every video of persons 21-25
    older = KTH(tmp_path, "test", seq_len=10, actions=("walking",), persons=range(2, 26))  # another protocol
    assert len(older.videos) == 2 and len(older) == 2 * 3
    direct = KTH(tmp_path / "processed_64", "train", seq_len=10, actions=("walking",), persons=(1, 2))
    assert len(direct) == 2 * 3  # root = processed_64


def test_srvp_validation_fold_of_the_479_kth_training_videos():
    """SRVP's fold of KTH's 479 training videos (persons 1-20, one missing): its 24 validation
    positions, from SRVP's get_fold run on that count."""
    from slamp.data.mnist import fold_indices

    assert fold_indices(479, "val").tolist() == [20, 71, 87, 99, 102, 106, 121, 130, 149, 151, 188, 214, 257, 270,
                                                 308, 330, 343, 348, 359, 372, 435, 458, 466, 478]
    assert len(fold_indices(479, "train")) == 455


def test_the_training_stream_draws_kth_by_video_then_start(tmp_path):
    """SRVP draws a video uniformly, then a start: a long video is not drawn more often."""
    from slamp.data.stream import TrainingSequences

    long, short = frames(60, 8, 8, seed=1), frames(6, 8, 8, seed=2)
    videos = [Video(name, tuple(list_images(write_video(tmp_path / name, video))))
              for name, video in (("long", long), ("short", short))]
    clips = VideoClips(videos, 4, (8, 8), 1)
    assert len(clips) == 57 + 3
    clips.sampling = "video"
    stream = TrainingSequences(clips, seed=0, sequences_per_epoch=400)
    from_short = sum(any(torch.equal(stream[(0, i)], as_clip(short[s:s + 4])) for s in range(3)) for i in range(400))
    assert 160 < from_short < 240  # about half, where clip-uniform sampling gives 3 in 60 (20 of 400)
    assert torch.equal(stream[(0, 7)], TrainingSequences(clips, seed=0, sequences_per_epoch=400)[(0, 7)])


def test_kth_layout_errors_name_the_path(tmp_path):
    with pytest.raises(MissingDataError, match=f"no KTH frames at {tmp_path / 'none'}.*processed_<size>"):
        KTH(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="no KTH frames"):
        KTH(tmp_path / "empty")
    make_kth(tmp_path / "kth", actions=("walking",))
    with pytest.raises(MissingDataError, match="boxing does not exist"):
        KTH(tmp_path / "kth")
    with pytest.raises(DataError, match="person01_walking_d1 has 12 frames, fewer than the 20"):
        KTH(tmp_path / "kth", actions=("walking",), persons=(1, 2), on_short="error")
    (tmp_path / "kth" / "processed_64" / "walking" / "person03_walking_d1").mkdir()
    with pytest.raises(DataError, match="person03_walking_d1 has 0 frames"):
        KTH(tmp_path / "kth", seq_len=10, actions=("walking",), persons=(1, 2, 3), on_short="error")


def test_prepare_kth_converts_videos_from_folders_and_zips(tmp_path):
    source = tmp_path / "downloads"
    source.mkdir()
    (source / "person01_walking_d1_uncomp.avi").write_bytes(b"avi 1")
    with zipfile.ZipFile(source / "boxing.zip", "w") as archive:
        archive.writestr("person22_boxing_d3_uncomp.avi", b"avi 2")
    (source / "readme.avi").write_bytes(b"not a KTH video")
    decoded = []

    def fake_decode(path, size):
        decoded.append(path.read_bytes())
        return frames(5, size, size, seed=len(decoded))[..., 0]

    assert prepare_kth(source, tmp_path / "kth", decode=fake_decode) == 2
    assert sorted(decoded) == [b"avi 1", b"avi 2"]
    folder = tmp_path / "kth" / "processed_64" / "boxing" / "person22_boxing_d3"
    assert [p.name for p in sorted(folder.iterdir())] == [f"image-{t:03d}.png" for t in range(1, 6)]
    assert prepare_kth(source, tmp_path / "kth", decode=fake_decode) == 0  # resumes: nothing left to do
    clips = KTH(tmp_path / "kth", "test", seq_len=5, actions=("boxing",), persons=(22,))
    assert torch.equal(clips[0][:, 0], torch.from_numpy(frames(5, 64, 64, seed=2)[..., 0]).float() / 255)
    with pytest.raises(MissingDataError, match="no KTH videos"):
        prepare_kth(tmp_path / "kth", tmp_path / "out", decode=fake_decode)


def test_decoding_avi_without_pyav_or_ffmpeg_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` fail
    monkeypatch.setattr(kth_module.shutil, "which", lambda name: None)
    with pytest.raises(ToolMissingError, match="pip install av.*ffmpeg"):
        decode_video(tmp_path / "person01_walking_d1_uncomp.avi")


# ---------------------------------------------------------------- BAIR

def bair_example(video):
    return encode_example({f"{t}/image_aux1/encoded": [frame.tobytes()] for t, frame in enumerate(video)}
                          | {"0/action": [b"ignored"]})


def test_crc32c_and_protobuf_decoding_follow_the_specifications():
    assert crc32c(b"") == 0 and crc32c(b"123456789") == 0xE3069283  # the standard check value
    # Example{features{feature{key:"a" value{bytes_list{value:"xy"}}}}}, encoded by hand.
    by_hand = bytes([0x0A, 0x0D, 0x0A, 0x0B, 0x0A, 0x01, 0x61, 0x12, 0x06, 0x0A, 0x04, 0x0A, 0x02]) + b"xy"
    assert parse_example(by_hand) == {"a": [b"xy"]} and encode_example({"a": [b"xy"]}) == by_hand
    # float_list packed [1.5, -2] and int64_list unpacked [3, -1] (a negative int64 is a 10-byte varint).
    floats = bytes([0x12, 0x0A, 0x0A, 0x08]) + struct.pack("<2f", 1.5, -2.0)
    ints = bytes([0x1A, 0x0D, 0x08, 0x03, 0x08]) + bytes([0xFF] * 9 + [0x01])
    entry = lambda key, feature: bytes([0x0A, 2 + len(key) + 2 + len(feature), 0x0A, len(key)]) + key + \
        bytes([0x12, len(feature)]) + feature  # noqa: E731
    features = entry(b"f", floats) + entry(b"i", ints)
    assert parse_example(bytes([0x0A, len(features)]) + features) == {"f": [1.5, -2.0], "i": [3, -1]}
    with pytest.raises(DataError, match="truncated|past the end"):
        parse_example(by_hand[:-1])


def test_tfrecord_files_round_trip_and_damage_is_detected(tmp_path):
    records = [b"first", b"", b"x" * 300]
    path = write_tfrecords(tmp_path / "a.tfrecords", records)
    assert list(read_tfrecords(path, verify=True)) == records
    data = bytearray(path.read_bytes())
    (tmp_path / "cut.tfrecords").write_bytes(bytes(data[:-5]))
    with pytest.raises(DataError, match="cut.tfrecords, record 2: truncated"):
        list(read_tfrecords(tmp_path / "cut.tfrecords"))
    data[0] ^= 1  # the first record's length no longer matches its checksum
    (tmp_path / "bad.tfrecords").write_bytes(bytes(data))
    with pytest.raises(DataError, match="record 0: the length's checksum"):
        list(read_tfrecords(tmp_path / "bad.tfrecords"))
    flipped = bytearray(path.read_bytes())
    flipped[14] ^= 1  # inside the data of record 0
    (tmp_path / "flip.tfrecords").write_bytes(bytes(flipped))
    assert len(list(read_tfrecords(tmp_path / "flip.tfrecords"))) == 3  # data checksum only when asked
    with pytest.raises(DataError, match="data's checksum"):
        list(read_tfrecords(tmp_path / "flip.tfrecords", verify=True))


def make_bair_source(folder, n_train=2, n_test=1):
    videos = {}
    for split, n in (("train", n_train), ("test", n_test)):
        (folder / "softmotion30_44k" / split).mkdir(parents=True, exist_ok=True)
        videos[split] = [frames(30, 64, 64, 3, seed=10 * n + k) for k in range(n)]
        write_tfrecords(folder / "softmotion30_44k" / split / "traj_0_to_255.tfrecords", map(bair_example, videos[split]))
    return videos


@pytest.mark.parametrize("packed", [False, True])
def test_bair_converts_tfrecords_from_a_folder_or_a_tar_and_loads_exact_pixels(tmp_path, packed):
    videos = make_bair_source(tmp_path, n_train=3)
    source = tmp_path / "softmotion30_44k"
    if packed:
        with tarfile.open(tmp_path / "bair.tar", "w") as archive:
            archive.add(source, arcname="softmotion30_44k")
        source = tmp_path / "bair.tar"
    assert prepare_bair(source, tmp_path / "bair") == {"train": 3, "test": 1}
    record = tmp_path / "bair" / "processed_data" / "train" / "traj_0_to_255"
    assert sorted(p.name for p in record.iterdir()) == ["001", "002", "003"]  # SRVP's numbering
    assert [p.name for p in list_images(record / "001")] == [f"{t:03d}.png" for t in range(30)]
    test = BAIR(tmp_path / "bair", "test")
    assert len(test) == 1 and torch.equal(test[0], as_clip(videos["test"][0]))
    train, val = BAIR(tmp_path / "bair", "train"), BAIR(tmp_path / "bair", "val")
    # SRVP's fold of 3 sequences: int(0.95 * 3) = 2 for training (RandomState(42) leaves 0, 1, 2 in place), 1 for validation
    assert [v.name[-3:] for v in train.videos] == ["001", "002"] and [v.name[-3:] for v in val.videos] == ["003"]
    assert len(train) == 2 * (30 - 12 + 1) and train[0].shape == (12, 3, 64, 64) and train.sampling == "video"
    assert torch.equal(train[len(train) - 1], as_clip(videos["train"][1][18:30]))
    assert torch.equal(val[0], as_clip(videos["train"][2][:12]))
    assert prepare_bair(source, tmp_path / "bair") == {"train": 3, "test": 1}  # re-run: skips, same counts


def test_bair_reads_the_older_numbering_too(tmp_path):
    older = tmp_path / "processed_data" / "test" / "traj_0_to_255"
    video = frames(30, 64, 64, 3, seed=3)
    write_video(older / "000", video, name="{:02d}.png")  # sequences from 000, frames 00.png .. 29.png
    assert torch.equal(BAIR(tmp_path, "test")[0], as_clip(video))


def test_bair_errors_name_the_file_and_the_layout(tmp_path):
    with pytest.raises(MissingDataError, match="processed_data/\\{train,test\\}"):
        BAIR(tmp_path, "train")
    (tmp_path / "processed_data" / "test").mkdir(parents=True)
    with pytest.raises(MissingDataError, match="no sequence folders"):
        BAIR(tmp_path, "test")
    (tmp_path / "src" / "test").mkdir(parents=True)
    write_tfrecords(tmp_path / "src" / "test" / "t.tfrecords", [encode_example({"0/image_main/encoded": [b"x"]})])
    with pytest.raises(DataError, match="test/t record 0: expected feature '0/image_aux1/encoded'"):
        prepare_bair(tmp_path / "src", tmp_path / "out")
    (tmp_path / "not.tar").write_bytes(b"no tar here" * 100)
    with pytest.raises(DataError, match="neither a folder nor a tar"):
        prepare_bair(tmp_path / "not.tar", tmp_path / "out")
    with pytest.raises(ValueError, match="split"):
        BAIR(tmp_path, "validation")
    assert bair_frames(parse_example(bair_example(frames(30, 64, 64, 3))), "").shape == (30, 64, 64, 3)


# ---------------------------------------------------------------- KITTI

def make_kitti(root, drives=(TRAIN_DRIVE, TEST_DRIVE), n=32, size=(10, 31)):
    for k, drive in enumerate(drives):
        for camera in ("image_02", "image_03"):
            write_video(root / drive[:10] / drive / camera / "data", frames(n, *size, 3, seed=k), name="{:010d}.png")


def test_kitti_reads_the_raw_layout_split_by_drive(tmp_path):
    make_kitti(tmp_path)
    with pytest.warns(UserWarning, match="31 of the 32 KITTI drives"):
        train = KITTI(tmp_path, "train", seq_len=20)
    # the public code's starts: a clip needs the frame after it too, so 32 - 20 starts, not 32 - 20 + 1
    assert len(train) == 2 * (32 - 20) and all(TRAIN_DRIVE in v.name for v in train.videos)
    assert train[0].shape == (20, 3, 92, 310)
    with pytest.warns(UserWarning):
        test = KITTI(tmp_path, "test")
    assert test.clips == [(0, 0), (1, 0)] and {v.name.split("/")[-2] for v in test.videos} == {"image_02", "image_03"}
    left = KITTI(tmp_path, [TEST_DRIVE], seq_len=5, cameras=("image_02",))
    assert len(left) == 32 - 5
    every_window = KITTI(tmp_path, [TEST_DRIVE], seq_len=5, cameras=("image_02",), end_margin=0)
    assert len(every_window) == 32 - 5 + 1


def test_kitti_static_frames_are_left_out(tmp_path):
    make_kitti(tmp_path, drives=(TEST_DRIVE,), n=25)
    ranges = tmp_path / "static.txt"
    ranges.write_text(f"2011_09_26 {TEST_DRIVE} 0000000000 until 0000000003\n")
    clips = KITTI(tmp_path, [TEST_DRIVE], seq_len=20, cameras=("image_02",), static_ranges=ranges)
    assert [s for _, s in clips.clips] == [4]  # frames 4-23, and 24 after it; 5-24 has no frame after it
    first = KITTI(tmp_path, [TEST_DRIVE], seq_len=20, cameras=("image_02",), static_ranges=ranges, stride=None)
    assert first.clips == [(0, 4)]


def test_kitti_errors_name_the_path(tmp_path):
    with pytest.raises(MissingDataError, match="does not exist; expected <root>/<date>"):
        KITTI(tmp_path / "none")
    with pytest.raises(MissingDataError, match="none of the 32 drives"):
        KITTI(tmp_path)
    make_kitti(tmp_path, drives=(TEST_DRIVE,))
    (tmp_path / TEST_DRIVE[:10] / TEST_DRIVE / "image_03" / "data" / "0000000031.png").unlink()
    (tmp_path / TEST_DRIVE[:10] / TEST_DRIVE / "image_03" / "data" / "0000000030.png").unlink()
    with pytest.raises(DataError, match="image_03/data has 30 frames, fewer than the 31"), pytest.warns(UserWarning):
        KITTI(tmp_path, "test", seq_len=31, on_short="error")
    with pytest.warns(UserWarning):  # by default a drive too short for a clip is left out, as the public code does
        short = KITTI(tmp_path, "test", seq_len=31)
    assert len(short) == 1 and short.skipped == [str(tmp_path / TEST_DRIVE[:10] / TEST_DRIVE / "image_03" / "data")]
    with pytest.raises(MissingDataError, match="image_04/data does not exist"), pytest.warns(UserWarning):
        KITTI(tmp_path, "test", cameras=("image_04",))


def test_prepare_kitti_resizes_colour_frames_out_of_drive_zips(tmp_path):
    make_kitti(tmp_path / "raw", drives=(TEST_DRIVE,), n=3, size=(30, 100))
    archive = tmp_path / f"{TEST_DRIVE}.zip"
    with zipfile.ZipFile(archive, "w") as drive_zip:
        for path in sorted((tmp_path / "raw").rglob("*.png")):
            drive_zip.write(path, path.relative_to(tmp_path / "raw").as_posix())
        drive_zip.writestr(f"2011_09_26/{TEST_DRIVE}/image_00/data/0000000000.png", b"grey camera: not copied")
    assert prepare_kitti([archive], tmp_path / "kitti") == 2 * 3
    written = sorted((tmp_path / "kitti").rglob("*.png"))
    assert len(written) == 6 and all(Image.open(p).size == (310, 92) for p in written)
    assert prepare_kitti(archive, tmp_path / "kitti") == 0
    assert prepare_kitti(tmp_path / "raw", tmp_path / "kitti_from_folder") == 6
    clips = KITTI(tmp_path / "kitti", [TEST_DRIVE], seq_len=2)
    assert len(clips) == 2 and clips[0].shape == (2, 3, 92, 310)


# ---------------------------------------------------------------- Cityscapes

def make_city(root, split="train", city="aachen", sequences=(0, 1), n=30, first_frame=0, size=(8, 16)):
    folder = root / "leftImg8bit_sequence" / split / city
    for s in sequences:
        write_video(folder, frames(n, *size, 3, seed=s), name=f"{city}_{s:06d}_{{:06d}}_leftImg8bit.png",
                    start=first_frame)
    return folder


def test_cityscapes_groups_frames_into_30_frame_snippets(tmp_path):
    make_city(tmp_path, sequences=(0,), n=60, first_frame=100)  # two snippets of one long sequence
    make_city(tmp_path, city="bochum", sequences=(3,))
    train = Cityscapes(tmp_path, "train", seq_len=20)
    assert len(train.videos) == 3 and len(train) == 3 * (30 - 20 + 1)
    assert train[0].shape == (20, 3, 128, 256)
    assert "aachen_000000_000130" in train.videos[1].name  # the second snippet starts at frame 130
    make_city(tmp_path, split="test", city="bonn", sequences=range(25))
    test = Cityscapes(tmp_path / "leftImg8bit_sequence", "test")  # the root may also be the sequence folder
    assert len(test) == 20 and test[0].shape == (30, 3, 128, 256)  # the first 20 snippets of the city
    assert len(Cityscapes(tmp_path, "test", snippets_per_city=100)) == 25


def test_cityscapes_missing_frames_make_a_short_snippet_and_an_error(tmp_path):
    folder = make_city(tmp_path, sequences=(0,))
    (folder / "aachen_000000_000012_leftImg8bit.png").unlink()
    with pytest.raises(DataError, match=r"aachen_000000_000000_leftImg8bit.png \(12 frames\) has 12 frames"):
        Cityscapes(tmp_path, "train", seq_len=20)
    with pytest.raises(MissingDataError, match="leftImg8bit_sequence/val does not exist"):
        Cityscapes(tmp_path, "val")
    (tmp_path / "leftImg8bit_sequence" / "test" / "empty_city").mkdir(parents=True)
    with pytest.raises(MissingDataError, match="no \\*_leftImg8bit.png frames"):
        Cityscapes(tmp_path, "test")
    with pytest.raises(ValueError, match="30 frames"):
        Cityscapes(tmp_path, "train", seq_len=31)


def test_prepare_cityscapes_reads_the_zip_member_by_member(tmp_path):
    make_city(tmp_path / "raw", split="val", n=3, size=(40, 80))
    with zipfile.ZipFile(tmp_path / "leftImg8bit_sequence_trainvaltest.zip", "w") as archive:
        for path in sorted((tmp_path / "raw").rglob("*.png")):
            archive.write(path, path.relative_to(tmp_path / "raw").as_posix())
        archive.writestr("license.txt", "not a frame")
    assert prepare_cityscapes(tmp_path / "leftImg8bit_sequence_trainvaltest.zip", tmp_path / "cs") == 6
    written = sorted((tmp_path / "cs").rglob("*.png"))
    assert len(written) == 6 and Image.open(written[0]).size == (256, 128)
    assert written[0].relative_to(tmp_path / "cs").parts[:3] == ("leftImg8bit_sequence", "val", "aachen")
    corrupt = tmp_path / "corrupt.zip"
    with zipfile.ZipFile(corrupt, "w") as archive:
        archive.writestr("leftImg8bit_sequence/val/aachen/aachen_000000_000000_leftImg8bit.png", b"garbage")
    with pytest.raises(DataError, match="aachen_000000_000000_leftImg8bit.png"):
        prepare_cityscapes(corrupt, tmp_path / "cs2")
    with pytest.raises(MissingDataError):
        prepare_cityscapes(tmp_path / "absent.zip", tmp_path / "cs3")
    (tmp_path / "text.zip").write_bytes(b"plain text")
    with pytest.raises(DataError, match="neither a folder nor a zip"):
        prepare_cityscapes(tmp_path / "text.zip", tmp_path / "cs4")
