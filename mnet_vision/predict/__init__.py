"""Batch prediction over photo collections on Lightning's ``Trainer.predict``: embeddings, detections,
attribute scores or geolocations of every photo of a folder tree, a list or a COCO json, written as
resumable shards by a prediction writer, on one process or many through Lightning's strategies
(``tools/predict.py``, docs/predict.md).

- :mod:`~mnet_vision.predict.sources`: the photos of an input, in a fixed order, and their chunks;
- :mod:`~mnet_vision.predict.predictors`: one predictor per kind over the inference objects;
- :mod:`~mnet_vision.predict.shards`: the shard format (written, read, checked) and the summary;
- :mod:`~mnet_vision.predict.chunks`: the DataModule of the pending chunks, in parts of ``batch`` photos;
- :mod:`~mnet_vision.predict.module`: the LightningModule (a predictor per process, one part per step);
- :mod:`~mnet_vision.predict.writer`: the prediction writer (a shard per chunk, the summary at the end);
- :mod:`~mnet_vision.predict.run`: :func:`~mnet_vision.predict.run.predict_photos`, what the tool runs.
"""
