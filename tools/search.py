"""Search a face index with images (embedded with the gallery's checkpoint) or a .npy of embeddings.

Run as python tools/search.py key=value ... or mnet-search; the tool is mnet_vision/cli/search.py,
its defaults conf/search.yaml.
"""
from mnet_vision.cli.search import main

if __name__ == "__main__":
    main()
