"""CPU benchmarks (inference; training too for detection and attributes), peers side by side in the same run.

Run as python tools/benchmark.py key=value ... or mnet-benchmark; the tool is mnet_vision/cli/benchmark.py,
its defaults conf/benchmark.yaml.
"""
from mnet_vision.cli.benchmark import main

if __name__ == "__main__":
    main()
