"""Fidelity of distilled students to face-api's descriptor on real held-out faces (cosine, same/different
agreement, nearest neighbours), as a table.

Run as python tools/face_fidelity.py key=value ...; the tool is mnet_vision/cli/face_fidelity.py, its defaults
conf/face_fidelity.yaml.
"""
from mnet_vision.cli.face_fidelity import main

if __name__ == "__main__":
    main()
