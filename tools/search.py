"""Search a face index with images (embedded with the gallery's checkpoint) or a .npy of embeddings.

    python tools/search.py index=faces.faiss ckpt=outputs/.../last.ckpt query=photo.png [k=5] [threshold=0.5]
    python tools/search.py index=faces.faiss query=embeddings.npy [output=results.json]

Prints each query's best identity and cosine score ("unknown" below threshold) and its top k;
output= writes them all as JSON, picture= a PNG of each query beside its matches (up to 8 queries).
fast (default true: BatchNorm folded, channels_last; false embeds with the model as trained, equal within 1e-4).
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import sys
from pathlib import Path

from omegaconf import OmegaConf

from mnet_vision.images import MAX_PIXELS, checked_max_pixels
from mnet_vision.inference.search import search_index
from mnet_vision.outputs import refuse_overwrite
from mnet_vision.textfiles import write_json
from mnet_vision.viz.verification import save_search_picture

USAGE = "usage: python tools/search.py index=INDEX query=IMAGE_FOLDER_OR_NPY [ckpt=PATH] [k=5] [threshold=-1] [output=FILE] [picture=PNG] [fast=true]"


def main(argv: list[str]) -> None:
    args = OmegaConf.from_dotlist(argv)
    if not {"index", "query"} <= set(args):
        sys.exit(USAGE)
    query = Path(args.query)
    inputs = [args.index, query, *(sorted(query.iterdir()) if query.is_dir() else []),
              *([args.ckpt] if args.get("ckpt") else [])]
    for key in ("output", "picture"):  # before the search: never written over the index, a query or the model
        if args.get(key):
            refuse_overwrite(args[key], inputs, key)
    results = search_index(args.index, args.query, args.get("ckpt"), int(args.get("k", 5)),
                           float(args.get("threshold", -1.0)), str(args.get("device", "cpu")),
                           checked_max_pixels(args.get("max_pixels", MAX_PIXELS)), bool(args.get("fast", True)))
    for r in results:
        others = ", ".join(f"{m['identity']} {m['score']:.3f}" for m in r["matches"][1:])
        print(f"{r['query']}: {r['identity']} ({r['score']:.3f})" + (f"  | next: {others}" if others else ""))
    if args.get("picture"):
        refuse_overwrite(args.picture, [m["source"] for r in results for m in r["matches"] if m["source"]], "picture")
        print(f"picture: {save_search_picture(results, args.picture)}")
    if args.get("output"):  # atomically: a killed search never leaves a half-written results file
        write_json(args.output, results, indent=2)


if __name__ == "__main__":
    main(sys.argv[1:])
