"""Copy Cityscapes sequence frames, resized to 128x256, into the same layout.

    python data/prepare_cityscapes.py --source ~/Downloads/leftImg8bit_sequence_trainvaltest.zip --out data/cityscapes

--source: the official zip (read member by member, never unzipped: it is 324 GB unpacked) or an
unzipped folder. Writes <out>/leftImg8bit_sequence/{train,val,test}/<city>/<name>_leftImg8bit.png.
Re-running resumes.
"""
import argparse
import sys
from pathlib import Path

from slamp.data.cityscapes import prepare_cityscapes
from slamp.data.files import DataError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, nargs="+", required=True, help="the zip or an unzipped folder")
    parser.add_argument("--out", type=Path, default=Path("data/cityscapes"), help="output root (default: data/cityscapes)")
    args = parser.parse_args(argv)
    try:
        count = prepare_cityscapes(args.source, args.out)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {count} frames under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
