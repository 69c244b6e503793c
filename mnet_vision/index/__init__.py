"""Face search: a faiss inner-product index over L2-normalised embeddings, with ids and metadata."""
from mnet_vision.index.face_index import FaceIndex, Match

__all__ = ["FaceIndex", "Match"]
