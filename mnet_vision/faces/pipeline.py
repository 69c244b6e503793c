"""Photos in, faces out: detect, find 68 landmarks, align, describe (and optionally age, gender, expression).

    >>> from mnet_vision.faces.pipeline import FacePipeline
    >>> pipeline = FacePipeline()                      # face-api's detector, landmarks and descriptor
    >>> photos, unreadable = pipeline.run_files(["group.jpg"])
    >>> photos[0].faces[0].embedding.shape             # (128,): Euclidean, < 0.6 the same person
    (128,)

With ``align="faceapi"`` (the default) every step is face-api's own (``detectAllFaces(img)
.withFaceLandmarks().withFaceDescriptors()``, :mod:`mnet_vision.faces.align` for the crops), so a descriptor
equals face-api's for the same RGB bytes (tests/faces/test_pipeline.py, the oracle in
tests/data/oracles/faceapi_faces/). ``align="similarity"`` warps each face onto insightface's 5-point
template instead, the input our own MobileNet embedders (an embedding checkpoint as ``describer``) expect.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnet_vision.deploy.metadata import read_exported
from mnet_vision.deploy.runtime import OnnxModel, is_onnx_path, load_onnx
from mnet_vision.faces.align import (
    align_similarity,
    faceapi_aligned_box,
    faceapi_clip_box,
    faceapi_detection_box,
    faceapi_face_crop,
    five_points,
)
from mnet_vision.heads.faceapi import EXPRESSIONS, GENDERS
from mnet_vision.images import MAX_PIXELS, readable_chunks
from mnet_vision.inference.export import weights_sha256
from mnet_vision.inference.load import LoadedModel, load_model
from mnet_vision.model import DetectorModel
from mnet_vision.pretrained.faceapi_input import faceapi_net_input, landmarks_in_crop
from mnet_vision.pretrained.fetch import file_sha256
from mnet_vision.pretrained.models import PRETRAINED, load_pretrained

log = logging.getLogger(__name__)

ALIGNS = ("faceapi", "similarity")
#: The stages :attr:`FacePipeline.stage_seconds` times.
STAGES = ("decode", "detect", "landmarks", "align", "describe", "attributes")

#: The smallest face (shorter side of the detection box, pixels) the pipeline describes. Measured on the
#: demo photos sample1, 3 and 5 (11 faces of 160-270 px) downscaled whole (PIL bilinear), face-api's
#: descriptor of each face against its full-size one: 0.05-0.12 at 78-110 px, 0.16-0.31 at 38-50 px,
#: 0.18-0.41 at 29-35 px, 0.25-0.47 at 24-28 px and 0.37-0.86 at 12-21 px, where two different people of
#: these photos lie 0.47 apart at the nearest (face-api's same-person threshold: 0.6). At 32 px and up a face
#: stays nearer itself than anyone else; below, it drifts to its neighbours and then past the threshold.
MIN_FACE = 32


@dataclass
class Face:
    """One described face. ``box``: ``(x1, y1, x2, y2)`` float pixels of the (EXIF-upright) photo, the
    detector's; ``score``: the detector's; ``landmarks``: ``(68, 2)`` float64 pixels; ``embedding``: ``(D,)``
    float32 (None when no describer ran); ``aligned``: the ``(h, w, 3)`` uint8 crop the describer was fed
    (None when not kept); ``age`` ``{"years"}``, ``gender`` ``{"male", "female"}`` probabilities and
    ``expression`` ``{name: probability}`` when the attribute nets ran."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    embedding: np.ndarray | None = None
    aligned: np.ndarray | None = None
    age: dict[str, float] | None = None
    gender: dict[str, float] | None = None
    expression: dict[str, float] | None = None


