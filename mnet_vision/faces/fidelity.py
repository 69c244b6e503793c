"""How faithfully a student embedding reproduces its teacher's on the same faces.

Given the student's and the teacher's embeddings of the same ``N`` faces (row ``i`` of both is face
``i``), :func:`embedding_fidelity` measures

- **cosine** between the student's and the teacher's embedding of each face (the student was trained
  in the teacher's space, so the two are compared directly; per face, then mean and min);
- **verification agreement**: over all ``N (N - 1) / 2`` pairs, the share on which the student's
  same/different decision (Euclidean distance at or below its threshold) equals the teacher's (at
  its own threshold: 0.6 for face-api's descriptor). The student's threshold is calibrated
  (:func:`calibrated_threshold`) on faces other than the measured ones, so it is not fitted to them;
- **nearest-neighbour agreement**: for each face, whether the teacher's nearest other face is among
  the student's ``k`` nearest (recall@k against the teacher's ranking; @1: the same nearest neighbour).

Distances are Euclidean on the embeddings as given: a unit-vector student compared with a raw
descriptor agrees on rankings and, through its calibrated threshold, on decisions, whatever the scale.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mnet_vision.faces.pipeline import FacePipeline
from mnet_vision.images import read_rgb
from mnet_vision.inference.load import LoadedModel
from mnet_vision.pretrained.faceapi_input import faceapi_net_input

#: face-api's usual same-person threshold on the Euclidean distance of its descriptors.
FACEAPI_THRESHOLD = 0.6


@dataclass(frozen=True)
class Fidelity:
    """:func:`embedding_fidelity`'s figures: ``faces`` measured, ``pairs`` of them; cosine per face (mean,
    min); ``verification`` agreement over the pairs at ``teacher_threshold`` / ``student_threshold``,
    with how many pairs each side calls the same person (``teacher_same``, ``student_same``); ``nn``:
    ``{k: recall@k}`` of the teacher's nearest neighbour among the student's ``k`` nearest."""

    faces: int
    pairs: int
    cosine_mean: float
    cosine_min: float
    verification: float
    teacher_threshold: float
    student_threshold: float
    teacher_same: int
    student_same: int
    nn: dict[int, float]

    def as_dict(self) -> dict:
        return asdict(self)


def _matrix(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.ndim != 2 or len(x) < 2 or not np.isfinite(x).all():
        raise ValueError(f"{name}: expected finite (N, D) embeddings of N >= 2 faces, got shape {x.shape}"
                         + ("" if np.isfinite(x).all() else " holding NaN or infinite values"))
    return x.astype(np.float64)


def pairwise_distances(x: np.ndarray) -> np.ndarray:
    """``(N, D)`` -> ``(N, N)`` Euclidean distances."""
    squared = (x * x).sum(1)
    return np.sqrt(np.clip(squared[:, None] + squared[None, :] - 2 * x @ x.T, 0.0, None))


def pair_distances(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """``(N, D)`` -> ``(N (N - 1) / 2,)`` Euclidean distances of every pair ``i < j``, row by row."""
    return _pair_values(pairwise_distances(_matrix(x, "embeddings")))


def _pair_values(distances: np.ndarray) -> np.ndarray:
    rows, cols = np.triu_indices(len(distances), k=1)
    return distances[rows, cols]


def calibrated_threshold(student: np.ndarray | torch.Tensor, teacher: np.ndarray | torch.Tensor,
                         teacher_threshold: float = FACEAPI_THRESHOLD) -> float:
    """The student's distance threshold that calls as many pairs of these faces the same person as the
    teacher does at ``teacher_threshold`` (matching the two distance distributions at that quantile):
    the midpoint between the student's ``m``-th and ``m + 1``-th smallest pair distance, where ``m``
    pairs lie at or below the teacher's threshold. Use faces other than the measured ones."""
    s = _pair_values(pairwise_distances(_matrix(student, "student")))
    t = _pair_values(pairwise_distances(_matrix(teacher, "teacher")))
    if len(s) != len(t):
        raise ValueError(f"calibrated_threshold: {len(s)} student pairs but {len(t)} teacher pairs: the same faces "
                         "must be embedded by both")
    same = int((t <= teacher_threshold).sum())
    ordered = np.sort(s)
    if same == 0:
        return float(ordered[0] / 2)
    if same == len(ordered):
        return float(ordered[-1] * 1.5)
    return float((ordered[same - 1] + ordered[same]) / 2)


