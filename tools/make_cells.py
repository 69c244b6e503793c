"""Build PlaNet-style adaptive S2 cell partitions from a geotagged photo list.

Run as python tools/make_cells.py key=value ... or mnet-make-cells; the tool is mnet_vision/cli/make_cells.py,
its defaults conf/make_cells.yaml.
"""
from mnet_vision.cli.make_cells import main

if __name__ == "__main__":
    main()