@dataclass
class PhotoFaces:
    """The faces of one photo: ``width`` x ``height`` after EXIF orientation; ``skipped``: the detections
    not described, each ``{"box" (xyxy px), "score", "reason"}``."""

    photo: str
    width: int
    height: int
    faces: list[Face] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def _loaded(model: str | Path | LoadedModel, what: str, fast: bool, device: str) -> LoadedModel:
    """A pretrained name (:data:`mnet_vision.pretrained.models.PRETRAINED`), a loaded model or a checkpoint path."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, str) and model in PRETRAINED:
        return load_pretrained(model, fast=fast, device=device)
    if not Path(model).is_file():
        raise ValueError(f"{what}={model!r} is neither a pretrained model ({', '.join(sorted(PRETRAINED))}) nor a "
                         f"checkpoint file")
    return load_model(model, fast, device)


def _net(model: str | Path | LoadedModel | OnnxModel, what: str, task: str, fast: bool,
         device: str) -> LoadedModel | OnnxModel:
    """A face net as :func:`_loaded` gives it, or its ``.onnx`` export (a path or an :class:`OnnxModel`, refused
    unless it is a ``task`` model) run by ONNX Runtime."""
    if isinstance(model, OnnxModel):
        read_exported(model.path, task)  # the same refusal as a path's: a file of another task, naming both
        return model
    if is_onnx_path(model):
        return load_onnx(model, task=task)
    return _loaded(model, what, fast, device)


def _meta(model: LoadedModel | OnnxModel, key: str) -> Any:
    """A :class:`~mnet_vision.inference.load.ModelMeta` field of a loaded model or of an export's metadata."""
    return model.meta.meta.get(key) if isinstance(model, OnnxModel) else getattr(model.meta, key)


def _checked(loaded: LoadedModel | OnnxModel, what: str, outputs: str) -> LoadedModel | OnnxModel:
    if _meta(loaded, "outputs") != outputs:
        name = loaded.path if isinstance(loaded, OnnxModel) else (loaded.source or loaded.meta.task)
        raise ValueError(f"{what}: {name} is a {_meta(loaded, 'task')} model whose output is "
                         f"{_meta(loaded, 'outputs')!r}; the face pipeline's {what} must output {outputs!r}")
    return loaded


def _onnx_model_record(model: OnnxModel) -> dict[str, Any]:
    """What an index records of an exported describer: the source weights' name and sha256 when the export
    recorded them (so its vectors share an index with the PyTorch describer's: the same model, within 1e-4),
    and the ``.onnx`` file itself (``runtime``, ``file``, ``file_sha256``; not compared by the index)."""
    source = model.meta.source
    record = {"runtime": "onnxruntime", "file": str(model.path), "file_sha256": file_sha256(model.path)}
    if source.get("weights_sha256"):
        return {"name": source.get("pretrained") or source.get("checkpoint"), "sha256": source["weights_sha256"],
                **record}
    return {"name": f"{model.path.name} (ONNX export of {source.get('checkpoint', '?')})",
            "sha256": record["file_sha256"], **record}


def _model_name(spec: Any, loaded: LoadedModel) -> str:
    pretrained = loaded.cfg.get("pretrained") if loaded.cfg is not None else None
    if pretrained is not None and pretrained.get("name"):
        return str(pretrained.name)
    return str(spec) if isinstance(spec, (str, Path)) else (loaded.source or loaded.meta.task)


