"""Convert KTH's .avi videos to 64x64 grey PNG frames: <out>/processed_64/<action>/<video>/image-001.png, ...

    python data/prepare_kth.py --source ~/Downloads/kth --out data/kth

--source is a folder with the six official zips (boxing.zip, handclapping.zip, handwaving.zip,
jogging.zip, running.zip, walking.zip) or their extracted .avi files. Decoding needs PyAV
(`pip install av`) or the ffmpeg program. Re-running skips the videos already converted.
"""
import argparse
import sys
from pathlib import Path

from slamp.data.files import DataError, ToolMissingError
from slamp.data.kth import prepare_kth


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="folder with the KTH zips or .avi files")
    parser.add_argument("--out", type=Path, default=Path("data/kth"), help="output root (default: data/kth)")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)
    try:
        count = prepare_kth(args.source, args.out, args.size)
    except (DataError, ToolMissingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"converted {count} videos into {args.out / f'processed_{args.size}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
