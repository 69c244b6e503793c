"""Running exported models with ONNX Runtime, numpy and Pillow alone: no torch is imported here
(``pip install mnet_vision[deploy]``). The export itself is :mod:`mnet_vision.inference.export`."""
