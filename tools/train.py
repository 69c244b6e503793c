"""Train a task: python tools/train.py experiment=imagenet backbone.alpha=0.5 task.input_size=160

Multirun: python tools/train.py -m backbone.alpha=1.0,0.75,0.5,0.25
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import hydra
from omegaconf import DictConfig

from mnet_vision.training.report import print_metrics
from mnet_vision.training import train


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    print_metrics(train(cfg))


if __name__ == "__main__":
    main()
