"""BAIR robot pushing (Ebert et al., 2017): 64x64 RGB sequences of 30 frames. The official
TFRecords are converted to PNG folders by a small pure-Python TFRecord and protobuf reader."""

import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from slamp.data.files import DataError, MissingDataError, dataset_root, inside, list_images, natural_key, walk_files
from slamp.data.mnist import fold_indices
from slamp.data.video import Video, VideoClips, split_stride


BAIR_FRAMES = 30
BAIR_SIZE = 64
BAIR_SEQ_LEN = {"train": 12, "test": 30}  # 2 + 10 for training, 2 -> 28 for testing
BAIR_FEATURE = "{t}/image_aux1/encoded"
BAIR_LAYOUT = ("<root>/processed_data/{train,test}/<tfrecord name>/<sequence>/<t>.png, SRVP's layout: sequences "
               "001, 002, ... and frames 000.png ... 029.png (written by `slamp prepare bair` and by SRVP's "
               "convert.py; older slamp's 000/00.png numbering is read too)")


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # the Castagnoli polynomial, reflected
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, the checksum TFRecord files use."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


MAX_RECORD_BYTES = 256 << 20  # one record of a TFRecord file: 256 MB at most


def read_tfrecords(file, name: str = "", verify: bool = False):
    """Yield the records (bytes) of a TFRecord file given as a path or a binary file object."""
    if isinstance(file, (str, Path)):
        with open(file, "rb") as handle:
            yield from read_tfrecords(handle, str(file), verify)
        return
    count = 0
    while header := file.read(12):
        where = f"{name}, record {count}"
        if len(header) < 12:
            raise DataError(f"{where}: truncated record header (the file ends mid-record)")
        length, length_crc = struct.unpack("<QI", header)
        if masked_crc32c(header[:8]) != length_crc:
            raise DataError(f"{where}: the length's checksum does not match; not a TFRecord file, or corrupt")
        if length > MAX_RECORD_BYTES:  # bounded before anything is allocated for it
            raise DataError(f"{where}: a record of {length:,} bytes, more than the {MAX_RECORD_BYTES:,} slamp reads "
                            f"(a BAIR record is about 1 MB); not a BAIR TFRecord file, or corrupt")
        data, footer = file.read(length), file.read(4)
        if len(data) < length or len(footer) < 4:
            raise DataError(f"{where}: truncated ({len(data)} of {length} bytes)")
        if verify and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
            raise DataError(f"{where}: the data's checksum does not match (corrupt)")
        count += 1
        yield data


