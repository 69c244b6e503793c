"""Run a detection checkpoint on an image or a folder: a JSON of boxes and PNGs with boxes drawn.

    python tools/detect.py ckpt=outputs/shapes_ssd/<time>/checkpoints/best-epoch019.ckpt \
        input=data/synthetic_shapes_detection/test2017 out=detections score=0.3

Keys: ckpt, input (file or folder), out (default: detections), score (threshold, default 0.3),
batch (default 8), draw (default true), device (default cpu), max_pixels (larger images are skipped
and counted, default 64000000; null: no limit), fast (default true: BatchNorm folded, channels_last;
false runs the model as trained, boxes equal within 1e-4). out must not be (or lie inside) the input folder.
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import sys

from omegaconf import OmegaConf

from mnet_vision.images import MAX_PIXELS, checked_max_pixels
from mnet_vision.inference.detect import detect_files

USAGE = ("usage: python tools/detect.py ckpt=PATH input=IMAGE_OR_FOLDER [out=DIR] [score=0.3] [batch=8] [draw=true] "
         "[fast=true]")


def main(argv: list[str]) -> None:
    args = OmegaConf.from_dotlist(argv)
    if "ckpt" not in args or "input" not in args:
        sys.exit(USAGE)
    summary = detect_files(args.ckpt, args.input, args.get("out", "detections"), float(args.get("score", 0.3)),
                           int(args.get("batch", 8)), bool(args.get("draw", True)), str(args.get("device", "cpu")),
                           checked_max_pixels(args.get("max_pixels", MAX_PIXELS)), bool(args.get("fast", True)))
    print(f"{summary['detections']} detections in {summary['images']} images -> {summary['json']}"
          + (f"; skipped {len(summary['skipped'])} unreadable" if summary["skipped"] else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
