"""Search a face index with images (embedded with the gallery's checkpoint) or a .npy of embeddings.

    python tools/search.py index=faces.faiss ckpt=outputs/.../last.ckpt query=photo.png [k=5] [threshold=0.5]
    python tools/search.py index=faces.faiss query=embeddings.npy [output=results.json]

Prints each query's best identity and cosine score ("unknown" below threshold) and its top k;
output= writes them all as JSON, picture= a PNG of each query beside its matches (up to 8 queries).
Keys and defaults: conf/search.yaml (fast: BatchNorm folded, channels_last; false embeds with the
model as trained, equal within 1e-4). ckpt may be an exported .onnx (tools/export.py), run by ONNX
Runtime: embeddings within 1e-4 of the checkpoint's.
"""
from pathlib import Path

import hydra
from omegaconf import DictConfig

from mnet_vision.config import CONF_DIR
from mnet_vision.images import checked_max_pixels
from mnet_vision.inference.search import search_index
from mnet_vision.outputs import refuse_overwrite
from mnet_vision.textfiles import write_json
from mnet_vision.viz.verification import save_search_picture


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="search")
def main(cfg: DictConfig) -> None:
    query = Path(cfg.query)
    inputs = [cfg.index, query, *(sorted(query.iterdir()) if query.is_dir() else []), *([cfg.ckpt] if cfg.ckpt else [])]
    for key in ("output", "picture"):  # before the search: never written over the index, a query or the model
        if cfg[key]:
            refuse_overwrite(cfg[key], inputs, key)
    results = search_index(index_path=cfg.index, query=cfg.query, ckpt=cfg.ckpt, k=int(cfg.k),
                           threshold=float(cfg.threshold), device=str(cfg.device),
                           max_pixels=checked_max_pixels(cfg.max_pixels), fast=bool(cfg.fast))
    for r in results:
        others = ", ".join(f"{m['identity']} {m['score']:.3f}" for m in r["matches"][1:])
        print(f"{r['query']}: {r['identity']} ({r['score']:.3f})" + (f"  | next: {others}" if others else ""))
    if cfg.picture:
        refuse_overwrite(cfg.picture, [m["source"] for r in results for m in r["matches"] if m["source"]], "picture")
        print(f"picture: {save_search_picture(results, cfg.picture)}")
    if cfg.output:  # atomically: a killed search never leaves a half-written results file
        write_json(cfg.output, results, indent=2)
