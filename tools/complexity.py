"""Mult-Adds and parameters of any task config, as the MobileNets paper counts them.

Run as python tools/complexity.py key=value ... or mnet-complexity; the tool is mnet_vision/cli/complexity.py,
its defaults conf/complexity.yaml.
"""
from mnet_vision.cli.complexity import main

if __name__ == "__main__":
    main()
