"""Where was this photo taken? Top-k earth cells with probabilities and a predicted point per photo.

    python tools/geolocate.py ckpt=outputs/planet/<time>/checkpoints/best-epoch009.ckpt \
        input=data/synthetic_geo/test/000000.png out=geolocated draw=true
    python tools/geolocate.py ckpt=... input=data/synthetic_geo/test.csv out=geolocated   # scored in km

Keys and defaults: conf/geolocate.yaml (ckpt, input: an image, a folder, or a path,lat,lon CSV whose
photos are then scored; out, top_k, draw: a map PNG per photo, batch, device, images: the CSV's image
root, cells: the partition files, coarsest first, to check against the checkpoint's, which holds its
cells; crops: 1, or 5 for TIB's test protocol; max_pixels; fast: BatchNorm folded and channels_last by
default, probabilities equal within 1e-4 of the model as trained). out must not be (or lie inside) a
folder of the photos; maps are named after the whole file name (photo.jpg -> photo.jpg.png). ckpt may
be an exported .onnx (tools/export.py), run by ONNX Runtime: the same top-k cells, probabilities
within 1e-4 (its cells are in its metadata; cells= are checked against them).
"""
import hydra
from omegaconf import DictConfig, OmegaConf

from mnet_vision.cli import skipped_note
from mnet_vision.config import CONF_DIR
from mnet_vision.images import checked_max_pixels
from mnet_vision.inference.geolocate import geolocate_files


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="geolocate")
def main(cfg: DictConfig) -> None:
    cells = cfg.cells if cfg.cells is None or isinstance(cfg.cells, str) else OmegaConf.to_container(cfg.cells)
    summary = geolocate_files(ckpt=cfg.ckpt, source=cfg.input, out_dir=cfg.out, top_k=int(cfg.top_k),
                              batch_size=int(cfg.batch), draw=bool(cfg.draw), device=str(cfg.device),
                              partitions=[cells] if isinstance(cells, str) else cells, images=cfg.images,
                              crops=int(cfg.crops), max_pixels=checked_max_pixels(cfg.max_pixels), fast=bool(cfg.fast))
    print(f"{summary['photos']} photos located ({summary['photos_per_second']:.0f} photos/s) -> {summary['json']}"
          + skipped_note(summary["skipped"]))
    if "table" in summary:
        print(summary["table"])