def _varint(buffer, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(buffer):
            raise DataError("protobuf: truncated varint")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def protobuf_fields(buffer):
    """Yield ``(field number, wire type, value)`` of a serialized protobuf message: value is an
    int for varints and a memoryview of the bytes otherwise."""
    buffer, position = memoryview(buffer), 0
    while position < len(buffer):
        key, position = _varint(buffer, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(buffer, position)
        elif wire in (1, 2, 5):
            size = {1: 8, 5: 4}.get(wire)
            if size is None:
                size, position = _varint(buffer, position)
            value, position = buffer[position:position + size], position + size
            if position > len(buffer):
                raise DataError("protobuf: field runs past the end of the message")
        else:
            raise DataError(f"protobuf: unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _feature_values(feature) -> list:
    """The values of a tf.train.Feature: bytes, floats or ints."""
    for kind, _, values in protobuf_fields(feature):  # a oneof: one field
        out = []
        for _, wire, value in protobuf_fields(values):
            if kind == 1:
                out.append(bytes(value))
            elif kind == 2:  # floats, packed (wire 2) or one by one (wire 5)
                out.extend(np.frombuffer(value, "<f4").tolist())
            elif kind == 3 and wire == 2:  # packed varints
                position = 0
                while position < len(value):
                    number, position = _varint(value, position)
                    out.append(number - (1 << 64) if number >= 1 << 63 else number)
            elif kind == 3:
                out.append(value - (1 << 64) if value >= 1 << 63 else value)
        return out
    return []


def parse_example(record: bytes) -> dict[str, list]:
    """A serialized ``tf.train.Example`` as ``{feature name: list of values}``."""
    features = {}
    for number, wire, message in protobuf_fields(record):
        if number != 1 or wire != 2:  # Example.features
            continue
        for entry_number, entry_wire, entry in protobuf_fields(message):
            if entry_number != 1 or entry_wire != 2:  # Features.feature (a map entry)
                continue
            key, value = "", []
            for number, _, content in protobuf_fields(entry):
                if number == 1:
                    key = bytes(content).decode()
                elif number == 2:
                    value = _feature_values(content)
            features[key] = value
    return features


def bair_frames(features: dict, where: str = "") -> np.ndarray:
    """The 30 frames ``(30, 64, 64, 3)`` uint8 of one parsed BAIR example."""
    frames = []
    for t in range(BAIR_FRAMES):
        values = features.get(BAIR_FEATURE.format(t=t))
        if not values or len(values[0]) != BAIR_SIZE * BAIR_SIZE * 3:
            found = f"{len(values[0])} bytes" if values else "nothing"
            raise DataError(f"{where}: expected feature {BAIR_FEATURE.format(t=t)!r} with 64*64*3 raw RGB bytes, "
                            f"found {found} (features: {sorted(features)[:6]}...)")
        frames.append(np.frombuffer(values[0], np.uint8).reshape(BAIR_SIZE, BAIR_SIZE, 3))
    return np.stack(frames)


def _tfrecord_files(source: Path):
    """(split, file stem, binary file) of every ``<split>/<name>.tfrecords`` in a tar or folder."""
    if source.is_dir():  # symlinks out of the folder: a DataError (files.walk_files)
        found = [path for _, path in walk_files(source) if path.suffix == ".tfrecords"]
        for path in sorted(found, key=natural_key):
            with open(path, "rb") as file:
                yield path.parent.name, path.stem, file
        return
    try:
        archive = tarfile.open(source, mode="r|*")  # a stream: members come in order, read once
    except tarfile.TarError as err:
        raise DataError(f"{source} is neither a folder nor a tar archive") from err
    with archive:
        for member in archive:
            path = Path(member.name)
            if member.isfile() and path.suffix == ".tfrecords":
                yield path.parent.name, path.stem, archive.extractfile(member)


def prepare_bair(source, output, verify: bool = False) -> dict[str, int]:
    """Convert BAIR's TFRecords (the official tar, or the extracted ``softmotion30_44k`` folder) to
    ``output/processed_data/<split>/<tfrecord stem>/<k>/<t>.png`` as SRVP's ``convert.py`` numbers
    them (the k-th record of a file in folder ``001`` onwards, frames ``000.png`` to ``029.png``);
    returns sequences per split. Sequences already converted are skipped."""
    source, output = Path(source), Path(output)
    if not source.exists():
        raise MissingDataError(f"{source} does not exist; expected BAIR's bair_robot_pushing_dataset_v0.tar "
                               "or its softmotion30_44k/{train,test}/*.tfrecords")
    counts: dict[str, int] = {}
    for split, stem, file in _tfrecord_files(source):
        for k, record in enumerate(read_tfrecords(file, f"{source}:{split}/{stem}", verify)):
            folder = inside(output / "processed_data", f"{split}/{stem}/{k + 1:03d}")  # names from the tar stay in
            counts[split] = counts.get(split, 0) + 1
            if folder.is_dir():
                continue
            frames = bair_frames(parse_example(record), f"{split}/{stem} record {k}")
            partial = folder.with_name(folder.name + ".part")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            for t, frame in enumerate(frames):
                Image.fromarray(frame).save(partial / f"{t:03d}.png")
            partial.rename(folder)
    if not counts:
        raise MissingDataError(f"no .tfrecords files in {source}")
    return counts


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def encode_example(features: dict[str, list[bytes]]) -> bytes:
    """Serialize a ``tf.train.Example`` of bytes features (for fixtures and tests)."""
    entries = b""
    for key, values in features.items():
        bytes_list = b"".join(_length_delimited(1, v) for v in values)
        feature = _length_delimited(1, bytes_list)  # Feature.bytes_list
        entries += _length_delimited(1, _length_delimited(1, key.encode()) + _length_delimited(2, feature))
    return _length_delimited(1, entries)


def write_tfrecords(path, records) -> Path:
    """Write records (bytes) as a TFRecord file."""
    with open(path, "wb") as file:
        for record in records:
            length = struct.pack("<Q", len(record))
            file.write(length + struct.pack("<I", masked_crc32c(length)) + record
                       + struct.pack("<I", masked_crc32c(record)))
    return Path(path)


def bair_videos(root, split: str) -> list[Video]:
    """The sequence folders of ``split`` under ``root/processed_data`` (or ``root`` if it is that
    folder), in SRVP's order: record folders, then sequence folders, sorted by name as strings (the
    order its 5% validation fold is drawn over); frames in numeric order."""
    root = Path(root)
    base = root / "processed_data" if (root / "processed_data").is_dir() else root
    folder = base / split
    if not folder.is_dir():
        raise MissingDataError(f"{folder} does not exist; expected {BAIR_LAYOUT}")
    videos = [Video(str(sequence), tuple(list_images(sequence)))
              for record in sorted(folder.iterdir()) if record.is_dir()
              for sequence in sorted(record.iterdir()) if sequence.is_dir()]
    if not videos:
        raise MissingDataError(f"no sequence folders in {folder}; expected {BAIR_LAYOUT}")
    return videos


class BAIR(VideoClips):
    """BAIR clips ``(T, 3, 64, 64)`` as SRVP splits them: ``split="train"``, SRVP's 95% fold of the
    training sequences, every clip of ``seq_len`` (default 12; the training stream draws a sequence,
    then a start, as SRVP does); ``"val"``, the other 5%; ``"test"``, one clip of ``seq_len``
    (default 30) per test sequence, from frame 0. ``stride`` (see :class:`VideoClips`) overrides the
    split's default ("auto")."""

    sampling = "video"

    def __init__(self, root=None, split: str = "train", seq_len: int | None = None, stride: int | None | str = "auto",
                 on_short: str = "error"):
        root = dataset_root("bair", root)
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', found {split!r}")
        videos = bair_videos(root, "test" if split == "test" else "train")
        if split != "test":
            videos = [videos[i] for i in fold_indices(len(videos), split)]
        super().__init__(videos, seq_len or BAIR_SEQ_LEN["test" if split == "test" else "train"],
                         (BAIR_SIZE, BAIR_SIZE), 3, stride=split_stride(stride, split != "test"), on_short=on_short,
                         layout=BAIR_LAYOUT)


__all__ = ['BAIR_FRAMES', 'BAIR_SIZE', 'BAIR_SEQ_LEN', 'BAIR_FEATURE', 'BAIR_LAYOUT', 'crc32c', 'masked_crc32c', 'read_tfrecords', 'protobuf_fields', 'parse_example', 'bair_frames', 'prepare_bair', 'encode_example', 'write_tfrecords', 'bair_videos', 'BAIR']
