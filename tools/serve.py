"""Serve models over HTTP: detection, embeddings, face search and geolocation, and a web page.

Run as python tools/serve.py key=value ... or mnet-serve; the tool is mnet_vision/cli/serve.py,
its defaults conf/serve.yaml.
"""
from mnet_vision.cli.serve import main

if __name__ == "__main__":
    main()
