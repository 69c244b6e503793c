"""TensorFlow.js model files: reading a weights manifest and its shards exactly as tfjs-core does
(:mod:`~mnet_vision.tfjs.weights`), and mapping the TF Object Detection API's ``ssd_mobilenet_v1``
names onto our modules (:mod:`~mnet_vision.tfjs.ssd_mobilenet_v1`). numpy only: no TF, no Node."""
