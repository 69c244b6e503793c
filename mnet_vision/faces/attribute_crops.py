"""Real faces for an attribute student distilled from face-api's age/gender and expression nets, in the
attribute-CSV layout that :class:`mnet_vision.data.attributes.AttributeCSVDataModule` reads
(``data.regression=[age]``, ``data.categorical={gender: GENDERS, expression: EXPRESSIONS}``):

- ``train.csv``: augmented views (:func:`mnet_vision.faces.training_crops.augmented_view`) of each face of
  the training photos around the box face-api's attribute nets see (``alignMinBbox``), and every image
  of any linked identity folders (the synthetic faces), all with unknown labels: a distilled student
  learns from the live teacher's outputs, not from the file;
- ``val.csv``: each face of the training photos once, unaugmented; ``test.csv``: each face of the
  held-out photos, which no training view comes from. Both labelled with face-api's own answer on
  its own crop (:class:`~mnet_vision.faces.pipeline.FacePipeline` with ``attributes=True``): age in
  years, the most probable gender and expression. Scored against them, a student's test MAE and
  accuracies are its agreement with the teacher, not accuracy against human labels.

A val/test image is face-api's net input before its resize: the crop padded with black to a centred
square (:func:`~mnet_vision.pretrained.faceapi_input.faceapi_net_input`), so a student that resizes it
whole (``data.crop_fraction=1``) sees the teacher's pixels. :func:`save_answers_sheet` draws a split's
faces with face-api's answers and a student checkpoint's.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mnet_vision.atomic import atomic_write
from mnet_vision.faces.align import faceapi_face_crop
from mnet_vision.faces.pipeline import Face, FacePipeline
from mnet_vision.faces.training_crops import Jitter, PhotoFace, described_faces, link_identities, write_training_crops
from mnet_vision.heads.faceapi import EXPRESSIONS, GENDERS
from mnet_vision.images import read_rgb
from mnet_vision.inference.load import load_model
from mnet_vision.pretrained.faceapi_input import faceapi_net_input
from mnet_vision.textfiles import read_csv_rows
from mnet_vision.viz.faces import FaceCell, save_face_sheet

log = logging.getLogger(__name__)

#: the CSV's label columns (besides ``path``), face-api's outputs: age in years, gender and expression names
COLUMNS = ("age", "gender", "expression")


def square_face(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The ``(S, S, 3)`` uint8 crop of an integer ``(x, y, w, h)`` box padded with black to a centred
    square of side ``S = max(w, h)``: face-api's ``padToSquare`` of its face crop, exactly."""
    crop = faceapi_face_crop(rgb, box)
    side = max(crop.shape[:2])
    return (faceapi_net_input(crop, side) * 255).round().byte().permute(1, 2, 0).numpy()


def attribute_faces(pipeline: FacePipeline, paths: Sequence[str | Path], progress: bool = True
                    ) -> list[tuple[PhotoFace, Face]]:
    """Every face of ``paths`` that face-api's attribute nets answered for: ``(PhotoFace`` with the box those
    nets crop (``alignMinBbox``), ``Face`` with their answers``)``. ``pipeline`` must run them
    (``attributes=True``); unreadable photos are logged and counted, not fatal."""
    if pipeline.attribute_models is None:
        raise ValueError("attribute_faces needs a FacePipeline(attributes=True): the labels are its answers")
    return [(photo_face, face) for photo_face, face in described_faces(pipeline, paths, "min_bbox", progress)
            if face.age is not None]


def _label_row(name: str, face: Face) -> str:
    gender = max(face.gender, key=face.gender.get)
    expression = max(face.expression, key=face.expression.get)
    return f"{name},{face.age['years']:.4f},{gender},{expression}"


def _write_csv(path: Path, rows: Sequence[str]) -> None:
    text = "\n".join(["path," + ",".join(COLUMNS), *rows]) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_labelled_faces(faces: Sequence[tuple[PhotoFace, Face]], root: str | Path, split: str) -> int:
    """Write each face's square crop (:func:`square_face`) to ``<root>/<split>_faces/<identity>.png`` and
    ``<root>/<split>.csv`` with face-api's answers as its labels; returns how many."""
    root = Path(root)
    folder = root / f"{split}_faces"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for photo_face, face in faces:
        name = f"{split}_faces/{photo_face.identity}.png"
        square = square_face(photo_face.rgb, photo_face.box)
        atomic_write(root / name, lambda tmp, image=square: _save_png(image, tmp))
        rows.append(_label_row(name, face))
    _write_csv(root / f"{split}.csv", rows)
    return len(rows)


