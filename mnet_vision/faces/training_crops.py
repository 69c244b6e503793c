"""Training faces for distilling a face descriptor: augmented views of real faces, cut from their photos
the way the describer sees them, written in the identity-folder layout that
:class:`mnet_vision.data.identities.IdentityFolderDataModule` reads.

Each face found by a :class:`~mnet_vision.faces.pipeline.FacePipeline` becomes one identity folder,
``<root>/<split>/<photo stem>_face<k>/<n>.png``, of ``variants`` views: face-api's dlib-aligned box
(what its descriptor describes) moved by a random similarity (scale, rotation, shift) and cut from the
photo itself, so a view shows the real surroundings where a crop of a crop would show black, then a
random horizontal flip and colour jitter. :func:`link_identities` adds the folders of another identity
set (the synthetic identities) beside them by symbolic links, so one data root mixes both.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from mnet_vision.faces.align import faceapi_aligned_box
from mnet_vision.faces.pipeline import Face, FacePipeline
from mnet_vision.images import readable_chunks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Jitter:
    """The random similarity moving a face's box: ``scale`` in ``[1 - scale, 1 + scale]`` of its side,
    ``rotate`` degrees either way, ``shift`` fractions of its side either way, flipped with ``flip``'s
    probability; colour jitter of ``color`` (brightness, contrast, saturation) and a ``hue`` of at most."""

    scale: float = 0.1
    rotate: float = 10.0
    shift: float = 0.06
    flip: float = 0.5
    color: float = 0.3
    hue: float = 0.03


@dataclass
class PhotoFace:
    """One face to augment: its ``photo``, its index ``k`` there, the photo's pixels ``rgb`` (H, W, 3) uint8
    and face-api's aligned box ``box`` (x, y, w, h) integer pixels."""

    photo: str
    k: int
    rgb: np.ndarray
    box: tuple[int, int, int, int]

    @property
    def identity(self) -> str:
        return f"{Path(self.photo).stem}_face{self.k}"


def described_faces(pipeline: FacePipeline, paths: Sequence[str | Path], box: str = "dlib", progress: bool = True
                    ) -> Iterator[tuple[PhotoFace, Face]]:
    """Every face of ``paths`` as ``(PhotoFace`` with face-api's ``box`` (``"dlib"``: what its descriptor
    crops; ``"min_bbox"``: what its attribute nets crop), ``Face)``, those whose box has pixels in the photo;
    unreadable photos are logged and counted (:func:`mnet_vision.images.readable_chunks`), not fatal."""
    unreadable: list[str] = []
    for chunk in readable_chunks([Path(p) for p in paths], 1, unreadable, "faces" if progress else None):
        for path, rgb in chunk:
            for k, face in enumerate(pipeline.describe_photo(rgb, str(path)).faces):
                aligned = faceapi_aligned_box(face.landmarks, rgb.shape[1], rgb.shape[0], box)
                if aligned[2] > 0 and aligned[3] > 0:
                    yield PhotoFace(str(path), k, rgb, aligned), face


def photo_faces(pipeline: FacePipeline, paths: Sequence[str | Path], progress: bool = True) -> list[PhotoFace]:
    """Every face of ``paths`` as :class:`PhotoFace` with face-api's descriptor box (:func:`described_faces`)."""
    return [photo_face for photo_face, _ in described_faces(pipeline, paths, "dlib", progress)]


def augmented_view(face: PhotoFace, size: int, jitter: Jitter, rng: np.random.Generator) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 view of ``face``: its box moved by a random similarity of ``jitter``,
    cut from the photo (outside it: the edge pixels repeated), flipped and colour-jittered."""
    x, y, w, h = face.box
    side = max(w, h) * (1 + rng.uniform(-jitter.scale, jitter.scale))
    cx = x + w / 2 + rng.uniform(-jitter.shift, jitter.shift) * side
    cy = y + h / 2 + rng.uniform(-jitter.shift, jitter.shift) * side
    # the photo's (cx, cy) to the view's centre, side -> size pixels, turned by the angle
    matrix = cv2.getRotationMatrix2D((cx, cy), rng.uniform(-jitter.rotate, jitter.rotate), size / side)
    matrix[:, 2] += (size / 2 - cx, size / 2 - cy)
    view = cv2.warpAffine(face.rgb, matrix, (size, size), flags=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < jitter.flip:
        view = view[:, ::-1]
    color = A.ColorJitter(brightness=jitter.color, contrast=jitter.color, saturation=jitter.color, hue=jitter.hue,
                          p=1.0)
    color.set_random_seed(int(rng.integers(2**31)))
    return color(image=np.ascontiguousarray(view))["image"]


def write_training_crops(faces: Sequence[PhotoFace], root: str | Path, split: str = "train", variants: int = 100,
                         size: int = 160, seed: int = 0, jitter: Jitter = Jitter(), progress: bool = True) -> int:
    """Write ``variants`` augmented views (:func:`augmented_view`, ``size`` px PNGs) of every face into
    ``<root>/<split>/<identity>/<n>.png``; returns how many were written. Seeded: the same call writes the
    same files."""
    if variants < 1 or size < 8:
        raise ValueError(f"write_training_crops: variants={variants} must be >= 1 and size={size} >= 8 pixels")
    rng = np.random.default_rng(seed)
    written = 0
    for face in tqdm(faces, desc="augmenting", unit="face", disable=not progress):
        folder = Path(root) / split / face.identity
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(variants):
            Image.fromarray(augmented_view(face, size, jitter, rng)).save(folder / f"{n:04d}.png")
            written += 1
    return written


def link_identities(source_split: str | Path, target_split: str | Path, prefix: str = "", limit: int | None = None
                    ) -> int:
    """Symbolic links ``<target_split>/<prefix><identity>`` to the first ``limit`` (all: None) identity
    folders of ``source_split``, names sorted (an existing link is kept); returns how many are linked.
    Batches draw identities alike, so ``limit`` sets the mix: 6 real faces beside 6 linked identities
    fill half of every batch with real faces."""
    source = Path(source_split).resolve()
    identities = sorted(p for p in source.iterdir() if p.is_dir())[:limit] if source.is_dir() else []
    if not identities:
        raise FileNotFoundError(f"{source_split} holds no identity folders to link")
    target = Path(target_split)
    target.mkdir(parents=True, exist_ok=True)
    for folder in identities:
        link = target / f"{prefix}{folder.name}"
        if not link.exists():
            link.symlink_to(folder, target_is_directory=True)
    return len(identities)
