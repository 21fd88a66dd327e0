"""Convert BAIR's TFRecords to PNG frames: <out>/processed_data/{train,test}/<tfrecord>/<k>/<t>.png.

    python data/prepare_bair.py --source ~/Downloads/bair_robot_pushing_dataset_v0.tar --out data/bair

--source is the official tar (read as a stream, never unpacked) or its extracted softmotion30_44k
folder. No TensorFlow needed. Re-running skips the sequences already converted.
"""
import argparse
import sys
from pathlib import Path

from slamp.data.bair import prepare_bair
from slamp.data.files import DataError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="the BAIR tar or softmotion30_44k folder")
    parser.add_argument("--out", type=Path, default=Path("data/bair"), help="output root (default: data/bair)")
    parser.add_argument("--verify", action="store_true", help="also check every record's data checksum (slow)")
    args = parser.parse_args(argv)
    try:
        counts = prepare_bair(args.source, args.out, verify=args.verify)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"sequences per split: {counts} in {args.out / 'processed_data'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
