"""Faces end to end: alignment from 68 landmarks (:mod:`mnet_vision.faces.align`) and the photo-to-faces
pipeline, detect -> landmarks -> align -> describe (:mod:`mnet_vision.faces.pipeline`)."""
