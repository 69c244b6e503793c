"""Batch prediction over a photo collection (embeddings, detections, attributes, geolocation) on
Lightning's Trainer.predict: resumable shards, one process or many (trainer=ddp).

Run as python tools/predict.py key=value ... or mnet-predict; the tool is mnet_vision/cli/predict.py,
its defaults conf/predict.yaml.
"""
from mnet_vision.cli.predict import main

if __name__ == "__main__":
    main()
