"""Mult-Adds and parameters of any task config, as the MobileNets paper counts them.

    python tools/profile.py experiment=imagenet backbone.alpha=0.5 task.input_size=160
    python tools/profile.py experiment=imagenet backbone.alpha=0.5 task.input_size=160 output=json
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import json

import hydra
from omegaconf import DictConfig

from mnet_vision.complexity import count_complexity
from mnet_vision.model import build_model


@hydra.main(version_base="1.3", config_path="../conf", config_name="profile")
def main(cfg: DictConfig) -> None:
    result = count_complexity(build_model(cfg), cfg.task.input_size)
    if cfg.output == "json":
        print(json.dumps(result.to_dict()))
    elif cfg.output == "table":
        print(result.table())
    else:
        raise SystemExit(f"output must be 'table' or 'json', got {cfg.output!r}")


if __name__ == "__main__":
    main()
