"""Batch prediction over photo collections on Lightning's ``Trainer.predict``: embeddings, detections,
attribute scores or geolocations of every photo of a folder tree, a list or a COCO json, written as
resumable shards by a prediction writer, on one process or many through Lightning's strategies
(``tools/predict.py``, docs/predict.md).

- :mod:`~mnet_vision.predict.sources`: the photos of an input, in a fixed order, and their chunks;
- :mod:`~mnet_vision.predict.predictors`: one predictor per kind over the inference objects;
- :mod:`~mnet_vision.predict.shards`: the shard format (written, read, checked) and the summary;
- :mod:`~mnet_vision.predict.lightning`: the DataModule of pending chunks, the LightningModule, the writer;
- :mod:`~mnet_vision.predict.run`: :func:`~mnet_vision.predict.run.predict_photos`, what the tool runs.
"""
