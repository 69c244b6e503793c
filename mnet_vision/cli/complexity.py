"""Mult-Adds and parameters of any task config, as the MobileNets paper counts them.

    python tools/complexity.py experiment=imagenet backbone.alpha=0.5 task.input_size=160
    python tools/complexity.py experiment=imagenet backbone.alpha=0.5 task.input_size=160 output=json

The run config is conf/train.yaml's with the same overrides (conf/complexity.yaml adds output=table|json).
"""
import json

import hydra
from omegaconf import DictConfig

from mnet_vision.complexity import count_complexity
from mnet_vision.config import CONF_DIR
from mnet_vision.model import build_model


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="complexity")
def main(cfg: DictConfig) -> None:
    result = count_complexity(model=build_model(cfg), input_size=cfg.task.input_size)
    if cfg.output == "json":
        print(json.dumps(result.to_dict()))
    elif cfg.output == "table":
        print(result.table())
    else:
        raise SystemExit(f"output must be 'table' or 'json', got {cfg.output!r}")
