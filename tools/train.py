"""Train a task: python tools/train.py experiment=imagenet backbone.alpha=0.5 task.input_size=160

Run as python tools/train.py key=value ... or mnet-train; the tool is mnet_vision/cli/train.py,
its config conf/train.yaml.
"""
from mnet_vision.cli.train import main

if __name__ == "__main__":
    main()
