"""Draw the all-vs-all ROC curves of several embedding runs in one picture (teacher beside student).

    python tools/roc.py out=docs/faces_roc.png curves="{teacher:outputs/demo/faces_teacher/embeddings_test.pt,\
student:outputs/demo/faces_student/embeddings_test.pt}"

curves maps each curve's label (it may hold spaces: {teacher 1.0:a.pt}) to an embeddings_test.pt
that a test run writes (tools/train.py or tools/eval.py). Keys: conf/roc.yaml.
"""
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from mnet_vision.checkpoints import load_file
from mnet_vision.config import CONF_DIR
from mnet_vision.metrics.verification import all_pairs, roc_points
from mnet_vision.viz.verification import save_roc_curve

USAGE = "usage: python tools/roc.py out=PNG curves={NAME:embeddings_test.pt,NAME:embeddings_test.pt,...}"


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="roc")
def main(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "out") or OmegaConf.is_missing(cfg, "curves") or not cfg.curves:
        sys.exit(USAGE)
    curves = {}
    for name, path in cfg.curves.items():
        data = load_file(path)
        scores, issame = all_pairs(data["embeddings"].numpy(), data["labels"].numpy())
        if issame.all() or not issame.any():  # the ROC needs both kinds of pair (else NaN rates: no curve)
            sys.exit(f"{name}={path}: {len(issame)} pairs, {int(issame.sum())} genuine: an ROC needs "
                     "genuine and impostor pairs (two or more identities, one with two or more images)")
        curves[str(name)] = roc_points(scores, issame)
    print(f"ROC curves written to {save_roc_curve(curves=curves, path=cfg.out)}")
