"""Export a checkpoint (or a pretrained model) to ONNX, checked against PyTorch before it is written.

Run as python tools/export.py key=value ... or mnet-export; the tool is mnet_vision/cli/export.py,
its defaults conf/export.yaml.
"""
from mnet_vision.cli.export import main

if __name__ == "__main__":
    main()
