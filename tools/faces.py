"""Faces in photos: index every face of a set of photos, search the index with photos, cluster it.

Run as python tools/faces.py index|search|cluster key=value ... or mnet-faces; the tool is
mnet_vision/cli/faces.py, its defaults conf/faces.yaml.
"""
from mnet_vision.cli.faces import main

if __name__ == "__main__":
    main()
