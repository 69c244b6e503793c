"""Run a detection checkpoint on an image or a folder: a JSON of boxes and PNGs with boxes drawn.

    python tools/detect.py ckpt=outputs/shapes_ssd/<time>/checkpoints/best-epoch019.ckpt \
        input=data/synthetic_shapes_detection/test2017 out=detections score=0.3
    python tools/detect.py pretrained=faceapi_ssd input=photos/ out=faces score=0.5   # no training

Keys and defaults: conf/detect.yaml (ckpt or pretrained: a name of mnet_vision.pretrained.models.PRETRAINED,
fetched into the cache on first use; input: a file or folder, out, score, batch, draw, device,
max_pixels, fast: BatchNorm folded and channels_last by default, false runs the model as trained,
boxes equal within 1e-4). out must not be (or lie inside) the input folder. ckpt may be an exported
.onnx (tools/export.py): run by ONNX Runtime without torch in the model's path, the same detections
(boxes within 1e-3 px, scores within 1e-4); fast and device do not apply to it.
"""
import hydra
from omegaconf import DictConfig

from mnet_vision.cli import skipped_note
from mnet_vision.config import CONF_DIR
from mnet_vision.images import checked_max_pixels
from mnet_vision.inference.detect import detect_files
from mnet_vision.pretrained.models import load_pretrained


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="detect")
def main(cfg: DictConfig) -> None:
    if (cfg.ckpt is None) == (cfg.pretrained is None):
        raise SystemExit("detect: give ckpt=<checkpoint> or pretrained=<name> (e.g. pretrained=faceapi_ssd), not both")
    model = cfg.ckpt if cfg.pretrained is None else load_pretrained(str(cfg.pretrained), fast=bool(cfg.fast),
                                                                    device=str(cfg.device))
    summary = detect_files(ckpt=model, source=cfg.input, out_dir=cfg.out, score_thresh=float(cfg.score),
                           batch_size=int(cfg.batch), draw=bool(cfg.draw), device=str(cfg.device),
                           max_pixels=checked_max_pixels(cfg.max_pixels), fast=bool(cfg.fast))
    print(f"{summary['detections']} detections in {summary['images']} images -> {summary['json']}"
          + skipped_note(summary["skipped"]))