def _save_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray(image).save(path, format="PNG")


def write_attribute_crops(train_photos: Sequence[str | Path], test_photos: Sequence[str | Path], root: str | Path,
                          pipeline: FacePipeline | None = None, variants: int = 60, size: int = 160,
                          synthetic: str | Path | None = None, synthetic_limit: int | None = None, seed: int = 0,
                          jitter: Jitter = Jitter(), progress: bool = True) -> dict[str, int]:
    """The whole set under ``root`` (see the module docstring): ``variants`` views of ``size`` px per face of
    ``train_photos`` (seeded), the identity folders of ``synthetic`` (e.g. ``<synthetic identities>/train``,
    the first ``synthetic_limit``) linked beside them, ``val`` the training faces once, ``test`` the faces of
    ``test_photos``. A photo in both lists is refused: its faces would not be held out. Returns the number
    of images per split."""
    overlap = sorted({str(Path(p).resolve()) for p in train_photos} & {str(Path(p).resolve()) for p in test_photos})
    if overlap:
        raise ValueError(f"write_attribute_crops: {overlap} are both training and held-out photos")
    root = Path(root)
    pipeline = pipeline or FacePipeline(describer=None, attributes=True)
    train_faces = attribute_faces(pipeline, train_photos, progress)
    test_faces = attribute_faces(pipeline, test_photos, progress)
    if not train_faces or not test_faces:
        raise ValueError(f"write_attribute_crops: {len(train_faces)} training and {len(test_faces)} held-out faces "
                         f"found; both photo lists need faces")
    write_training_crops([f for f, _ in train_faces], root, "train", variants, size, seed, jitter, progress)
    if synthetic is not None:
        link_identities(synthetic, root / "train", prefix="synthetic_", limit=synthetic_limit)
    images = sorted(p.relative_to(root).as_posix() for p in (root / "train").glob("*/*.png"))
    _write_csv(root / "train.csv", [f"{name},,," for name in images])
    counts = {"train": len(images), "val": write_labelled_faces(train_faces, root, "val"),
              "test": write_labelled_faces(test_faces, root, "test")}
    log.info("%s: %s images (train views of %d real faces, val/test labelled by face-api)", root, counts,
             len(train_faces))
    return counts


def save_answers_sheet(ckpt: str | Path, root: str | Path, path: str | Path, split: str = "test",
                       title: str | None = None) -> Path:
    """A contact sheet (PNG at ``path``) of the faces of ``<root>/<split>.csv``: under each, face-api's answer
    (the file's labels) and the answer of the attribute student in checkpoint ``ckpt`` (its model through
    its evaluation transform): age in years, gender (F / M), expression; framed green where both name the
    same expression, red where not."""
    root = Path(root)
    # the file write_labelled_faces wrote (the data module's reader, mnet_vision.data, is a room above this one)
    rows = [fields for _, fields in read_csv_rows(root / f"{split}.csv", "attribute CSV")[1:] if fields]
    loaded = load_model(ckpt, fast=False)
    transform = loaded.meta.eval_transform()
    images = [read_rgb(root / fields[0]) for fields in rows]
    with torch.inference_mode():
        out = loaded.model(loaded.inputs(torch.stack([transform(image=image)["image"] for image in images])))
    cells = []
    for i, (image, (_, age, gender, expression)) in enumerate(zip(images, rows, strict=True)):
        answer = EXPRESSIONS[int(out["expression"][i].argmax())]
        sex = GENDERS[int(out["gender"][i].argmax())][0].upper()  # F / M: two caption lines fit a sheet's row
        caption = (f"face-api {float(age):.0f} y {gender[0].upper()} {expression}\n"
                   f"student {float(out['age'][i]):.0f} y {sex} {answer}")
        cells.append(FaceCell(image, caption, "tab:green" if answer == expression else "tab:red"))
    return save_face_sheet([cells], path, title, max_columns=5)
