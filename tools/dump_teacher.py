"""Run a teacher checkpoint once over a split of its data and store its outputs by sample id, so a

Run as python tools/dump_teacher.py key=value ... or mnet-dump-teacher; the tool is mnet_vision/cli/dump_teacher.py,
its defaults conf/dump_teacher.yaml.
"""
from mnet_vision.cli.dump_teacher import main

if __name__ == "__main__":
    main()
