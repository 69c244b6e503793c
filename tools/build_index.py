"""Embed a face gallery with a checkpoint into a faiss index (one file: the faiss index, then its id ->

Run as python tools/build_index.py key=value ... or mnet-build-index; the tool is mnet_vision/cli/build_index.py,
its defaults conf/build_index.yaml.
"""
from mnet_vision.cli.build_index import main

if __name__ == "__main__":
    main()
