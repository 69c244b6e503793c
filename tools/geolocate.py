"""Where was this photo taken? Top-k earth cells with probabilities and a predicted point per photo.

Run as python tools/geolocate.py key=value ... or mnet-geolocate; the tool is mnet_vision/cli/geolocate.py,
its defaults conf/geolocate.yaml.
"""
from mnet_vision.cli.geolocate import main

if __name__ == "__main__":
    main()