def embedding_fidelity(student: np.ndarray | torch.Tensor, teacher: np.ndarray | torch.Tensor,
                       student_threshold: float, teacher_threshold: float = FACEAPI_THRESHOLD,
                       ks: Sequence[int] = (1, 5)) -> Fidelity:
    """The student's fidelity to the teacher on the same ``N`` faces (``(N, D)`` each, row ``i`` face ``i``);
    see the module docstring. ``ks`` above ``N - 1`` are capped at it (every other face)."""
    s, t = _matrix(student, "student"), _matrix(teacher, "teacher")
    if s.shape != t.shape:
        raise ValueError(f"embedding_fidelity: student embeddings {s.shape} and teacher embeddings {t.shape} differ; "
                         "the same faces, in the same space (project the student to the teacher's size first)")
    n = len(s)
    cosine = (s * t).sum(1) / np.maximum(np.linalg.norm(s, axis=1) * np.linalg.norm(t, axis=1), 1e-12)
    ds, dt = pairwise_distances(s), pairwise_distances(t)
    student_same, teacher_same = _pair_values(ds) <= student_threshold, _pair_values(dt) <= teacher_threshold
    np.fill_diagonal(ds, np.inf)
    np.fill_diagonal(dt, np.inf)
    teacher_nn = dt.argmin(1)
    student_order = np.argsort(ds, axis=1, kind="stable")
    nn = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"embedding_fidelity: ks must be >= 1, got {list(ks)}")
        top = student_order[:, :min(k, n - 1)]
        nn[int(k)] = float((top == teacher_nn[:, None]).any(1).mean())
    return Fidelity(faces=n, pairs=len(student_same), cosine_mean=float(cosine.mean()), cosine_min=float(cosine.min()),
                    verification=float((student_same == teacher_same).mean()),
                    teacher_threshold=float(teacher_threshold), student_threshold=float(student_threshold),
                    teacher_same=int(teacher_same.sum()), student_same=int(student_same.sum()), nn=nn)


def constant_cosine(teacher: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """``(mean, min)`` cosine to ``teacher``'s ``(N, D)`` embeddings of a student that answers every face with
    the mean of the teacher's ``reference`` embeddings (other faces): the floor a cosine figure must clear
    to show more than the direction all faces share (face descriptors are far from zero-mean)."""
    t, mean = _matrix(teacher, "teacher"), _matrix(reference, "reference").mean(0)
    cosine = t @ mean / np.maximum(np.linalg.norm(t, axis=1) * np.linalg.norm(mean), 1e-12)
    return float(cosine.mean()), float(cosine.min())


def student_embeddings(loaded: LoadedModel, crops: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
    """``(N, D)`` embeddings by one of our embedding checkpoints of ``N`` uint8 RGB face crops, through the
    checkpoint's own evaluation transform (resize to its input size, its normalisation)."""
    transform = loaded.meta.eval_transform()
    out = []
    for start in range(0, len(crops), batch_size):
        chunk = crops[start:start + batch_size]
        batch = torch.stack([transform(image=np.ascontiguousarray(c))["image"] for c in chunk])
        with torch.inference_mode():
            out.append(loaded.model(loaded.inputs(batch)).float().cpu().numpy())
    return np.concatenate(out)


@dataclass
class FaceCrops:
    """Faces to measure on: a ``name`` per face, its uint8 RGB ``crop`` (what the describer sees) and the
    teacher's ``(N, D)`` embeddings of them."""

    names: list[str]
    crops: list[np.ndarray]
    teacher: np.ndarray


def photo_face_crops(pipeline: FacePipeline, paths: Sequence[str | Path], progress: bool = True) -> FaceCrops:
    """Every face of ``paths`` as ``pipeline`` aligns and describes it (``<photo stem>#<k>``); an unreadable
    photo is a ``ValueError`` naming it (the measured set must be the one asked for)."""
    photos, unreadable = pipeline.run_files(list(paths), progress=progress)
    if unreadable:
        raise ValueError(f"photo_face_crops: {len(unreadable)} photo(s) unreadable: {unreadable}")
    names, crops, embeddings = [], [], []
    for photo in photos:
        for k, face in enumerate(photo.faces):
            names.append(f"{Path(photo.photo).stem}#{k}")
            crops.append(face.aligned)
            embeddings.append(face.embedding)
    if len(names) < 2:
        raise ValueError(f"photo_face_crops: {len(names)} face(s) found in {len(photos)} photo(s); fidelity needs "
                         "2 or more")
    return FaceCrops(names, crops, np.stack(embeddings))


def crop_file_faces(paths: Sequence[str | Path], teacher: LoadedModel, batch_size: int = 32,
                    progress: bool = True) -> FaceCrops:
    """Face crops already cut (image files, e.g. training views for :func:`calibrated_threshold`), described
    by face-api's ``teacher`` net through its own input pipeline (pad to square, its legacy resize)."""
    paths = [str(p) for p in paths]
    crops = [read_rgb(p) for p in tqdm(paths, desc="crops", unit="img", disable=not progress)]
    size, out = int(teacher.meta.input_size), []
    for start in range(0, len(crops), batch_size):
        batch = torch.stack([faceapi_net_input(c, size) for c in crops[start:start + batch_size]])
        with torch.inference_mode():
            out.append(teacher.model(teacher.inputs(batch)).float().cpu().numpy())
    return FaceCrops(paths, crops, np.concatenate(out))


def checkpoint_fidelity(student: LoadedModel, measured: FaceCrops, calibration: FaceCrops,
                        teacher_threshold: float = FACEAPI_THRESHOLD, ks: Sequence[int] = (1, 5)) -> Fidelity:
    """:func:`embedding_fidelity` of ``student`` (one of our embedding checkpoints) on the ``measured``
    faces, its threshold calibrated on the ``calibration`` faces (others than the measured ones)."""
    threshold = calibrated_threshold(student_embeddings(student, calibration.crops), calibration.teacher,
                                     teacher_threshold)
    return embedding_fidelity(student_embeddings(student, measured.crops), measured.teacher, threshold,
                              teacher_threshold, ks)
