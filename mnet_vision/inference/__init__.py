"""Running trained models without Lightning: one loader (:mod:`~mnet_vision.inference.load`) and
what the tools serve with it, BatchNorm folded and channels_last by default
(:mod:`~mnet_vision.inference.fuse`).

- :mod:`~mnet_vision.inference.detect`: boxes in image files (``tools/detect.py``)
- :mod:`~mnet_vision.inference.embed`: embeddings of image files
- :mod:`~mnet_vision.inference.geolocate`: earth cells of photos (``tools/geolocate.py``)
- :mod:`~mnet_vision.inference.search`: face galleries into an index, and queries (``tools/build_index.py``,
  ``tools/search.py``)
- :mod:`~mnet_vision.inference.dump_teacher`: a teacher's outputs stored for distillation (``tools/dump_teacher.py``)

Importing any of them imports no ``lightning`` (tested); only ``dump_teacher`` builds a DataModule,
at call time, to read the split it dumps.
"""
from mnet_vision.inference.fuse import fold_batchnorm, prepare_for_inference
from mnet_vision.inference.load import LoadedModel, ModelMeta, eval_transform, load_model

__all__ = ["LoadedModel", "ModelMeta", "eval_transform", "fold_batchnorm", "load_model", "prepare_for_inference"]
