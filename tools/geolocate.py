"""Where was this photo taken? Top-k earth cells with probabilities and a predicted point per photo.

    python tools/geolocate.py ckpt=outputs/planet/<time>/checkpoints/best-epoch009.ckpt \
        input=data/synthetic_geo/test/000000.png out=geolocated draw=true
    python tools/geolocate.py ckpt=... input=data/synthetic_geo/test.csv out=geolocated   # scored in km

Keys: ckpt, input (an image, a folder, or a path,lat,lon CSV whose photos are then scored), out
(default: geolocated), top_k (default 5), draw (a map PNG per photo, default false), batch (32),
device (cpu), images (the CSV's image root, default its folder), cells (the partition files,
coarsest first, to check against the checkpoint's; the checkpoint holds its cells), crops (1, or 5
for TIB's test protocol: each cell's best probability over FiveCrop's crops), max_pixels (larger
images are skipped and counted; default 64000000, null: no limit), fast (default true: BatchNorm
folded, channels_last; false runs the model as trained, probabilities equal within 1e-4). out must
not be (or lie inside) a
folder of the photos; maps are named after the whole file name (photo.jpg -> photo.jpg.png).
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import sys

from omegaconf import OmegaConf

from mnet_vision.images import MAX_PIXELS, checked_max_pixels
from mnet_vision.inference.geolocate import geolocate_files

USAGE = ("usage: python tools/geolocate.py ckpt=PATH input=IMAGE_FOLDER_OR_CSV [out=DIR] [top_k=5] [draw=false] "
         "[cells=[coarse.csv,fine.csv]] [crops=1|5] [fast=true]")


def main(argv: list[str]) -> None:
    args = OmegaConf.from_dotlist(argv)
    if "ckpt" not in args or "input" not in args:
        sys.exit(USAGE)
    cells = args.get("cells")
    summary = geolocate_files(args.ckpt, args.input, args.get("out", "geolocated"), int(args.get("top_k", 5)),
                              int(args.get("batch", 32)), bool(args.get("draw", False)), str(args.get("device", "cpu")),
                              [cells] if isinstance(cells, str) else cells, args.get("images"),
                              int(args.get("crops", 1)),
                              checked_max_pixels(args.get("max_pixels", MAX_PIXELS)), bool(args.get("fast", True)))
    print(f"{summary['photos']} photos located ({summary['photos_per_second']:.0f} photos/s) -> {summary['json']}"
          + (f"; skipped {len(summary['skipped'])} unreadable" if summary["skipped"] else ""))
    if "table" in summary:
        print(summary["table"])


if __name__ == "__main__":
    main(sys.argv[1:])
