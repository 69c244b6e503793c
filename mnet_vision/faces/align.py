"""Face alignment from 68 landmarks: face-api's own crops (so its descriptor sees what it sees in face-api)
and a 5-point similarity alignment to insightface's ArcFace template (for our MobileNet embedders).

Coordinates are image pixels, ``(x, y)``, pixel centres at integers (cv2's and insightface's convention).
Boxes given to or returned by the ``faceapi_*`` functions are face-api's ``(x, y, width, height)``.

face-api (``@vladmandic/face-api`` 1.7.15, ``src/``) computes, for
``detectAllFaces(img).withFaceLandmarks().withFaceDescriptors()``:

1. the detection box in input pixels (:func:`faceapi_detection_box`: its detector's rounded rescaling);
2. the landmark net's crop: that box ``clipAtImageBorders`` (clamped at 0, cut at the image, then every
   field floored; :func:`faceapi_clip_box`), sliced out of the image;
3. the landmarks in crop pixels shifted by the *unclipped, unfloored* detection box's ``(x, y)``
   (``extendWithFaceLandmarks``: ``shiftBy(box.x, box.y)``);
4. for the descriptor ``landmarks.align(null, {useDlibAlignment: true})`` (``alignDlib``: a square of side
   ``floor(mean eye-to-mouth distance / 0.45)`` around the mean of the eye and mouth centres, at 0.5 / 0.43
   of its side), clipped and floored again by ``extractFaceTensors``; for expressions and age/gender the
   detection's ``alignedRect``: the landmarks' min bbox padded by 0.2 of its sides (``alignMinBbox``,
   ``FaceLandmarks.align``'s default), clipped and floored the same way (:func:`faceapi_aligned_box`);
5. that crop padded to a centred square and resized by the net
   (:func:`mnet_vision.pretrained.faceapi_input.faceapi_net_input`).
"""
from __future__ import annotations

import math

import cv2  # OpenCV's warpAffine, as insightface warps; installed with albumentations (a dependency)
import numpy as np

#: Landmark indices (0-based, the 68-point iBUG layout) of insightface's five points, in its order: the
#: eye on the image's left (36-41), the eye on the image's right (42-47), the nose tip, the mouth corner on
#: the image's left, the one on its right.
FIVE_POINT_INDICES: tuple[tuple[int, ...], ...] = (tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,))

#: insightface's 5-point template for 112x112 crops (``insightface.utils.face_align.arcface_dst``), pixels.
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]], dtype=np.float64)

# face-api's alignDlib constants (src/classes/FaceLandmarks.ts): the reference point sits at (0.5, 0.43)
# of the square, whose side is the mean eye-to-mouth distance / 0.45.
_DLIB_REL_X, _DLIB_REL_Y, _DLIB_REL_SCALE = 0.5, 0.43, 0.45
#: face-api's default ``minBoxPadding`` of ``alignMinBbox``: the min bbox grows by 0.2 of each side.
FACEAPI_MIN_BOX_PADDING = 0.2
ALIGN_METHODS = ("dlib", "min_bbox")


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """``(68, 2)`` or ``(N, 68, 2)`` landmarks -> ``(5, 2)`` / ``(N, 5, 2)``: the eye centres (means of their
    six points), the nose tip, the mouth corners, in :data:`FIVE_POINT_INDICES`' order."""
    points = np.asarray(landmarks68, dtype=np.float64)
    if points.shape[-2:] != (68, 2):
        raise ValueError(f"five_points expects (68, 2) or (N, 68, 2) landmarks, got shape {points.shape}")
    return np.stack([points[..., list(idx), :].mean(axis=-2) for idx in FIVE_POINT_INDICES], axis=-2)


