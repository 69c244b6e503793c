"""Evaluate a checkpoint, or score a COCO results file against its ground truth.

Run as python tools/eval.py key=value ... or mnet-eval; the tool is mnet_vision/cli/eval.py,
its defaults conf/eval.yaml.
"""
from mnet_vision.cli.eval import main

if __name__ == "__main__":
    main()
