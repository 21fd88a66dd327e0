"""Copy the colour frames of KITTI raw drives, resized to 92x310, into the same raw layout.

    python data/prepare_kitti.py --source ~/Downloads/kitti/*_sync.zip --out data/kitti

--source: the per-drive zips (<date>_drive_<NNNN>_sync.zip) and/or unzipped raw folders. Writes
<out>/<date>/<date>_drive_<NNNN>_sync/image_0{2,3}/data/<frame>.png. Re-running resumes.
(`slamp.data.KITTI` also reads the unzipped full-size raw folders directly, resizing on the fly.)
"""
import argparse
import sys
from pathlib import Path

from slamp.data.files import DataError
from slamp.data.kitti import prepare_kitti


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, nargs="+", required=True, help="drive zips or raw folders")
    parser.add_argument("--out", type=Path, default=Path("data/kitti"), help="output root (default: data/kitti)")
    args = parser.parse_args(argv)
    try:
        count = prepare_kitti(args.source, args.out)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {count} frames under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
