"""Embed a face gallery with a checkpoint into a faiss index (one file: the faiss index, then its id ->
identity map).

    python tools/build_index.py ckpt=outputs/faces_student/<time>/checkpoints/last.ckpt \
        gallery=data/synthetic_identities/test out=faces.faiss [factory=auto] [add=false]

Keys and defaults: conf/build_index.yaml. gallery: a folder of identity folders
(<gallery>/<identity>/*.jpg) or a list file of path[,identity] lines. factory: a faiss factory string
(IDMap2,Flat; IDMap2,HNSW32,Flat; IVF1024,Flat; IVF4096,PQ32) or auto (by gallery size). add=true
appends to the index at out; two appends at once both land (writers take turns on out.lock, and a
writer that waits too long fails naming the index). Also batch, device, max_pixels (larger images are
skipped and counted; null: no limit), fast (BatchNorm folded, channels_last; false embeds with the
model as trained, equal within 1e-4). ckpt may be an exported .onnx (tools/export.py), run by ONNX
Runtime: embeddings within 1e-4 of the checkpoint's.
"""
import hydra
from omegaconf import DictConfig

from mnet_vision.cli import skipped_note
from mnet_vision.config import CONF_DIR
from mnet_vision.images import checked_max_pixels
from mnet_vision.inference.search import build_index


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="build_index")
def main(cfg: DictConfig) -> None:
    summary = build_index(ckpt=cfg.ckpt, gallery=cfg.gallery, out=cfg.out, factory=str(cfg.factory),
                          add=bool(cfg.add), batch_size=int(cfg.batch), device=str(cfg.device),
                          max_pixels=checked_max_pixels(cfg.max_pixels), fast=bool(cfg.fast))
    print(f"{summary['index']}: {summary['total']} faces ({summary['added']} added, "
          f"{summary['images_per_second']:.0f} images/s), index {summary['factory']}"
          + skipped_note(summary["skipped"]))
