"""Embed a face gallery with a checkpoint into a faiss index (one file: the faiss index, then its id ->
identity map).

    python tools/build_index.py ckpt=outputs/faces_student/<time>/checkpoints/last.ckpt \
        gallery=data/synthetic_identities/test out=faces.faiss [factory=auto] [add=false]

gallery: a folder of identity folders (<gallery>/<identity>/*.jpg) or a list file of path[,identity]
lines. factory: a faiss factory string (IDMap2,Flat; IDMap2,HNSW32,Flat; IVF1024,Flat; IVF4096,PQ32)
or auto (by gallery size). add=true appends to the index at out; two appends at once both land (writers
take turns on out.lock, and a writer that waits too long fails naming the index). Other keys: batch (64),
device (cpu), max_pixels (larger images are skipped and counted; default 64000000, null: no limit),
fast (default true: BatchNorm folded, channels_last; false embeds with the model as trained, equal within 1e-4).
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import sys

from omegaconf import OmegaConf

from mnet_vision.images import MAX_PIXELS, checked_max_pixels
from mnet_vision.inference.search import build_index

USAGE = ("usage: python tools/build_index.py ckpt=PATH gallery=FOLDER_OR_LIST out=INDEX [factory=auto] [add=false] "
         "[fast=true]")


def main(argv: list[str]) -> None:
    args = OmegaConf.from_dotlist(argv)
    if not {"ckpt", "gallery", "out"} <= set(args):
        sys.exit(USAGE)
    summary = build_index(args.ckpt, args.gallery, args.out, str(args.get("factory", "auto")),
                          bool(args.get("add", False)), int(args.get("batch", 64)), str(args.get("device", "cpu")),
                          checked_max_pixels(args.get("max_pixels", MAX_PIXELS)), bool(args.get("fast", True)))
    print(f"{summary['index']}: {summary['total']} faces ({summary['added']} added, "
          f"{summary['images_per_second']:.0f} images/s), index {summary['factory']}"
          + (f"; skipped {len(summary['skipped'])} unreadable" if summary["skipped"] else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
