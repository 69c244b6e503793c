"""Run a detection checkpoint on an image or a folder: a JSON of boxes and PNGs with boxes drawn.

Run as python tools/detect.py key=value ... or mnet-detect; the tool is mnet_vision/cli/detect.py,
its defaults conf/detect.yaml.
"""
from mnet_vision.cli.detect import main

if __name__ == "__main__":
    main()