class FacePipeline:
    """Detect, landmark, align and describe every face of a photo.

    Args:
        detector, landmarks, describer: each a pretrained name, a :class:`LoadedModel` or a checkpoint path:
            a face detector (or its ``.onnx`` export, path or ``OnnxModel``, run by ONNX Runtime:
            :mod:`mnet_vision.deploy.runtime`; so may the landmarks and the describer be), face-api's 68-point
            landmark net, a face descriptor
            (``faceapi_descriptor``, or one of our embedding checkpoints, with ``align="similarity"``);
            ``describer=None`` stops after the landmarks (no embeddings).
        align: ``"faceapi"`` (face-api's crops, so its descriptor equals face-api's end to end) or
            ``"similarity"`` (5 points onto insightface's ArcFace template, ``align_size`` pixels square,
            default the describer's input size).
        score_thresh: detections scoring above it (strictly, as face-api's ``minConfidence``) are faces.
        min_face: detections whose shorter box side is below it (pixels) are skipped, with the reason
            (:data:`MIN_FACE`, 32 px: below it face-api's descriptor of a face moves as far from its full-size
            descriptor as other people lie).
        attributes: also run face-api's age/gender and expression nets (on face-api's own crop for them); a dict
            ``{"age_gender", "expression"}`` gives either net (a name, path, ``.onnx`` path or model), the rest
            default to face-api's.
        keep_aligned: keep each describer input crop in :attr:`Face.aligned`.
        device, fast: where and how (BN folded, channels_last) the models given by name or path run.

    ``stage_seconds``: wall seconds spent in each of :data:`STAGES` since it was last cleared (``decode``:
    reading files in :meth:`run_files`; ``align``: cutting or warping the describer's crops).
    """

    def __init__(self, detector: str | Path | LoadedModel | OnnxModel = "faceapi_ssd",
                 landmarks: str | Path | LoadedModel | OnnxModel = "faceapi_landmarks68",
                 describer: str | Path | LoadedModel | OnnxModel | None = "faceapi_descriptor", align: str = "faceapi",
                 align_size: int | None = None, score_thresh: float = 0.5, min_face: float = MIN_FACE,
                 attributes: bool | dict[str, Any] = False, keep_aligned: bool = True, device: str = "cpu",
                 fast: bool = True):
        if align not in ALIGNS:
            raise ValueError(f"align={align!r}: expected one of {ALIGNS}")
        if align == "faceapi" and align_size is not None:
            raise ValueError("align_size applies to align='similarity'; face-api's crops have the size its "
                             "landmarks give them (the describer resizes them)")
        if not 0 <= float(score_thresh) <= 1:
            raise ValueError(f"score_thresh={score_thresh!r}: expected a score in [0, 1]")
        if float(min_face) < 1:
            raise ValueError(f"min_face={min_face!r}: expected a face size of at least 1 pixel")
        self.align, self.score_thresh, self.min_face = align, float(score_thresh), float(min_face)
        self.keep_aligned = keep_aligned
        if isinstance(detector, OnnxModel) or is_onnx_path(detector):
            self.detector: LoadedModel | OnnxModel = (detector if isinstance(detector, OnnxModel)
                                                      else load_onnx(detector, task="DetectionTask"))
        else:
            self.detector = _loaded(detector, "detector", fast, device)
            if not isinstance(self.detector.model, DetectorModel):
                raise ValueError(f"detector: {self.detector.source} is a {self.detector.meta.task} model, not a "
                                 "detector")
        self.stage_seconds: defaultdict[str, float] = defaultdict(float)
        self.landmarks = _checked(_net(landmarks, "landmarks", "FaceLandmarks", fast, device), "landmarks",
                                  "landmarks")
        self.describer = None
        self._describer_spec, self._describer_record = describer, None
        if describer is not None:
            self.describer = _checked(_net(describer, "describer", "FaceDescriptor", fast, device), "describer",
                                      "embedding")
        self.align_size = int(align_size or (_meta(self.describer, "input_size") if self.describer else None) or 112)
        self.attribute_models = None
        if attributes:
            given = {} if attributes is True else dict(attributes)
            self.attribute_models = {
                name: _checked(_net(given.get(name, f"faceapi_{name}"), name, task, fast, device), name, outputs)
                for name, task, outputs in (("age_gender", "FaceAgeGender", "age_gender"),
                                            ("expression", "FaceExpression", "probabilities"))}

    @property
    def metric(self) -> str:
        """How embeddings compare: ``"euclidean"`` for face-api's descriptor (0.6 the same person),
        ``"cosine"`` for our embedding checkpoints (unit vectors)."""
        faceapi = self.describer is not None and (_meta(self.describer, "transform") or {}).get("kind") == "faceapi"
        return "euclidean" if faceapi else "cosine"

    @property
    def embedding_model(self) -> dict[str, Any]:
        """What an index records of the describer: ``{"name", "sha256", "dim", "align", "metric"}`` (the fields
        an index compares); an ONNX describer adds ``runtime``, ``file`` and ``file_sha256``, and names the
        weights it was exported from, so its vectors and the PyTorch describer's share an index."""
        if self.describer is None:
            raise ValueError("this FacePipeline has no describer (describer=None): it makes no embeddings")
        align = self.align if self.align == "faceapi" else f"similarity{self.align_size}"
        if self._describer_record is None:  # read once: the weights of a pipeline do not change
            self._describer_record = (_onnx_model_record(self.describer) if isinstance(self.describer, OnnxModel)
                                      else {"name": _model_name(self._describer_spec, self.describer),
                                            "sha256": weights_sha256(self.describer)})
        return {**self._describer_record, "dim": int(_meta(self.describer, "embedding_dim")), "align": align,
                "metric": self.metric}

    # -- the steps -------------------------------------------------------------------------------------------

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 4)`` xyxy pixel boxes and ``(N,)`` scores of the faces scoring above ``score_thresh``."""
        if isinstance(self.detector, OnnxModel):
            found = self.detector.detect([rgb])[0]
            boxes, scores = np.asarray(found["boxes"], np.float64), np.asarray(found["scores"], np.float64)
        else:
            image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div(255)
            with torch.inference_mode():
                found = self.detector.model([image.to(self.detector.device)])[0]
            boxes, scores = found["boxes"].double().cpu().numpy(), found["scores"].double().cpu().numpy()
        keep = scores > self.score_thresh
        return boxes[keep], scores[keep]

    @property
    def detector_input_size(self) -> int:
        """The side of the square the detector sees (pixels; face-api's 512)."""
        size = self.detector.input_size if isinstance(self.detector, OnnxModel) else self.detector.meta.input_size
        return int(size or 512)

    def _net(self, loaded: LoadedModel | OnnxModel, crops: Sequence[np.ndarray]) -> Any:
        """One face-api net on face crops: its own pad + resize (``faceapi_net_input``), one batch; a tensor
        (a dict of them for age/gender) whether PyTorch or ONNX Runtime ran it."""
        batch = torch.stack([faceapi_net_input(crop, int(_meta(loaded, "input_size"))) for crop in crops])
        if isinstance(loaded, OnnxModel):
            out = {name: torch.from_numpy(value) for name, value in loaded.run(batch.numpy()).items()}
            return out if len(out) > 1 else next(iter(out.values()))
        with torch.inference_mode():
            return loaded.model(loaded.inputs(batch))

    def _landmark_box(self, box: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
        """The float ``(x, y, w, h)`` box the landmark crop is cut from, and its landmarks shifted by: face-api's
        rounded rescaling of it under ``align="faceapi"`` (:func:`faceapi_detection_box`)."""
        if self.align == "faceapi":
            return faceapi_detection_box(box, width, height, self.detector_input_size)
        x1, y1, x2, y2 = (float(v) for v in box)
        return x1, y1, x2 - x1, y2 - y1

    def describe_photo(self, rgb: np.ndarray, photo: str = "") -> PhotoFaces:
        """Every face of one ``(H, W, 3)`` uint8 RGB photo (upright: :func:`mnet_vision.images.read_rgb`
        applies EXIF orientation), best score first; a photo with no face gives no faces, not an error."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"describe_photo expects an (H, W, 3) uint8 RGB photo, got {rgb.dtype} of shape "
                             f"{rgb.shape} ({photo or 'an array'})")
        height, width = rgb.shape[:2]
        result = PhotoFaces(str(photo), width, height)
        clock = time.perf_counter()
        boxes, scores = self.detect(rgb)
        clock = self._timed("detect", clock)
        kept = []  # (box, score, landmark box (float), landmark crop box (int))
        for box, score in zip(boxes, scores, strict=True):
            side = min(box[2] - box[0], box[3] - box[1])
            landmark_box = self._landmark_box(box, width, height)
            crop_box = faceapi_clip_box(landmark_box, width, height)
            if side < self.min_face:
                reason = f"face {side:.0f} px < min_face {self.min_face:g} px"
            elif crop_box[2] <= 0 or crop_box[3] <= 0:
                reason = "the detection box has no pixels inside the photo"
            else:
                kept.append((box, float(score), landmark_box, crop_box))
                continue
            result.skipped.append({"box": [float(v) for v in box], "score": float(score), "reason": reason})
        if not kept:
            return result
        relative = self._net(self.landmarks, [faceapi_face_crop(rgb, crop_box) for *_, crop_box in kept])
        clock = self._timed("landmarks", clock)
        faces, crops = [], []
        for (box, score, landmark_box, crop_box), points in zip(kept, relative.double().cpu(), strict=True):
            size = int(_meta(self.landmarks, "input_size"))
            in_crop = landmarks_in_crop(points, crop_box[2], crop_box[3], size).numpy()
            # face-api shifts by its unclipped, unfloored detection box (extendWithFaceLandmarks), not by where
            # the crop began: kept under align="faceapi" so the crops stay face-api's
            origin = landmark_box[:2] if self.align == "faceapi" else crop_box[:2]
            landmarks = in_crop + np.asarray(origin, np.float64)
            crop = self._describer_crop(rgb, landmarks, crop_box)
            if crop is None:
                result.skipped.append({"box": [float(v) for v in box], "score": score,
                                       "reason": "face-api's aligned box has no pixels inside the photo"})
                continue
            faces.append(Face(tuple(float(v) for v in box), score, landmarks))
            crops.append(crop)
        clock = self._timed("align", clock)
        if self.describer is not None and faces:
            for face, embedding in zip(faces, self._describe(crops), strict=True):
                face.embedding = embedding
        clock = self._timed("describe", clock)
        if self.keep_aligned:
            for face, crop in zip(faces, crops, strict=True):
                face.aligned = np.ascontiguousarray(crop)
        if self.attribute_models is not None and faces:
            self._attributes(rgb, faces)
            self._timed("attributes", clock)
        result.faces = faces
        return result

    def _timed(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.stage_seconds[stage] += now - since
        return now

    def _describer_crop(self, rgb: np.ndarray, landmarks: np.ndarray, crop_box: tuple[int, int, int, int]
                        ) -> np.ndarray | None:
        if self.align == "similarity":
            return align_similarity(rgb, five_points(landmarks), self.align_size)
        box = faceapi_aligned_box(landmarks, rgb.shape[1], rgb.shape[0], "dlib", landmark_crop=crop_box[2:])
        return faceapi_face_crop(rgb, box) if box[2] > 0 and box[3] > 0 else None

    def _describe(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``(D,)`` float32 embeddings of the describer's input crops."""
        if isinstance(self.describer, OnnxModel) or self.describer.meta.transform.get("kind") == "faceapi":
            out = self._net(self.describer, crops)
        else:  # one of our embedding checkpoints: its own evaluation transform (resize, normalise)
            transform = self.describer.meta.eval_transform()
            batch = torch.stack([transform(image=np.ascontiguousarray(crop))["image"] for crop in crops])
            with torch.inference_mode():
                out = self.describer.model(self.describer.inputs(batch))
        return list(out.float().cpu().numpy())

    def _attributes(self, rgb: np.ndarray, faces: list[Face]) -> None:
        """face-api's age/gender and expressions, on its ``alignedRect`` crop (min bbox of the landmarks, padded)."""
        height, width = rgb.shape[:2]
        boxes = [faceapi_aligned_box(face.landmarks, width, height, "min_bbox") for face in faces]
        usable = [i for i, box in enumerate(boxes) if box[2] > 0 and box[3] > 0]
        if not usable:
            return
        crops = [faceapi_face_crop(rgb, boxes[i]) for i in usable]
        age_gender = self._net(self.attribute_models["age_gender"], crops)
        expression = self._net(self.attribute_models["expression"], crops).float().cpu().numpy()
        for row, i in enumerate(usable):
            faces[i].age = {"years": float(age_gender["age"][row])}
            faces[i].gender = {name: float(p) for name, p in zip(GENDERS, age_gender["gender"][row], strict=True)}
            faces[i].expression = {name: float(p) for name, p in zip(EXPRESSIONS, expression[row], strict=True)}

    def run_files(self, paths: Sequence[str | Path], progress: bool = True, max_pixels: int | None = MAX_PIXELS
                  ) -> tuple[list[PhotoFaces], list[str]]:
        """:meth:`describe_photo` for each image file, in order, with a progress bar; unreadable files (and
        those over ``max_pixels``) are logged, counted and listed in the second value, never raised."""
        photos, unreadable = [], []
        chunks = readable_chunks([Path(p) for p in paths], 1, unreadable, "faces" if progress else None, max_pixels)
        while True:
            clock = time.perf_counter()
            chunk = next(chunks, None)  # reads (decodes) the next file
            self._timed("decode", clock)
            if chunk is None:
                break
            photos += [self.describe_photo(rgb, str(path)) for path, rgb in chunk]
        skipped = sum(len(p.skipped) for p in photos)
        if skipped:
            log.info("faces: %d detection(s) not described: %s", skipped,
                     sorted({s["reason"].split(" <")[0] for p in photos for s in p.skipped}))
        return photos, unreadable
