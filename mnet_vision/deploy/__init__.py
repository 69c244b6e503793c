"""Running exported models with ONNX Runtime, numpy, OpenCV and Pillow alone: nothing here imports torch
(tested in a process where importing torch fails). The export itself is :mod:`mnet_vision.inference.export`."""
