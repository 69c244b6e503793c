"""Run a teacher checkpoint once over a split of its data and store its outputs by sample id, so a
distillation run never runs the teacher again (distill/teacher=stored).

    python tools/dump_teacher.py ckpt=outputs/faces_teacher/<time>/checkpoints/last.ckpt out=teacher_train.pt
    python tools/train.py experiment=facenet_distill distill/teacher=stored distill.teacher.path=teacher_train.pt

Keys and defaults: conf/dump_teacher.yaml (ckpt, out, split, device, fast: false by default, these
are training targets, as the model was evaluated; true folds BatchNorm, outputs equal within 1e-4).
Every data.* key given (data.root=...) overrides the data config stored in the checkpoint: the
outputs must be made on the student's training images.
"""
import hydra
from omegaconf import DictConfig

from mnet_vision.cli.overrides import command_line_overrides
from mnet_vision.config import CONF_DIR
from mnet_vision.inference.dump_teacher import dump_teacher_outputs

OWN = ("ckpt", "out", "split", "device", "fast")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="dump_teacher")
def main(cfg: DictConfig) -> None:
    path = dump_teacher_outputs(ckpt=cfg.ckpt, out=cfg.out, split=str(cfg.split),
                                overrides=command_line_overrides(cfg, OWN), device=str(cfg.device), fast=bool(cfg.fast))
    print(f"teacher outputs written to {path}")
