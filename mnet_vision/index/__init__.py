"""Face search: a faiss inner-product index over L2-normalised embeddings, with ids and metadata,
stored as one file and written under a writer lock (see :mod:`mnet_vision.index.face_index`)."""
from mnet_vision.index.face_index import FaceIndex, IndexLockTimeout, Match, writer_lock

__all__ = ["FaceIndex", "IndexLockTimeout", "Match", "writer_lock"]
