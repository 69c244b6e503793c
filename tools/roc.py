"""Draw the all-vs-all ROC curves of several embedding runs in one picture (teacher beside student).

Run as python tools/roc.py key=value ... or mnet-roc; the tool is mnet_vision/cli/roc.py, its defaults conf/roc.yaml.
"""
from mnet_vision.cli.roc import main

if __name__ == "__main__":
    main()
