"""Train a task: python tools/train.py experiment=imagenet backbone.alpha=0.5 task.input_size=160

Multirun: python tools/train.py -m backbone.alpha=1.0,0.75,0.5,0.25

The config is conf/train.yaml and its groups (its comments say how they combine).
"""
import hydra
from omegaconf import DictConfig

from mnet_vision.config import CONF_DIR
from mnet_vision.training import train
from mnet_vision.training.report import print_metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    print_metrics(train(cfg))