def arcface_template(size: int = 112) -> np.ndarray:
    """:data:`ARCFACE_112` scaled to a ``size`` x ``size`` crop, ``(5, 2)`` pixels."""
    if int(size) != size or size < 8:
        raise ValueError(f"alignment size must be a whole number of pixels >= 8, got {size!r}")
    return ARCFACE_112 * (float(size) / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` similarity (rotation, uniform scale, translation; no reflection) taking points ``src``
    ``(K, 2)`` to ``dst`` ``(K, 2)`` in the least-squares sense: Umeyama (1991), as insightface estimates it
    with ``skimage.transform.SimilarityTransform``; written here because cv2's ``estimateAffinePartial2D``
    is a robust (RANSAC / LMedS) fit, not the plain least squares, and skimage is no dependency of ours."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"similarity_transform expects two (K, 2) point sets of the same K >= 2, got "
                         f"{src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("similarity_transform: the points hold NaN or infinite coordinates")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # the best orthogonal map is a reflection: flip the weakest axis
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    variance = (src_c ** 2).sum() / len(src)
    if variance <= 0:
        raise ValueError("similarity_transform: the source points all coincide")
    scale = float((singular * sign).sum() / variance)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_similarity(rgb: np.ndarray, points5: np.ndarray, size: int = 112) -> np.ndarray:
    """``(H, W, 3)`` uint8 image -> ``(size, size, 3)`` uint8 crop: the similarity taking ``points5`` ``(5, 2)``
    (image pixels, :func:`five_points`) onto :func:`arcface_template` ``(size)``, applied with cv2's bilinear
    ``warpAffine`` (insightface's ``norm_crop``). Pixels from outside the image are black; a face partly or
    wholly outside the image is no error."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"align_similarity expects an (H, W, 3) uint8 RGB image, got {rgb.dtype} of shape {rgb.shape}")
    matrix = similarity_transform(np.asarray(points5, np.float64).reshape(5, 2), arcface_template(size))
    return cv2.warpAffine(np.ascontiguousarray(rgb), matrix, (int(size), int(size)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _js_round(value: float) -> int:
    return math.floor(value + 0.5)  # JS Math.round: half up


def faceapi_detection_box(box_xyxy: np.ndarray, width: int, height: int, input_size: int = 512
                          ) -> tuple[float, float, float, float]:
    """Our face detector's ``(4,)`` xyxy pixel box -> face-api's own ``(x, y, width, height)`` for it. face-api
    maps a box back from its padded square with ``round(side * input_size / max(h, w))`` per axis
    (``computeReshapedDimensions``); our port scales by the exact ``max(h, w) / input_size``
    (tests/pretrained/test_faceapi_parity.py), up to 0.15 % apart on the short axis: the landmark crop
    starts where face-api's does only with face-api's rounding."""
    side = max(width, height)
    scale_x = input_size * width / (_js_round(width * input_size / side) * side)
    scale_y = input_size * height / (_js_round(height * input_size / side) * side)
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box_xyxy, np.float64).reshape(4))
    return x1 * scale_x, y1 * scale_y, (x2 - x1) * scale_x, (y2 - y1) * scale_y


def faceapi_clip_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """face-api's ``Box.clipAtImageBorders``: ``(x, y, w, h)`` clamped at 0, cut at the ``width`` x ``height``
    image, then each field floored. ``w`` or ``h`` may come out <= 0 (a box wholly outside the image)."""
    x, y, w, h = box
    cx, cy = max(x, 0.0), max(y, 0.0)
    cw, ch = min(x + w - cx, width - cx), min(y + h - cy, height - cy)
    return math.floor(cx), math.floor(cy), math.floor(cw), math.floor(ch)


def _dlib_box(points: np.ndarray, landmark_crop: tuple[int, int] | None) -> tuple[float, float, float, float]:
    centres = [points[36:42].mean(axis=0), points[42:48].mean(axis=0), points[48:68].mean(axis=0)]
    left_eye, right_eye, mouth = centres
    eye_to_mouth = (np.linalg.norm(mouth - left_eye) + np.linalg.norm(mouth - right_eye)) / 2
    size = math.floor(eye_to_mouth / _DLIB_REL_SCALE)
    ref = np.mean(centres, axis=0)
    x = math.floor(max(0.0, ref[0] - _DLIB_REL_X * size))
    y = math.floor(max(0.0, ref[1] - _DLIB_REL_Y * size))
    if landmark_crop is None:
        return x, y, size, size
    # face-api caps the side at "imageWidth + x", where imageWidth is the landmark crop's (the dims the
    # landmarks were made for): a quirk kept so the crop is face-api's
    crop_w, crop_h = landmark_crop
    return x, y, min(size, crop_w + x), min(size, crop_h + y)


def _min_bbox(points: np.ndarray, padding: float, width: int, height: int) -> tuple[float, float, float, float]:
    # face-api's minBbox starts its max at 0 (not -inf)
    x0, y0 = float(points[:, 0].min()), float(points[:, 1].min())
    x1, y1 = max(0.0, float(points[:, 0].max())), max(0.0, float(points[:, 1].max()))
    w, h = x1 - x0, y1 - y0
    box = (x0 - w * padding / 2, y0 - h * padding / 2, w + w * padding, h + h * padding)
    # the padded box goes to a relative box and back three times (alignedRect = FaceDetection(rect.rescale(
    # 1 / dims), dims), then extractFaceTensors' forSize) before it is clipped: the same float64 steps
    for _ in range(3):
        box = tuple(v * (1 / d) * d for v, d in zip(box, (width, height, width, height), strict=True))
    return box


def faceapi_aligned_box(landmarks68: np.ndarray, width: int, height: int, method: str = "dlib",
                        landmark_crop: tuple[int, int] | None = None,
                        padding: float = FACEAPI_MIN_BOX_PADDING) -> tuple[int, int, int, int]:
    """The integer ``(x, y, w, h)`` box face-api cuts out of the ``width`` x ``height`` image for a face with
    ``(68, 2)`` pixel ``landmarks68`` (face-api's, i.e. shifted by its detection box, see the module doc).

    ``method``: ``"dlib"`` (``alignDlib``: what ``withFaceDescriptors()`` describes; ``landmark_crop`` the
    ``(w, h)`` of the landmark net's crop, whose width face-api's cap uses) or ``"min_bbox"`` (``alignMinBbox``
    with ``padding``, ``FaceLandmarks.align``'s default: what ``withAgeAndGender()`` and
    ``withFaceExpressions()`` see). Then ``clipAtImageBorders`` (:func:`faceapi_clip_box`); ``w`` or ``h``
    <= 0 means face-api would cut no crop."""
    points = np.asarray(landmarks68, np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"faceapi_aligned_box expects (68, 2) landmarks, got shape {points.shape}")
    if method == "dlib":
        box = _dlib_box(points, landmark_crop)
    elif method == "min_bbox":
        box = _min_bbox(points, padding, width, height)
    else:
        raise ValueError(f"unknown face-api alignment {method!r}: expected one of {ALIGN_METHODS}")
    return faceapi_clip_box(box, width, height)


def faceapi_face_crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The ``(h, w, 3)`` crop ``rgb[y:y + h, x:x + w]`` of an integer ``(x, y, w, h)`` box inside the image (as
    :func:`faceapi_clip_box` returns it; face-api's ``tf.slice3d``). A box of no pixels inside the image is a
    ``ValueError`` naming it."""
    x, y, w, h = (int(v) for v in box)
    height, width = rgb.shape[:2]
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(f"face crop box (x={x}, y={y}, w={w}, h={h}) is not a non-empty box inside the "
                         f"{width}x{height} image (clip it with faceapi_clip_box first)")
    return rgb[y:y + h, x:x + w]
