"""Mult-Adds and parameters of any task config, as the MobileNets paper counts them.

    python tools/profile.py task=imagenet backbone.alpha=0.5 task.input_size=160
    python tools/profile.py task=imagenet backbone.alpha=0.5 task.input_size=160 output=json
"""
import os
import sys

# This file is named profile.py (the CLI name), which shadows the standard library's
# `profile` module that torch imports through cProfile; drop the script's folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import json  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from mnet_vision.complexity import count_complexity  # noqa: E402
from mnet_vision.model import build_model  # noqa: E402


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
